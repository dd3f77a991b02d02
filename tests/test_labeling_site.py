"""The volunteer website through HTTP: accounts, serving galaxies, voting, bad input, consensus."""

import re

import pytest
from django.core import mail
from django.core.files.storage import default_storage
from django.http import HttpRequest  # django-axes needs a request to count the login
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from inference import services as inference_services
from labeling import services
from labeling.models import Assignment, ConsensusLabel, Galaxy, VolunteerProfile, Vote
from tests.factories import DiscrepancyAlarmFactory, EnsemblePredictionFactory, UserFactory
from tests.labeling_fixtures import make_galaxy, make_gold, make_standards

pytestmark = pytest.mark.django_db


@pytest.fixture
def standards(db):
    return make_standards()


@pytest.fixture(autouse=True)
def no_gold_by_chance(monkeypatch):
    # Gold galaxies are drawn at random; tests that want one create only gold galaxies.
    monkeypatch.setattr(services.serving, "GOLD_RATES", ((float("inf"), 0.0),))


def served(client) -> dict:
    """Open the labeling page and return what it served: token, galaxy id and standards by degree."""
    response = client.get(reverse("label"))
    assert response.status_code == 200
    return response.context["page_data"]


def vote_form(page: dict, low: int, *, csrf: bool = False, **overrides) -> dict:
    """The form the page's script posts after placing the target between `low` and `low + 1` degrees."""
    left, right = page["standards"][str(low)], page["standards"][str(low + 1)]
    form = {
        "token": page["token"],
        "galaxy": str(page["galaxy"]["id"]),
        "inclination": f"{(left['inclination'] + right['inclination']) / 2:.1f}",
        "left_standard": str(left["id"]),
        "right_standard": str(right["id"]),
        "flag": "",
        "note": "",
        "seconds_taken": "42.5",
    }
    form.update(overrides)
    return form


def stored_pixels(url: str):
    """The pixels of a stored image the page links to (storage URL -> storage name)."""
    import io

    import numpy as np
    from PIL import Image

    name = url.removeprefix(default_storage.base_url)
    with default_storage.open(name, "rb") as handle:
        return np.asarray(Image.open(io.BytesIO(handle.read())).convert("RGB"))


def measured_pa(url_or_pixels) -> float:
    """The position angle inference's axial-ratio baseline measures on the image (north through east)."""
    from inference import baseline

    pixels = stored_pixels(url_or_pixels) if isinstance(url_or_pixels, str) else url_or_pixels
    return baseline.measure_axial_ratio(pixels).position_angle


def axis_off_horizontal(position_angle: float) -> float:
    return abs(((position_angle - 90.0) + 90.0) % 180.0 - 90.0)


class TestAccounts:
    def test_sign_up_creates_a_profile_and_logs_in(self, client):
        response = client.post(
            reverse("signup"),
            {
                "username": "dana",
                "email": "dana@example.org",
                "display_name": "Dana S.",
                "password1": "a-long-Passphrase-42",
                "password2": "a-long-Passphrase-42",
            },
        )
        assert response.status_code == 302 and response["Location"] == reverse("label")
        profile = VolunteerProfile.objects.get(user__username="dana")
        assert profile.display_name == "Dana S." and profile.show_on_leaderboard
        assert client.get(reverse("profile")).status_code == 200

    def test_sign_up_rejects_mismatched_passwords(self, client):
        response = client.post(
            reverse("signup"),
            {"username": "eve", "email": "e@example.org", "password1": "a-long-Passphrase-42", "password2": "x"},
        )
        assert response.status_code == 200
        assert "password fields didn" in response.content.decode()
        assert not VolunteerProfile.objects.filter(user__username="eve").exists()

    def test_password_reset_sends_a_working_link(self, client, alice):
        client.post(reverse("password_reset"), {"email": alice.email})
        assert len(mail.outbox) == 1
        link = re.search(r"http://testserver(/accounts/reset/\S+)", mail.outbox[0].body).group(1)
        response = client.get(link, follow=True)
        assert "Choose a new password" in response.content.decode()
        response = client.post(
            response.redirect_chain[-1][0],
            {"new_password1": "another-Long-pass-99", "new_password2": "another-Long-pass-99"},
            follow=True,
        )
        assert "Your password is set" in response.content.decode()
        assert Client().login(request=HttpRequest(), username="alice", password="another-Long-pass-99")

    def test_staff_see_the_admin_link_volunteers_do_not(self, alice_client, bob):
        assert reverse("admin:index") not in alice_client.get(reverse("home")).content.decode()
        staff = Client()
        staff.force_login(bob)
        assert reverse("admin:index") in staff.get(reverse("home")).content.decode()

    def test_leaderboard_shows_only_volunteers_who_opted_in(self, client, alice, charlie):
        VolunteerProfile.objects.create(user=alice, display_name="Alice A.", show_on_leaderboard=True, votes_count=5)
        VolunteerProfile.objects.create(user=charlie, display_name="Secret C.", votes_count=9)
        page = client.get(reverse("leaderboard")).content.decode()
        assert "Alice A." in page and "Secret C." not in page

    def test_labeling_needs_a_login(self, client):
        response = client.get(reverse("label"))
        assert response.status_code == 302 and reverse("login") in response["Location"]


class TestServing:
    def test_the_page_shows_the_target_and_a_standard_per_degree(self, alice_client, standards):
        galaxy = make_galaxy()
        page = served(alice_client)
        assert page["galaxy"]["id"] == galaxy.id and page["galaxy"]["url"].endswith(".jpg")
        assert sorted(int(d) for d in page["standards"]) == list(range(45, 91))
        assert all(abs(s["inclination"] - int(d)) <= 0.5 for d, s in page["standards"].items())

    @pytest.mark.parametrize("catalogue_pa", [30.0, 135.0, None], ids=["catalogue-30", "catalogue-135", "measured"])
    def test_the_target_and_standards_are_shown_turned_major_axis_horizontal(self, alice_client, catalogue_pa):
        standards = make_standards(low=60, high=62)
        # The image is drawn at the catalogue's angle; without one, at 30 deg, which is then measured on it.
        drawn_at = 30.0 if catalogue_pa is None else catalogue_pa
        galaxy = make_galaxy(inclination=70.0, position_angle=catalogue_pa, drawn_at=drawn_at, size=96)
        page = served(alice_client)
        assert page["galaxy"]["id"] == galaxy.id
        assert set(page["galaxy"]) == {"id", "pgc", "name", "url", "unrotated_url"}  # no angle, no b/a
        assert (
            page["galaxy"]["url"].endswith("_horizontal.jpg")
            and page["galaxy"]["url"] != page["galaxy"]["unrotated_url"]
        )
        assert measured_pa(page["galaxy"]["unrotated_url"]) == pytest.approx(drawn_at, abs=4)
        assert axis_off_horizontal(measured_pa(page["galaxy"]["url"])) < 4
        standard = page["standards"]["61"]
        assert set(standard) == {"id", "inclination", "url", "unrotated_url"}
        assert measured_pa(standard["unrotated_url"]) == pytest.approx(standards[61][0].galaxy.position_angle, abs=4)
        assert axis_off_horizontal(measured_pa(standard["url"])) < 4

    def test_images_stored_before_get_their_horizontal_copy_from_the_command(self, alice_client):
        from django.core.management import call_command

        make_standards(low=60, high=62)
        galaxy = make_galaxy(inclination=70.0, position_angle=150.0, size=96)
        horizontal = galaxy.color_image.name.rpartition(".")[0] + "_horizontal.jpg"
        default_storage.delete(horizontal)
        Galaxy.objects.update(color_image_horizontal="")
        assert served(alice_client)["galaxy"]["url"] == served(alice_client)["galaxy"]["unrotated_url"]
        call_command("horizontal_images")
        assert Galaxy.objects.filter(color_image_horizontal="").count() == 0
        assert axis_off_horizontal(measured_pa(served(alice_client)["galaxy"]["url"])) < 4

    def test_a_reload_serves_the_same_galaxy(self, alice_client, standards):
        make_galaxy(), make_galaxy()
        assert served(alice_client)["token"] == served(alice_client)["token"]

    def test_never_a_galaxy_already_voted_on_and_fewest_votes_first(self, alice, charlie, standards):
        done, fresh, half = make_galaxy(), make_galaxy(), make_galaxy()
        Vote.objects.create(volunteer=alice, galaxy=done, inclination=60)
        Galaxy.objects.filter(pk=done.pk).update(votes_count=1)
        Vote.objects.create(volunteer=charlie, galaxy=half, inclination=60)
        Galaxy.objects.filter(pk=half.pk).update(votes_count=1)
        assert services.assignment_next(volunteer=alice).galaxy == fresh

    def test_higher_priority_first(self, alice, standards):
        make_galaxy()
        urgent = make_galaxy(label_priority=30.0)  # above an unvoted galaxy's 16
        assert services.assignment_next(volunteer=alice).galaxy == urgent

    def test_the_last_vote_is_reserved_for_one_volunteer(self, standards, settings):
        settings.GIZ_VOTES_TO_RETIRE = 2
        galaxy = make_galaxy()
        first, second, third = UserFactory(), UserFactory(), UserFactory()
        assert services.assignment_next(volunteer=first).galaxy == galaxy
        assert services.assignment_next(volunteer=second).galaxy == galaxy
        # Two open assignments hold both votes the galaxy needs: the third volunteer gets nothing.
        assert services.assignment_next(volunteer=third) is None

    def test_gold_galaxies_are_mixed_in(self, alice, standards, monkeypatch):
        monkeypatch.setattr(services.serving, "GOLD_RATES", ((float("inf"), 1.0),))
        make_galaxy()
        gold = make_gold()
        assignment = services.assignment_next(volunteer=alice)
        assert assignment.galaxy == gold and assignment.is_gold

    def test_gold_rate_falls_with_experience(self, monkeypatch):
        monkeypatch.undo()  # the real schedule, not the autouse fixture's
        rates = [services.gold_rate(votes_count=n) for n in (0, 14, 15, 39, 40, 500)]
        assert rates == [1 / 3, 1 / 3, 1 / 5, 1 / 5, 1 / 10, 1 / 10]

    def test_reshuffle_draws_other_standards_that_then_count_as_shown(self, alice_client, db):
        make_standards(per_degree=2)
        make_galaxy()
        page = served(alice_client)
        # The page's button calls the API with the session (and the CSRF header the test client does not need).
        response = alice_client.post(
            reverse("api:assignment-reshuffle"),
            {"token": page["token"], "degrees": [60, 61]},
            content_type="application/json",
        )
        assert response.status_code == 200
        fresh = response.json()["standards"]
        assert fresh["60"]["id"] != page["standards"]["60"]["id"]
        form = vote_form({**page, "standards": {**page["standards"], **fresh}}, 60)
        assert alice_client.post(reverse("vote"), form).status_code == 302
        assert Vote.objects.get().left_standard_id == fresh["60"]["id"]


class TestVoting:
    def test_a_two_step_vote_is_recorded_with_its_neighbours_and_time(self, alice_client, alice, standards):
        galaxy = make_galaxy()
        page = served(alice_client)
        response = alice_client.post(reverse("vote"), vote_form(page, 62))
        assert response.status_code == 302
        vote = Vote.objects.get()
        assert (vote.galaxy, vote.volunteer, vote.flag) == (galaxy, alice, "")
        assert vote.inclination == pytest.approx(62.5)
        assert (vote.left_standard_id, vote.right_standard_id) == (
            page["standards"]["62"]["id"],
            page["standards"]["63"]["id"],
        )
        assert vote.seconds_taken == pytest.approx(0.0, abs=5) or vote.seconds_taken <= 42.5
        galaxy.refresh_from_db()
        assert galaxy.votes_count == 1
        assert VolunteerProfile.objects.get(user=alice).votes_count == 1
        assert Assignment.objects.get().used_at is not None

    def test_face_on_and_flags_record_no_inclination(self, alice_client, standards):
        make_galaxy(), make_galaxy()
        page = served(alice_client)
        form = vote_form(page, 45, inclination="", flag="face_on", left_standard="")
        assert alice_client.post(reverse("vote"), form).status_code == 302
        page = served(alice_client)
        form = vote_form(page, 45, inclination="", flag="not_spiral", left_standard="", right_standard="")
        form["not_sure"], form["note"] = "1", "looks like an elliptical"
        assert alice_client.post(reverse("vote"), form).status_code == 302
        flags = sorted(Vote.objects.values_list("flag", "inclination", "not_sure", "note"))
        assert flags == [("face_on", None, False, ""), ("not_spiral", None, True, "looks like an elliptical")]

    def test_double_submission_saves_once(self, alice_client, standards):
        make_galaxy(), make_galaxy()
        page = served(alice_client)
        form = vote_form(page, 70)
        assert alice_client.post(reverse("vote"), form).status_code == 302
        again = alice_client.post(reverse("vote"), form)
        assert again.status_code == 409
        assert "already recorded" in again.content.decode()
        assert Vote.objects.count() == 1

    @pytest.mark.parametrize(
        ("overrides", "message"),
        [
            ({"inclination": "95"}, "between 45 and 90"),
            ({"inclination": "30"}, "between 45 and 90"),
            ({"inclination": "80"}, "does not lie between"),
            ({"inclination": "nan"}, "not a number"),
            ({"left_standard": "999999"}, "not shown"),
            ({"flag": "excellent"}, "Unknown flag"),
            ({"flag": "not_spiral"}, "either an inclination or a flag"),
            ({"token": "forged"}, "does not belong"),
            ({"galaxy": "424242"}, "different galaxy"),
            # The API's serializer reads the form: NUL, digits int() cannot read, non-finite and huge numbers.
            ({"note": "two\x00discs"}, "Null characters are not allowed"),
            ({"token": "t\x00"}, "Null characters are not allowed"),
            ({"left_standard": "\u00b2"}, "left_standard_id: A valid integer is required"),
            ({"right_standard": str(2**63)}, "right_standard_id: Ensure this value is less than or equal to"),
            ({"inclination": "1e999"}, "inclination: This is not a number"),
            ({"seconds_taken": "-Infinity"}, "seconds_taken: This is not a number"),
            ({"not_sure": "perhaps"}, "not_sure: Must be a valid boolean"),
        ],
    )
    def test_tampered_forms_save_nothing_and_say_why(self, alice_client, standards, overrides, message):
        galaxy = make_galaxy()
        page = served(alice_client)
        response = alice_client.post(reverse("vote"), vote_form(page, 62, **overrides))
        assert response.status_code in (400, 409)
        assert message in response.content.decode()
        assert not Vote.objects.exists()
        galaxy.refresh_from_db()
        assert galaxy.votes_count == 0
        # The galaxy is still open for a correct vote afterwards.
        assert alice_client.post(reverse("vote"), vote_form(served(alice_client), 62)).status_code == 302

    def test_a_broken_feedback_link_is_a_400_that_still_serves_the_next_galaxy(self, alice_client, standards):
        galaxy = make_galaxy()
        for value in ("\u00b2", "\u0661x", "-1", str(2**63), "1e3"):  # a NUL in a URL is refused earlier
            response = alice_client.get(reverse("label"), {"feedback": value})
            assert response.status_code == 400, value
            assert "feedback is not valid" in response.content.decode()
            assert response.context["page_data"]["galaxy"]["id"] == galaxy.id

    @pytest.mark.parametrize(
        "degrees", ["[1e999]", "[Infinity]", "[-Infinity]", "[NaN]", "[" * 5_000 + "]" * 5_000, '["\u00b2"]', "[60.5]"]
    )
    def test_a_hostile_reshuffle_from_the_page_is_a_400_that_changes_nothing(self, alice_client, db, degrees):
        make_standards(per_degree=2)
        make_galaxy()
        page = served(alice_client)
        shown = Assignment.objects.get().standard_ids
        body = '{"token": "' + page["token"] + '", "degrees": ' + degrees + "}"
        response = alice_client.post(reverse("api:assignment-reshuffle"), body, content_type="application/json")
        assert response.status_code == 400
        assert response.json()["error"]["message"]  # the API's error shape, which the page shows
        assert Assignment.objects.get().standard_ids == shown

    def test_a_standard_that_was_not_shown_is_refused(self, alice_client, db):
        from labeling.models import StandardGalaxy

        make_standards(per_degree=2)
        make_galaxy()
        page = served(alice_client)
        shown = Assignment.objects.get().standard_ids
        hidden = StandardGalaxy.objects.exclude(id__in=shown).filter(inclination__gte=62, inclination__lt=63).get()
        response = alice_client.post(reverse("vote"), vote_form(page, 62, left_standard=str(hidden.id)))
        assert response.status_code == 400 and "not shown" in response.content.decode()
        assert not Vote.objects.exists()

    def test_a_vote_on_a_retired_galaxy_is_refused(self, alice_client, standards):
        galaxy = make_galaxy()
        page = served(alice_client)
        Galaxy.objects.filter(pk=galaxy.pk).update(retired_at="2026-01-01T00:00Z")
        response = alice_client.post(reverse("vote"), vote_form(page, 62))
        assert response.status_code == 409
        assert "collected all the votes" in response.content.decode()
        assert not Vote.objects.exists()

    def test_a_missing_csrf_token_gets_a_clear_page_and_saves_nothing(self, alice, standards):
        make_galaxy()
        client = Client(enforce_csrf_checks=True)
        client.force_login(alice)
        page = served(client)
        response = client.post(reverse("vote"), vote_form(page, 62))
        assert response.status_code == 403
        assert "security token was missing" in response.content.decode()
        assert not Vote.objects.exists()

    def test_gold_vote_gives_feedback_with_the_known_value(self, alice_client, alice, standards, monkeypatch):
        monkeypatch.setattr(services.serving, "GOLD_RATES", ((float("inf"), 1.0),))
        make_gold(known=67.3)
        page = served(alice_client)
        response = alice_client.post(reverse("vote"), vote_form(page, 64), follow=True)
        text = response.content.decode()
        assert "Gold galaxy check" in text and "67.3°" in text and "64.5°" in text and "2.8° away" in text
        assert response.context["feedback"]["bracket"][0]["inclination"] == 67.0
        profile = VolunteerProfile.objects.get(user=alice)
        assert profile.gold_votes_count == 1 and profile.gold_abs_error_sum == pytest.approx(2.8)


class TestConsensus:
    def vote_as(self, user, low: int, **overrides):
        client = Client()
        client.force_login(user)
        page = served(client)
        return client.post(reverse("vote"), vote_form(page, low, **overrides))

    def test_a_galaxy_retires_with_a_label_once_its_posterior_is_narrow_enough(
        self, standards, monkeypatch, django_capture_on_commit_callbacks, settings
    ):
        # Volunteers not yet fitted count as typical: two agreeing votes leave sigma near 3.8 deg, three 3.2.
        settings.GIZ_RETIRE_SD = 3.5
        triggers = []
        monkeypatch.setattr(inference_services, "training_maybe_trigger", lambda: triggers.append(1))
        galaxy = make_galaxy()
        with django_capture_on_commit_callbacks(execute=True):
            for low in (60, 61):
                assert self.vote_as(UserFactory(), low).status_code == 302
            galaxy.refresh_from_db()
            assert services.galaxy_posterior_get(galaxy=galaxy).sd > settings.GIZ_RETIRE_SD
            assert galaxy.retired_at is None and not ConsensusLabel.objects.filter(galaxy=galaxy).exists()
            assert self.vote_as(UserFactory(), 62).status_code == 302
        galaxy.refresh_from_db()
        label = ConsensusLabel.objects.get(galaxy=galaxy)
        assert galaxy.retired_at is not None
        assert (label.status, label.n_votes, label.n_numeric) == ("accepted", 3, 3)
        assert label.inclination == pytest.approx(61.5, abs=0.6)  # a little toward the prior's 67.5
        assert label.uncertainty == round(services.galaxy_posterior_get(galaxy=galaxy).sd, 3) <= 3.5
        assert triggers == [1]  # one new label, one call toward the retraining trigger

    def test_disagreeing_votes_ask_for_more(self, standards, settings):
        settings.GIZ_RETIRE_SD = 3.0
        galaxy = make_galaxy()
        for low in (50, 62, 80):
            self.vote_as(UserFactory(), low)
        galaxy.refresh_from_db()
        assert galaxy.retired_at is None and galaxy.extra_votes == 1
        self.vote_as(UserFactory(), 61)
        self.vote_as(UserFactory(), 63)
        galaxy.refresh_from_db()
        assert galaxy.retired_at is not None
        label = ConsensusLabel.objects.get(galaxy=galaxy)
        assert label.n_votes == 5 and label.inclination == pytest.approx(62.5, abs=0.6)

    def test_two_rejections_retire_the_galaxy_as_rejected(self, standards):
        galaxy = make_galaxy()
        no_number = {"inclination": "", "left_standard": "", "right_standard": ""}
        self.vote_as(UserFactory(), 70, flag="not_spiral", **no_number)
        galaxy.refresh_from_db()
        assert galaxy.retired_at is None  # one call is 80% sure: not enough
        self.vote_as(UserFactory(), 70, flag="bad_image", **no_number)
        galaxy.refresh_from_db()
        label = ConsensusLabel.objects.get(galaxy=galaxy)
        assert galaxy.retired_at is not None and label.n_votes == 2
        assert label.status == "rejected" and label.inclination is None
        assert label.agreement == label.p_rejected == pytest.approx(0.97, abs=0.01)

    def test_profile_shows_agreement_and_gold_accuracy(self, alice, standards, monkeypatch, settings):
        settings.GIZ_VOTES_MAX = 3
        galaxy = make_galaxy()
        for user, low in ((alice, 60), (UserFactory(), 61), (UserFactory(), 60)):
            self.vote_as(user, low)
        assert ConsensusLabel.objects.filter(galaxy=galaxy).exists()
        monkeypatch.setattr(services.serving, "GOLD_RATES", ((float("inf"), 1.0),))
        make_gold(known=70.0)
        self.vote_as(alice, 72)
        client = Client()
        client.force_login(alice)
        figures = client.get(reverse("profile")).context["figures"]
        assert figures["votes"] == 2 and figures["agreement"] == 100
        assert figures["gold_votes"] == 1 and figures["gold_mae"] == 2.5


class TestBandImages:
    def test_band_view_renders_a_grey_png_from_the_colour_image(self, alice_client):
        galaxy = make_galaxy()
        response = alice_client.get(reverse("galaxy_band", args=[galaxy.id, "r"]))
        assert response.status_code == 200 and response["Content-Type"] == "image/png"
        assert response.content[:8] == b"\x89PNG\r\n\x1a\n"
        assert "max-age" in response["Cache-Control"]
        assert alice_client.get(reverse("galaxy_band", args=[galaxy.id, "z"])).status_code == 404

    def test_band_view_turns_like_the_page_when_asked(self, alice_client):
        import io

        import numpy as np
        from PIL import Image

        galaxy = make_galaxy(inclination=75.0, position_angle=20.0, size=96)
        url = reverse("galaxy_band", args=[galaxy.id, "r"])
        as_observed = np.asarray(Image.open(io.BytesIO(alice_client.get(url).content)))
        turned = np.asarray(Image.open(io.BytesIO(alice_client.get(url + "?horizontal=1").content)))
        assert as_observed.shape == turned.shape == (96, 96)
        assert measured_pa(as_observed) == pytest.approx(20.0, abs=4)
        assert axis_off_horizontal(measured_pa(turned)) < 4

    def test_band_view_renders_a_plane_of_a_fits_cube(self, alice_client):
        import io

        import numpy as np
        from django.core.files.base import ContentFile
        from PIL import Image

        from acquisition import renderer as synthetic
        from acquisition.models import GalaxyImage

        galaxy = make_galaxy()
        rendering = synthetic.render_galaxy(
            synthetic.draw_params(np.random.default_rng(1), inclination=70.0), size=64, seed=1
        )
        image = GalaxyImage(galaxy=galaxy, band="gri", format="fits", source="synthetic", width=64, height=64)
        image.file.save(f"{galaxy.pgc}-gri.fits", ContentFile(synthetic.to_fits(rendering)), save=False)
        image.save()
        planes = {}
        for band in ("g", "i"):
            response = alice_client.get(reverse("galaxy_band", args=[galaxy.id, band]))
            assert response.status_code == 200 and response["Content-Type"] == "image/png"
            planes[band] = np.asarray(Image.open(io.BytesIO(response.content)))
        assert planes["g"].shape == (64, 64) and planes["g"].max() > 100  # stretched, not black
        assert not np.array_equal(planes["g"], planes["i"])  # really two different bands


class TestActiveLearning:
    def test_model_disagreement_and_alarms_put_a_galaxy_first(self, alice, standards):
        calm, spread, alarmed = make_galaxy(), make_galaxy(), make_galaxy()
        EnsemblePredictionFactory(galaxy=calm, median=60, mean=60, spread=0.5)
        EnsemblePredictionFactory(galaxy=spread, median=60, mean=61, spread=7.0)
        DiscrepancyAlarmFactory(galaxy=alarmed, kind="human_disagreement")
        priorities = {g.pk: inference_services.galaxy_priority_refresh(galaxy=g) for g in (calm, spread, alarmed)}
        assert priorities[alarmed.pk] > priorities[spread.pk] > priorities[calm.pk]
        assert Galaxy.objects.get(pk=spread.pk).label_priority == priorities[spread.pk]
        assert services.assignment_next(volunteer=alice).galaxy == alarmed

    def test_votes_far_from_the_models_raise_the_priority(self, standards):
        near, far = make_galaxy(), make_galaxy()
        for galaxy, low in ((near, 79), (far, 55)):
            EnsemblePredictionFactory(galaxy=galaxy, median=80, mean=80, spread=1.0)
            unvoted = inference_services.galaxy_priority_refresh(galaxy=galaxy)
            Galaxy.objects.exclude(pk=galaxy.pk).update(retired_at=timezone.now())  # serve this one
            client = Client()
            client.force_login(UserFactory())
            client.post(reverse("vote"), vote_form(served(client), low))
            Galaxy.objects.exclude(pk=galaxy.pk).update(retired_at=None)
            galaxy.refresh_from_db()
            assert galaxy.votes_count == 1
            assert galaxy.label_priority < unvoted  # the widest posterior is the unvoted one
        # Same posterior width, but the far one's votes disagree with the models by 24 deg: it comes first.
        assert far.label_priority > near.label_priority + 5
