"""Consensus: the old maths (still the bench's "today's code"), and the nightly refit of the volunteer model."""

from datetime import timedelta

import pytest
from django.utils import timezone

from inference import services as inference_services
from labeling import consensus as maths
from labeling.models import ConsensusLabel, ConsensusRun, Galaxy, VolunteerProfile, Vote
from labeling.tasks import recompute_consensus
from tests.factories import ConsensusRunFactory, GalaxyFactory, UserFactory
from tests.services import broker_url, celery_worker, require_postgres, send_task, wait_for


class TestMaths:
    def test_weighted_median_follows_the_weight(self):
        assert maths.weighted_median([50, 60, 70], [1, 1, 1]) == 60
        assert maths.weighted_median([50, 60, 70], [1, 1, 4]) == 70
        assert maths.weighted_median([60, 62], [1, 1]) == 61

    def test_an_outlier_does_not_move_the_label(self):
        votes = [maths.VoteIn(x, "") for x in (60.5, 61.5, 62.5, 89.5)]
        result = maths.consensus_compute(votes)
        assert result.status == "accepted" and 61 <= result.inclination <= 62
        assert result.n_agreeing == 3

    def test_calibration_and_weight_shift_a_volunteer(self):
        plain = maths.consensus_compute([maths.VoteIn(70, ""), maths.VoteIn(60, "")])
        heavy = maths.consensus_compute([maths.VoteIn(70, "", weight=4), maths.VoteIn(60, "", weight=1)])
        shifted = maths.consensus_compute([maths.VoteIn(70, "", intercept=-4), maths.VoteIn(60, "", intercept=-4)])
        assert plain.inclination == 65 and heavy.inclination == 70 and shifted.inclination == 61

    def test_uncertainty_shrinks_with_more_agreeing_votes(self):
        three = maths.consensus_compute([maths.VoteIn(x, "") for x in (60, 61, 62)])
        nine = maths.consensus_compute([maths.VoteIn(x, "") for x in (60, 61, 62) * 3])
        assert nine.uncertainty < three.uncertainty

    def test_face_on_majority_and_not_sure_counts_half(self):
        votes = [maths.VoteIn(None, "face_on"), maths.VoteIn(None, "face_on"), maths.VoteIn(50, "")]
        assert maths.consensus_compute(votes).status == "face_on"
        unsure = [maths.VoteIn(None, "face_on", not_sure=True), maths.VoteIn(50, "")]
        assert maths.consensus_compute(unsure).status == "accepted"

    def test_retirement_asks_for_more_votes_then_gives_up(self):
        split = maths.consensus_compute([maths.VoteIn(x, "") for x in (50, 65, 80)])
        assert maths.retirement_decide(split, quorum=3, max_votes=9) == (False, 1)
        many = maths.consensus_compute([maths.VoteIn(x, "") for x in (50, 58, 66, 74, 82, 50, 58, 66, 74)])
        assert maths.retirement_decide(many, quorum=3, max_votes=9)[0] is True

    def test_calibration_from_sums_recovers_a_constant_bias(self):
        pairs = [(x + 6.0, x) for x in (50, 55, 60, 65, 70, 75, 80)]
        sums = {
            "n": len(pairs),
            "sx": sum(x for x, _ in pairs),
            "sy": sum(y for _, y in pairs),
            "sxx": sum(x * x for x, _ in pairs),
            "sxy": sum(x * y for x, y in pairs),
            "syy": sum(y * y for _, y in pairs),
        }
        fit = maths.calibration_from_sums(**sums)
        assert fit.slope == pytest.approx(1.0) and fit.intercept == pytest.approx(-6.0) and fit.weight == 4
        noisy = [(x + (12 if k % 2 else -12), x) for k, x in enumerate((50, 55, 60, 65, 70, 75, 80, 85))]
        sums = {
            "n": len(noisy),
            "sx": sum(x for x, _ in noisy),
            "sy": sum(y for _, y in noisy),
            "sxx": sum(x * x for x, _ in noisy),
            "sxy": sum(x * y for x, y in noisy),
            "syy": sum(y * y for _, y in noisy),
        }
        assert maths.calibration_from_sums(**sums).weight <= 1


def build_votes(*, galaxies: int = 8) -> dict:
    """Two careful volunteers near the truth and one who reads every galaxy 6 deg too edge-on."""
    careful = [UserFactory(), UserFactory()]
    biased = UserFactory()
    for user in (*careful, biased):
        VolunteerProfile.objects.create(user=user)
    truths = {}
    for k in range(galaxies):
        galaxy = GalaxyFactory(votes_count=3)
        truth = 52.0 + 4 * k
        truths[galaxy.id] = truth
        Vote.objects.create(volunteer=careful[0], galaxy=galaxy, inclination=truth)
        Vote.objects.create(volunteer=careful[1], galaxy=galaxy, inclination=truth + 0.5)
        Vote.objects.create(volunteer=biased, galaxy=galaxy, inclination=truth + 6.0)
    gold = GalaxyFactory(is_gold=True, known_inclination=66.0)
    Vote.objects.create(volunteer=biased, galaxy=gold, inclination=72.0, was_gold=True)
    return {"truths": truths, "biased": biased, "careful": careful}


@pytest.mark.django_db
def test_full_recomputation_calibrates_volunteers_and_relabels(django_capture_on_commit_callbacks, monkeypatch):
    triggers = []
    monkeypatch.setattr(inference_services, "training_maybe_trigger", lambda: triggers.append(1))
    data = build_votes()
    recompute_consensus.delay()
    biased = VolunteerProfile.objects.get(user=data["biased"])
    # The model finds most of the biased volunteer's 6 deg (its prior holds a little back after 9 votes).
    assert biased.bias > 3 and biased.scale == pytest.approx(1.0, abs=0.2)
    assert biased.calibration_intercept < -3  # the same line the other way round, for the vote export
    labels = {label.galaxy_id: label for label in ConsensusLabel.objects.all()}
    assert set(labels) == set(data["truths"])  # every non-gold galaxy, and not the gold one
    for galaxy_id, truth in data["truths"].items():
        assert labels[galaxy_id].status == "accepted"
        assert abs(labels[galaxy_id].inclination - truth) <= 2.0
    assert Galaxy.objects.filter(retired_at__isnull=False).count() == len(data["truths"])
    assert triggers == [1]
    run = ConsensusRun.objects.get()
    assert (run.status, run.progress, run.stats["labels"]) == ("succeeded", 1.0, len(data["truths"]))
    # A second run changes nothing and creates no new labels.
    before = {g: (lbl.inclination, lbl.uncertainty) for g, lbl in labels.items()}
    recompute_consensus.delay()
    assert {lbl.galaxy_id: (lbl.inclination, lbl.uncertainty) for lbl in ConsensusLabel.objects.all()} == before
    assert triggers == [1]


@pytest.mark.django_db
def test_one_recomputation_at_a_time_and_a_dead_one_is_taken_over(monkeypatch, settings):
    settings.GIZ_VOTES_MAX = 3  # two galaxies are too few to fit the volunteers well: retire by the count
    monkeypatch.setattr(inference_services, "training_maybe_trigger", lambda: None)
    build_votes(galaxies=2)
    running = ConsensusRunFactory()
    assert recompute_consensus.delay().get() == {}  # skipped: the nightly task found one running
    assert ConsensusRun.objects.count() == 1 and not ConsensusLabel.objects.exists()
    ConsensusRun.objects.filter(pk=running.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    assert recompute_consensus.delay().get()["labels"] == 2
    running.refresh_from_db()
    assert (running.status, running.live) == ("failed", None)
    assert ConsensusRun.objects.get(live=None, status="succeeded")


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_recompute_consensus_runs_in_a_real_worker_against_postgres():
    require_postgres()
    url = broker_url("redis")
    data = build_votes(galaxies=8)
    started = timezone.now()
    with celery_worker(broker=url, queues="labeling-consensus-test"):
        send_task(url, "labeling.tasks.recompute_consensus", queue="labeling-consensus-test")
        wait_for(
            lambda: ConsensusLabel.objects.filter(updated_at__gte=started).count() == 8,
            timeout=60,
            what="the worker's consensus labels",
        )
    biased = VolunteerProfile.objects.get(user=data["biased"])
    assert biased.bias > 3
    assert wait_for(lambda: ConsensusRun.objects.filter(status="succeeded").exists(), timeout=30, what="the run row")


@pytest.mark.django_db
def test_the_command_shows_progress_and_staff_see_the_run_in_the_admin(bob_client, monkeypatch, capsys):
    from django.core.management import call_command
    from django.urls import reverse

    monkeypatch.setattr(inference_services, "training_maybe_trigger", lambda: None)
    build_votes(galaxies=2)
    call_command("recompute_consensus")
    assert "Done:" in capsys.readouterr().out
    page = bob_client.get(reverse("admin:labeling_consensusrun_changelist"))
    assert page.status_code == 200 and "100%" in page.content.decode()
