"""New surveys as the models see them: tested in advance on their consensus labels (automatically, once), marked
as needing adaptation when worse than the reference survey, and adapted by fine-tuning the active members, with
the decision judged survey by survey. Through the label announcement, tasks, the API, the command and the admin.
"""

import threading
from io import StringIO

import numpy as np
import pytest
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from django.db import connection
from django.urls import reverse

from acquisition.population import SurveyLook
from inference import services, survey_metrics
from inference.models import EnsemblePrediction, ModelVersion, SurveyEvaluation, TrainingRun
from inference.services import adaptation
from labeling.models import ConsensusLabel, Galaxy
from labeling.services import reference_survey
from labeling.signals import consensus_labels_added
from tests import inference_fixtures
from tests.api_fixtures import fresh_ensemble, upload  # noqa: F401
from tests.factories import GalaxyFactory, ModelVersionFactory, SurveyFactory, TrainingRunFactory, galaxy_jpeg
from tests.services import require_postgres

tiny_inference_settings = inference_fixtures.tiny_inference_settings


def split_of(pgc: int) -> str:
    """The fixed split inference.keras_training.split_by_key gives a galaxy."""
    h = (pgc * 2654435761) % 1000 / 1000.0
    return "test" if h < 0.1 else "val" if h < 0.2 else "train"


def pgcs_with_splits(counts: dict[str, int], start: int) -> list[int]:
    """PGC numbers from `start` on, as many of each split as asked (so a tiny set has a test part)."""
    out, wanted, pgc = [], dict(counts), start
    while any(wanted.values()):
        part = split_of(pgc)
        if wanted.get(part):
            wanted[part] -= 1
            out.append(pgc)
        pgc += 1
    return out


def labelled(survey, values, *, start: int = 5_000_000, statuses=None, with_image: bool = True) -> list[Galaxy]:
    """Galaxies of `survey` with a stored colour image and a consensus label each (accepted at `values`)."""
    galaxies = []
    for i, value in enumerate(values):
        status = (statuses or {}).get(i, "accepted")
        galaxy = GalaxyFactory(pgc=start + i, survey=survey, with_image=with_image, image__seed=i)
        ConsensusLabel.objects.create(
            galaxy=galaxy, status=status, inclination=value if status == "accepted" else None, n_votes=3
        )
        galaxies.append(galaxy)
    return galaxies


def announce(capture):
    """What labeling sends after committing new consensus labels, with the on-commit work executed."""
    with capture(execute=True):
        consensus_labels_added.send(sender=ConsensusLabel)


@pytest.fixture
def ensemble(db):
    """Members answering 50, 60, 70 deg (median 60) and a rejection member (0.2); their test RMS was 2 deg."""
    versions = inference_fixtures.make_ensemble()
    ModelVersion.objects.filter(kind="regression").update(metrics={"ensemble": {"rms": 2.0}})
    return versions


class TestEvaluationMaths:
    def test_figures_bins_and_rejection_agreement(self):
        figures = survey_metrics.evaluate(
            [60.0, 60.0, 60.0, 88.0],
            [60.0, 66.0, 75.0, 89.0],
            rejection_likelihood=[0.1, 0.2, 0.9, np.nan, 0.7],
            volunteers_rejected=[False, False, True, False, False],
        )
        assert figures["n"] == 4
        assert figures["rms"] == pytest.approx(np.sqrt((0 + 36 + 225 + 1) / 4))
        assert figures["bias"] == pytest.approx((0 - 6 - 15 - 1) / 4)
        assert figures["outlier_rate"] == pytest.approx(0.25)
        assert [(b["lo"], b["n"]) for b in figures["bins"]] == [(60.0, 1), (65.0, 1), (75.0, 1), (85.0, 1)]
        # The NaN (no rejection member answered) is left out; 0.7 rejects an accepted galaxy.
        assert figures["rejection"] == {
            "n": 4,
            "agreement": 0.75,
            "volunteers_rejected": 1,
            "ensemble_rejected": 2,
        }

    def test_promotion_needs_a_gain_on_the_survey_and_no_loss_elsewhere(self):
        before = {"new": 6.0, "sdss": 3.0, "synthetic": 2.5}
        ok = survey_metrics.promotion_decision(
            adapted="new", before=before, after={"new": 4.0, "sdss": 3.1, "synthetic": 2.6}, tolerance=0.2
        )
        assert ok.value and ok.numbers["new"]["change"] == pytest.approx(-2.0)
        worse = survey_metrics.promotion_decision(
            adapted="new", before=before, after={"new": 4.0, "sdss": 3.5, "synthetic": 2.6}, tolerance=0.2
        )
        assert not worse.value and "sdss 3.00 -> 3.50" in worse.reason
        no_gain = survey_metrics.promotion_decision(
            adapted="new", before=before, after={"new": 6.0, "sdss": 3.0, "synthetic": 2.5}, tolerance=0.2
        )
        assert not no_gain.value and "not better" in no_gain.reason

    def test_a_survey_look_from_settings_is_checked(self):
        assert SurveyLook.from_dict({"seeing": [2, 3]}).seeing == (2.0, 3.0)
        with pytest.raises(ValueError, match="unknown survey look parameters"):
            SurveyLook.from_dict({"sharpness": 2})
        with pytest.raises(ValueError):
            SurveyLook.from_dict({"seeing": [3, 2]})


@pytest.mark.django_db
class TestEvaluation:
    def test_a_survey_is_evaluated_once_when_it_reaches_the_threshold_and_marked(
        self, settings, ensemble, django_capture_on_commit_callbacks, bob_client
    ):
        settings.GIZ_SURVEY_EVAL_MIN_LABELS = 3
        survey = SurveyFactory()
        galaxies = labelled(survey, [60.0, 66.0], statuses=None)
        announce(django_capture_on_commit_callbacks)
        assert not SurveyEvaluation.objects.exists()  # two labels: below the threshold

        galaxies += labelled(survey, [75.0, None], start=5_000_100, statuses={1: "rejected"})
        announce(django_capture_on_commit_callbacks)
        announce(django_capture_on_commit_callbacks)  # a second announcement finds it done

        evaluation = SurveyEvaluation.objects.get()
        assert (evaluation.survey, evaluation.trigger, evaluation.status, evaluation.live) == (
            survey,
            "labels",
            "succeeded",
            None,
        )
        assert evaluation.n_labels == 3 and evaluation.total == 4
        assert evaluation.rms == pytest.approx(np.sqrt((0 + 36 + 225) / 3))
        assert evaluation.bias == pytest.approx(-7.0)
        assert evaluation.outlier_rate == pytest.approx(1 / 3)
        assert evaluation.rejection_agreement == pytest.approx(0.75)  # 0.2 never rejects; one of four was rejected
        assert [b["lo"] for b in evaluation.bins] == [60.0, 65.0, 75.0]
        assert evaluation.figures["sources"] == {"stored": 0, "predicted": 4, "failed": 0}
        assert default_storage.exists(evaluation.plot.name)
        # 8.7 deg against the members' 2 deg: the survey needs adaptation, and its galaxies come first.
        assert evaluation.reference_rms == pytest.approx(2.0) and evaluation.needs_adaptation is True
        survey.refresh_from_db()
        assert survey.needs_adaptation and f"Evaluation {evaluation.pk}" in survey.adaptation_reason
        assert all(g.survey_priority > 0 for g in Galaxy.objects.filter(survey=survey))

        # The admin shows it as a table, its bins and the plot; the surveys' list links it.
        html = bob_client.get(reverse("admin:inference_surveyevaluation_change", args=[evaluation.pk])).content
        html = html.decode()
        assert "rejection agreement" in html and "75.0%" in html and default_storage.url(evaluation.plot.name) in html
        assert "<td>75-80</td>" in html
        html = bob_client.get(reverse("admin:labeling_survey_changelist")).content.decode()
        assert f"RMS {evaluation.rms:.2f} deg on 3 labels" in html

    def test_staff_evaluate_through_the_api_reusing_stored_predictions(
        self, settings, ensemble, django_capture_on_commit_callbacks, api_client, alice, bob
    ):
        settings.GIZ_SURVEY_EVAL_MIN_LABELS = 100  # no automatic one, no verdict
        survey = SurveyFactory()
        galaxies = labelled(survey, [58.0, 62.0])
        url = reverse("api:survey-evaluations", args=[survey.slug])

        api_client.force_authenticate(alice)
        assert api_client.post(url).status_code == 403
        api_client.force_authenticate(bob)
        with django_capture_on_commit_callbacks(execute=True):
            response = api_client.post(url)
        assert response.status_code == 202
        first = api_client.get(response["Location"]).json()
        assert first["status"] == "succeeded" and first["progress"] == 1.0 and first["rms"] == pytest.approx(2.0)
        assert first["needs_adaptation"] is None and "too few to decide" in first["verdict"]

        # An evaluation only reads: it stored nothing. The galaxies' own predictions (made when their images were
        # stored) are what the next one reuses.
        assert not EnsemblePrediction.objects.exists()
        services.predict_galaxies(galaxies=galaxies)
        with django_capture_on_commit_callbacks(execute=True):
            second = api_client.post(url).json()
        again = SurveyEvaluation.objects.get(pk=second["id"])
        assert again.figures["sources"] == {"stored": 2, "predicted": 0, "failed": 0}
        assert again.rms == pytest.approx(2.0)

        listing = {s["slug"]: s for s in api_client.get(reverse("api:survey-list")).json()}
        assert listing[survey.slug]["latest_evaluation"]["id"] == again.pk
        assert listing[survey.slug]["accepted_labels_count"] == 2
        assert listing[reference_survey().slug]["latest_evaluation"] is None

        empty = SurveyFactory()
        refused = api_client.post(reverse("api:survey-evaluations", args=[empty.slug]))
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "no_labels"
        assert api_client.post(reverse("api:survey-evaluations", args=["nowhere"])).status_code == 404

    def test_an_evaluation_goes_batch_by_batch_and_counts_an_unreadable_image_as_failed(self, settings, ensemble):
        # The next batch is read and prepared while the models answer the current one: each galaxy is still answered
        # once, and an image that cannot be decoded fails alone, whichever batch it falls in.
        settings.GIZ_INFERENCE_BATCH_SIZE = 2
        settings.GIZ_SURVEY_EVAL_MIN_LABELS = 100
        survey = SurveyFactory()
        galaxies = labelled(survey, [58.0, 62.0, 75.0, 64.0, 56.0])
        with default_storage.open(galaxies[2].images.get().file.name, "wb") as broken:
            broken.write(b"not an image")

        evaluation = services.survey_evaluation_request(survey=survey, queue=False)
        evaluation = services.survey_evaluation_run(evaluation_id=evaluation.pk)

        assert evaluation.status == "succeeded"
        assert evaluation.figures["sources"] == {"stored": 0, "predicted": 4, "failed": 1}
        assert (evaluation.n_labels, evaluation.total) == (4, 5)
        assert evaluation.rms == pytest.approx(np.sqrt((4 + 4 + 16 + 16) / 4))  # the members' median is 60

    def test_the_command_prints_the_figures_behind_a_progress_bar(self, ensemble):
        survey = SurveyFactory()
        labelled(survey, [60.0, 70.0])
        out, err = StringIO(), StringIO()
        call_command("survey", "evaluate", survey.slug, stdout=out, stderr=err)
        assert f"evaluation of {survey.slug}" in err.getvalue() and "100%" in err.getvalue()
        assert "RMS 7.07 deg on 2 labels" in out.getvalue() and "70-75 deg: n=1" in out.getvalue()
        with pytest.raises(CommandError, match="Unknown survey 'nowhere'"):
            call_command("survey", "evaluate", "nowhere", stdout=StringIO(), stderr=StringIO())

    def test_the_backstop_requeues_an_evaluation_whose_worker_died(self, ensemble, django_capture_on_commit_callbacks):
        from inference.tasks import training_backstop_task

        survey = SurveyFactory()
        labelled(survey, [60.0])
        evaluation = SurveyEvaluation.objects.create(survey=survey, status="running")
        SurveyEvaluation.objects.filter(pk=evaluation.pk).update(
            created_at="2020-01-01T00:00Z", heartbeat_at="2020-01-01T00:00Z"
        )
        with django_capture_on_commit_callbacks(execute=True):
            training_backstop_task()
        evaluation.refresh_from_db()
        assert evaluation.status == "succeeded" and evaluation.n_labels == 1

    def test_the_backstop_sends_one_message_for_a_dead_evaluation_not_one_a_minute(
        self, ensemble, django_capture_on_commit_callbacks
    ):
        from inference.tasks import training_backstop_task

        survey = SurveyFactory()
        labelled(survey, [60.0])
        evaluation = SurveyEvaluation.objects.create(survey=survey, status="running")
        SurveyEvaluation.objects.filter(pk=evaluation.pk).update(
            created_at="2020-01-01T00:00Z", heartbeat_at="2020-01-01T00:00Z"
        )
        # The first minute re-queues it; its message is not yet taken when beat calls again.
        with django_capture_on_commit_callbacks(execute=False) as first:
            training_backstop_task()
        with django_capture_on_commit_callbacks(execute=False) as second:
            training_backstop_task()
        evaluation.refresh_from_db()
        assert len(first) == 1 and second == []
        assert evaluation.status == "queued" and evaluation.message == "Re-queued"


@pytest.mark.django_db
class TestAdaptation:
    def test_an_adaptation_that_cannot_start_says_why_and_changes_nothing(self, settings, ensemble, api_client, bob):
        settings.GIZ_SURVEY_ADAPT_MIN_LABELS = 3
        api_client.force_authenticate(bob)
        survey = SurveyFactory()
        url = reverse("api:survey-adaptations", args=[survey.slug])

        def refused(code: str, status: int = 400) -> dict:
            response = api_client.post(url)
            assert response.status_code == status, response.json()
            assert response.json()["error"]["code"] == code
            assert not TrainingRun.objects.filter(survey__isnull=False).exists()
            return response.json()["error"]

        labelled(survey, [60.0, 61.0])
        assert "has 2 accepted consensus labels; adaptation needs 3" in refused("too_few_labels")["message"]
        labelled(survey, [62.0, 63.0], start=5_000_100, with_image=False)
        assert "Only 2 of" in refused("no_images")["message"]
        labelled(survey, [64.0], start=5_000_200)
        live = TrainingRunFactory()
        assert refused("training_live", 409)["details"]["training_run_id"] == live.pk
        TrainingRun.objects.filter(pk=live.pk).update(live=None, status="succeeded")
        response = api_client.post(reverse("api:survey-adaptations", args=[reference_survey().slug]))
        assert response.json()["error"]["code"] == "reference_survey"
        with pytest.raises(CommandError, match="reference survey"):
            call_command("survey", "adapt", reference_survey().slug, stdout=StringIO(), stderr=StringIO())

        # The admin's action reports the same reason.
        client = self._admin(bob)
        other = SurveyFactory()
        response = client.post(
            reverse("admin:labeling_survey_changelist"),
            {"action": "adapt_surveys", "_selected_action": [other.pk]},
            follow=True,
        )
        assert "not started" in response.content.decode() and "adaptation needs 3" in response.content.decode()

    @staticmethod
    def _admin(user):
        from django.test import Client

        client = Client()
        client.force_login(user)
        return client

    def test_a_survey_needing_adaptation_is_fine_tuned_once_and_judged_per_survey(
        self, settings, django_capture_on_commit_callbacks, api_client, bob
    ):
        settings.GIZ_SURVEY_ADAPT_MIN_LABELS = 8
        settings.GIZ_SURVEY_EVAL_MIN_LABELS = 4
        settings.GIZ_SURVEY_LOOKS = {}
        members = [ModelVersionFactory(name=f"member-{v:g}", answer=v) for v in (58.0, 62.0)]
        rejection = ModelVersionFactory(name="rejection", kind="rejection", answer=0.2)
        survey = SurveyFactory()
        survey.needs_adaptation = True
        survey.save(update_fields=["needs_adaptation"])
        pgcs = pgcs_with_splits({"train": 6, "val": 2, "test": 2}, 6_000_000)
        rng = np.random.default_rng(1)
        for pgc in pgcs:
            labelled(survey, [float(rng.uniform(78, 90))], start=pgc)  # far from the members' 60 deg
        labelled(reference_survey(), [60.0, 65.0, 70.0, 75.0], start=7_000_000)

        announce(django_capture_on_commit_callbacks)
        announce(django_capture_on_commit_callbacks)  # labels arriving later do not start a second one

        run = TrainingRun.objects.get(trigger="adaptation")
        assert (run.survey, run.status, run.live) == (survey, "succeeded", None), run.error
        promotion = run.metrics["promotion"]
        assert set(promotion["numbers"]) == {survey.slug, "sdss", "synthetic SDSS-like"}
        # The reference survey's train-split labels are replayed in training, so it is judged on the others.
        reference_judged = sum(split_of(pgc) != "train" for pgc in range(7_000_000, 7_000_004))
        assert run.metrics["sets"][survey.slug] == 2 and run.metrics["sets"]["sdss"] == reference_judged
        tuned = ModelVersion.objects.filter(training_run=run)
        assert sorted(v.metrics["adapted_from"]["name"] for v in tuned) == ["member-58", "member-62"]
        active = set(ModelVersion.objects.filter(status="active").values_list("pk", flat=True))
        if promotion["promote"]:
            assert active == {*tuned.values_list("pk", flat=True), rejection.pk}  # the rejection member stays
            # The new ensemble is tested on every survey with enough labels, once.
            assert set(SurveyEvaluation.objects.filter(training_run=run).values_list("survey", flat=True)) == {
                survey.pk,
                reference_survey().pk,
            }
        else:
            assert active == {m.pk for m in members} | {rejection.pk}
            assert set(tuned.values_list("status", flat=True)) == {"candidate"}
        assert TrainingRun.objects.filter(trigger="adaptation").count() == 1

        # The API and the admin show the decision and its numbers.
        detail = api_client.get(reverse("api:survey-adaptation", args=[survey.slug, run.pk])).json()
        assert detail["promotion"]["reason"] == promotion["reason"] and detail["progress"] == 1.0
        html = self._admin(bob).get(reverse("admin:inference_trainingrun_change", args=[run.pk])).content.decode()
        assert "judged per survey" in html and "synthetic SDSS-like" in html
        assert ("Promoted" if promotion["promote"] else "Not promoted") in html

    def test_fine_tuning_replays_the_reference_survey_and_keeps_no_epoch_that_forgets_it(self, settings):
        """The mix holds GIZ_SURVEY_ADAPT_REPLAY_FRACTION of reference replay (its train-split labels first), and a
        member whose every epoch costs more than GIZ_SURVEY_ADAPT_GUARD_DEG on the reference validation images is
        given back with its starting weights: a learning rate of 1.0 wrecks both members, so with early stopping
        on the validation loss alone (the first adaptation) the adapted answers would differ from the originals'."""
        settings.GIZ_SURVEY_ADAPT_MIN_LABELS = 8
        settings.GIZ_SURVEY_EVAL_MIN_LABELS = 4
        settings.GIZ_SURVEY_LOOKS = {}
        settings.GIZ_SURVEY_ADAPT_REPLAY_FRACTION = 0.5
        settings.GIZ_SURVEY_ADAPT_REPLAY_SOURCES = ["ours"]  # GalSim's stamps cost seconds each
        settings.GIZ_SURVEY_ADAPT_GUARD_DEG = 0.0
        # 67.5 deg: the best constant answer on uniform 45-90 deg galaxies, so any move the wreck makes costs.
        members = [ModelVersionFactory(name=f"member-{k}", answer=67.5) for k in range(2)]
        survey = SurveyFactory()
        for pgc in pgcs_with_splits({"train": 6, "val": 2, "test": 2}, 6_000_000):
            labelled(survey, [85.0], start=pgc)
        reference_pgcs = pgcs_with_splits({"train": 3, "val": 1, "test": 2}, 7_000_000)
        for pgc, value in zip(reference_pgcs, [55.0, 60.0, 65.0, 70.0, 75.0, 80.0], strict=True):
            labelled(reference_survey(), [value], start=pgc)

        out = StringIO()
        call_command("survey", "adapt", survey.slug, "--profile", "tiny", "--learning-rate", "1.0", stdout=out)

        run = TrainingRun.objects.get(trigger="adaptation")
        mix = run.metrics["train"]
        # tiny profile: 8 synthetic galaxies in the survey's look beside its 6 train labels, so as many replayed:
        # the reference survey's 3 train-split labels, topped up with 11 synthetic SDSS-look galaxies.
        assert (mix["labels"], mix["synthetic_look"], mix["replay"]) == (6, 8, 14)
        assert mix["replay_fraction"] == 0.5
        assert (mix["replay_reference_labels"], mix["replay_synthetic"]) == (3, {"ours": 11})
        assert (mix["guard"], mix["guard_reference_labels"]) == (4 + 1, 1)  # n_val_reference + its val label
        assert run.metrics["sets"]["sdss"] == 3  # judged on its val and test labels, never on replayed ones

        # The starting weights came back: the adapted members answer exactly as the originals did, everywhere.
        for name, numbers in run.metrics["per_set"].items():
            assert numbers["after"]["rms"] == numbers["before"]["rms"], name
        fits = {m.name: m.metrics["fit"] for m in ModelVersion.objects.filter(training_run=run)}
        assert len(fits) == 2 and run.metrics["fine_tuning"]["learning_rate"] == 1.0
        for name, fit in fits.items():
            selection = fit["selection"]
            assert selection["epoch"] == 0, selection
            assert selection["guard_limit"] == selection["start"]["guard_rms"]
            # Every epoch that forgot the reference was refused. A wreck can also land, by chance, on an epoch
            # no worse on the reference (or tie with the constant it started from): that one is not refused, and
            # is not kept either, since it is no better on the survey than the starting weights.
            history = run.history[name]
            assert len(history["guard_rms"]) == fit["epochs"] >= 1
            assert selection["refused"], selection
            for epoch, (guard_rms, val_rms) in enumerate(
                zip(history["guard_rms"], history["val_rms"], strict=True), start=1
            ):
                refused = guard_rms > selection["guard_limit"]
                assert (epoch in selection["refused"]) == refused, (epoch, guard_rms, selection)
                assert refused or val_rms >= selection["start"]["val_rms"], (epoch, val_rms, selection)
        assert run.metrics["promotion"]["promote"] is False
        assert set(ModelVersion.objects.filter(status="active").values_list("pk", flat=True)) == {m.pk for m in members}
        assert f"  {survey.slug}: " in out.getvalue() and "  sdss: " in out.getvalue()  # the gate's numbers per set

    @pytest.mark.usefixtures("fresh_ensemble")
    def test_the_active_ensemble_is_judged_on_the_answers_the_site_gives_through_its_calibration_curves(
        self, settings, api_client, monkeypatch
    ):
        """The shipped members carry curves that the site applies to their answers; the adaptation's "before"
        figure must be the answer astronomers get, or a survey the curves already serve looks worse than it is; and
        an adapted member given back unchanged must answer through the same curve.
        Both members answer 67.5 deg raw; their curve maps that to 85 deg, the survey's labels."""
        settings.GIZ_SURVEY_ADAPT_MIN_LABELS = 8
        settings.GIZ_SURVEY_EVAL_MIN_LABELS = 4
        settings.GIZ_SURVEY_LOOKS = {}
        settings.GIZ_SURVEY_ADAPT_REPLAY_SOURCES = ["ours"]
        settings.GIZ_SURVEY_ADAPT_GUARD_DEG = 0.0  # a wrecked member is given back as it was
        curve = {"answer": [45.0, 67.5, 90.0], "true": [45.0, 85.0, 90.0]}
        for k in range(2):
            ModelVersionFactory(name=f"member-{k}", answer=67.5, metrics={"calibration": curve})
        survey = SurveyFactory()
        for pgc in pgcs_with_splits({"train": 6, "val": 2, "test": 2}, 6_000_000):
            labelled(survey, [85.0], start=pgc)
        reference_pgcs = pgcs_with_splits({"train": 3, "val": 1, "test": 2}, 7_000_000)
        for pgc, value in zip(reference_pgcs, range(55, 85, 5), strict=True):
            labelled(reference_survey(), [float(value)], start=pgc)

        site = api_client.post(
            "/api/inference/upload/", {"file": upload("g.jpg", galaxy_jpeg())}, format="multipart"
        ).json()
        assert site["median"] == pytest.approx(85.0, abs=0.01)
        # Any curve a fit would give is another: members given back unchanged must not be refitted.
        refit = {"answer": [45.0, 90.0], "true": [40.0, 95.0]}
        monkeypatch.setattr(adaptation, "fitted_curves", lambda models, *args: [refit] * len(models))
        call_command("survey", "adapt", survey.slug, "--profile", "tiny", "--learning-rate", "1.0", stdout=StringIO())

        run = TrainingRun.objects.get(trigger="adaptation")
        judged = run.metrics["per_set"][survey.slug]
        assert judged["before"]["rms"] == pytest.approx(0.0, abs=0.01)
        # The adapted members, given back their starting weights, keep their curves: they answer as before.
        assert judged["after"]["rms"] == pytest.approx(0.0, abs=0.01)
        for version in ModelVersion.objects.filter(training_run=run):
            assert version.metrics["calibration"] == curve
            assert version.metrics["calibration_from"] == f"kept from {version.metrics['adapted_from']['name']}"


@pytest.mark.django_db(transaction=True)
def test_many_simultaneous_label_announcements_start_exactly_one_evaluation(settings, monkeypatch):
    require_postgres()
    from inference.tasks import survey_evaluate_task

    queued = []
    monkeypatch.setattr(survey_evaluate_task, "delay", lambda pk: queued.append(pk))
    settings.GIZ_SURVEY_EVAL_MIN_LABELS = 2
    inference_fixtures.make_ensemble()
    survey = SurveyFactory()
    labelled(survey, [60.0, 70.0])
    barrier = threading.Barrier(6)
    errors = []

    def label_arrives():
        try:
            barrier.wait()
            services.surveys_maybe_evaluate()
        except Exception as exc:  # a failure in a thread must fail the test
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=label_arrives) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    evaluation = SurveyEvaluation.objects.get()
    assert evaluation.trigger == "labels" and queued == [evaluation.pk]
