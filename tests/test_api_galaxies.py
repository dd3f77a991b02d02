"""Contract tests for /api/galaxies/ and /api/standards/: filters, cursor pagination, detail, bad input."""

import base64
from datetime import timedelta
from urllib.parse import quote

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from acquisition.standin import running_standin
from labeling.models import ConsensusLabel, ConsensusRun, Galaxy
from tests.api_fixtures import assert_error, standards_grid, token_client
from tests.factories import EnsemblePredictionFactory, GalaxyFactory, GalaxyImageFactory

pytestmark = pytest.mark.django_db

LIST = "/api/galaxies/"


def pgcs(response) -> list[int]:
    assert response.status_code == 200, response.content[:500]
    return [g["pgc"] for g in response.json()["results"]]


@pytest.fixture
def sky():
    """Galaxies spread over the sky, some with consensus labels."""
    a = GalaxyFactory(pgc=10, name="NGC0224", ra=10.68, dec=41.27)
    b = GalaxyFactory(pgc=20, name="NGC 4579", ra=189.43, dec=11.82, state=Galaxy.State.NEW)
    c = GalaxyFactory(pgc=30, name="UGC12345", ra=355.0, dec=-5.0)
    d = GalaxyFactory(pgc=40, name="M33", ra=23.46, dec=30.66)
    ConsensusLabel.objects.create(galaxy=a, status="accepted", inclination=77.0, uncertainty=2.0, n_votes=3)
    ConsensusLabel.objects.create(galaxy=c, status="accepted", inclination=52.0, uncertainty=3.0, n_votes=4)
    ConsensusLabel.objects.create(galaxy=d, status="face_on", n_votes=3)
    return a, b, c, d


class TestGalaxyList:
    def test_lists_everything_in_pgc_order_with_the_consensus(self, api_client, sky):
        body = api_client.get(LIST).json()
        assert [g["pgc"] for g in body["results"]] == [10, 20, 30, 40]
        first = body["results"][0]
        assert first["name"] == "NGC0224"
        assert first["consensus"]["inclination"] == 77.0
        assert body["results"][1]["consensus"] is None

    def test_every_consensus_names_its_date_and_the_refit_it_comes_from(self, api_client, sky):
        now = timezone.now()
        old = ConsensusRun.objects.create(
            live=None,
            status="succeeded",
            growth=1.0,
            class_prior=[0.8, 0.1, 0.1],
            sigma_typical=5.0,
            started_at=now - timedelta(days=2),
            finished_at=now - timedelta(days=2) + timedelta(minutes=5),
        )
        # A refit that failed before publishing its figures produced no label.
        ConsensusRun.objects.create(live=None, status="failed", started_at=now - timedelta(days=1))
        ConsensusLabel.objects.filter(galaxy__pgc=10).update(updated_at=now - timedelta(hours=1))
        ConsensusLabel.objects.filter(galaxy__pgc=30).update(updated_at=now - timedelta(days=3))

        listed = {g["pgc"]: g["consensus"] for g in api_client.get(LIST).json()["results"]}
        recent = listed[10]["provenance"]
        assert recent["method"] == "volunteer_model"
        assert recent["computed_at"] == listed[10]["updated_at"]
        assert recent["consensus_run"]["id"] == old.pk and recent["consensus_run"]["status"] == "succeeded"
        assert listed[30]["provenance"]["consensus_run"] is None  # computed before any refit
        detail = api_client.get("/api/galaxies/10/").json()["consensus"]
        assert detail["provenance"] == recent

    @pytest.mark.parametrize(
        "query, expected",
        [
            ("state=new", [20]),
            ("has_consensus=true", [10, 30, 40]),
            ("has_consensus=false", [20]),
            ("inclination_min=60", [10]),
            ("inclination_min=45&inclination_max=60", [30]),
            ("ra_min=10&ra_max=30", [10, 40]),
            ("dec_min=0&dec_max=35", [20, 40]),
            ("ra_min=350&ra_max=15", [10, 30]),  # a box across RA 0
            ("ra_min=0&ra_max=50&dec_min=35&dec_max=50", [10]),
            ("pgc=30", [30]),
            ("search=ngc 4579", [20]),
            ("search=ngc4579", [20]),
            ("search=m33", [40]),
            ("search=PGC30", [30]),
        ],
    )
    def test_filters(self, api_client, sky, query, expected):
        assert pgcs(api_client.get(f"{LIST}?{query}")) == expected

    def test_cursor_pages_through_every_galaxy_once(self, api_client):
        for pgc in range(100, 125):
            GalaxyFactory(pgc=pgc)
        seen, url = [], f"{LIST}?page_size=10"
        while url:
            body = api_client.get(url).json()
            seen += [g["pgc"] for g in body["results"]]
            url = body["next"]
        assert seen == list(range(100, 125))

    def test_a_page_is_a_constant_number_of_queries(self, api_client, django_assert_max_num_queries, sky):
        for pgc in range(100, 130):
            galaxy = GalaxyFactory(pgc=pgc)
            ConsensusLabel.objects.create(galaxy=galaxy, status="accepted", inclination=60.0, n_votes=3)
        with django_assert_max_num_queries(2):
            assert len(pgcs(api_client.get(f"{LIST}?page_size=50"))) == 34

    @pytest.mark.parametrize("size", ["501", "0", "-1", "ten", "99999999999999999999"])
    def test_page_size_beyond_the_maximum_is_a_400(self, api_client, size):
        error = assert_error(api_client.get(f"{LIST}?page_size={size}"), 400, "invalid")
        assert "page_size" in error["details"]

    def test_a_forged_cursor_is_a_404_in_the_error_format(self, api_client):
        assert_error(api_client.get(f"{LIST}?cursor=not-a-cursor"), 404, "not_found")

    @pytest.mark.parametrize("position", ["abc", "1e400", "12.5.3"])
    def test_a_hand_made_cursor_with_a_bad_position_is_a_404(self, api_client, sky, position):
        cursor = quote(base64.b64encode(f"o=0&p={position}".encode()).decode())
        assert_error(api_client.get(f"{LIST}?cursor={cursor}"), 404, "not_found")
        assert api_client.get(LIST).status_code == 200

    @pytest.mark.parametrize(
        "query, field",
        [
            ("ra_min=400", "ra_min"),
            ("dec_max=-91", "dec_max"),
            ("dec_min=10&dec_max=0", "dec_min"),
            ("inclination_min=95", "inclination_min"),
            ("inclination_min=70&inclination_max=50", "inclination_min"),
            ("state=shiny", "state"),
            ("has_consensus=perhaps", "has_consensus"),
            ("ra_min=nan", "ra_min"),
        ],
    )
    def test_out_of_range_filters_are_a_400_naming_the_field(self, api_client, query, field):
        error = assert_error(api_client.get(f"{LIST}?{query}"), 400, "invalid")
        assert field in error["details"]


class TestGalaxyDetail:
    def test_detail_has_images_consensus_and_predictions(self, api_client):
        galaxy = GalaxyFactory(with_image=True, pgc=2557, name="NGC0224")
        ConsensusLabel.objects.create(galaxy=galaxy, status="accepted", inclination=77.0, n_votes=5)
        EnsemblePredictionFactory(
            galaxy=galaxy, median=75.0, mean=74.5, spread=1.2, n_models=3, members={"a": 74.0, "b": 75.0, "c": 74.5}
        )
        body = api_client.get("/api/galaxies/2557/").json()
        assert body["pgc"] == 2557
        assert body["consensus"]["inclination"] == 77.0
        assert body["images"][0]["band"] == "color"
        assert body["images"][0]["url"].startswith("http://testserver/media/images/557/2557/")
        assert api_client.get(body["images"][0]["url"]).status_code == 200
        assert body["predictions"][0]["median"] == 75.0
        assert body["predictions"][0]["members"] == {"a": 74.0, "b": 75.0, "c": 74.5}

    def test_a_gold_galaxys_reference_value_is_hidden_from_volunteers(self, api_client, bob_client):
        GalaxyFactory(pgc=77, is_gold=True, known_inclination=66.0)
        assert api_client.get("/api/galaxies/77/").json()["known_inclination"] is None
        assert bob_client.get("/api/galaxies/77/").json()["known_inclination"] == 66.0

    @pytest.mark.parametrize("pgc", ["424242", "1234567890123456789012345", "-5", "abc"])
    def test_unknown_pgc_is_a_404_in_the_error_format(self, api_client, pgc):
        assert_error(api_client.get(f"/api/galaxies/{pgc}/"), 404, "not_found")


class TestStandards:
    def test_active_standards_by_inclination_with_images(self, api_client):
        standards = standards_grid(degrees=[80, 50, 65])
        standards[0].active = False
        standards[0].save(update_fields=["active"])
        GalaxyImageFactory()  # not a standard
        body = api_client.get("/api/standards/").json()
        assert [s["inclination"] for s in body["results"]] == [50.0, 65.0]
        assert body["results"][0]["images"][0]["band"] == "color"


class TestAcquireNow:
    def test_staff_fetch_a_galaxys_images_on_demand(self, bob, settings):
        galaxy = GalaxyFactory(pgc=4243, ra=150.0, dec=2.0, d25_arcmin=1.0, state=Galaxy.State.NEW)
        with running_standin() as standin:
            settings.GIZ_SDSS_CUTOUT_BASE_URL = standin.url
            settings.GIZ_SDSS_FRAMES_BASE_URL = f"{standin.url}/sas"
            settings.GIZ_SDSS_FETCH_FITS = False
            response = token_client(bob).post("/api/galaxies/4243/acquire/")
        assert response.status_code == 200, response.content[:500]
        assert [i["band"] for i in response.json()] == ["color"]
        galaxy.refresh_from_db()
        assert galaxy.state == Galaxy.State.READY and galaxy.images.count() == 1

    def test_sdss_failing_is_a_503_in_the_error_format_and_marks_nothing(self, bob, settings):
        galaxy = GalaxyFactory(pgc=4244, ra=150.0, dec=2.0, d25_arcmin=1.0, state=Galaxy.State.NEW)
        with running_standin() as standin:
            settings.GIZ_SDSS_CUTOUT_BASE_URL = standin.url
            settings.GIZ_SDSS_FETCH_FITS = False
            standin.faults.configure(next_faults=["503"] * 10, retry_after=0)
            response = token_client(bob).post("/api/galaxies/4244/acquire/")
        assert_error(response, 503, "sdss_unavailable")
        galaxy.refresh_from_db()
        assert galaxy.state == Galaxy.State.NEW and not galaxy.images.exists()  # transient: retried later

    def test_unknown_pgc_is_a_404(self, bob):
        assert_error(token_client(bob).post("/api/galaxies/424242/acquire/"), 404, "not_found")


class TestAnswersStayHidden:
    """A gold galaxy's answer scores volunteers, an unretired one's is what they are asked: neither is given away."""

    @pytest.fixture
    def galaxies(self, alice):
        gold = GalaxyFactory(
            pgc=77, is_gold=True, known_inclination=66.0, axial_ratio=0.45, position_angle=30.0, with_image=True
        )
        ConsensusLabel.objects.create(galaxy=gold, status="accepted", inclination=66.5, n_votes=3)
        EnsemblePredictionFactory(galaxy=gold, median=65.0)
        open_ = GalaxyFactory(pgc=78, axial_ratio=0.3, position_angle=10.0)
        retired = GalaxyFactory(pgc=79, axial_ratio=0.6, position_angle=20.0, retired_at="2026-01-01T00:00Z")
        return gold, open_, retired

    @pytest.mark.parametrize("who", ["anonymous", "alice"])
    def test_volunteers_see_no_b_a_position_angle_consensus_or_prediction_of_gold(self, galaxies, alice, who):
        client = token_client(alice) if who == "alice" else APIClient()
        gold = client.get("/api/galaxies/77/").json()
        assert (gold["axial_ratio"], gold["position_angle"], gold["known_inclination"]) == (None, None, None)
        assert gold["consensus"] is None and gold["predictions"] == []
        listed = {g["pgc"]: g for g in client.get(LIST).json()["results"]}
        assert listed[77]["axial_ratio"] is None and listed[77]["consensus"] is None
        assert (listed[78]["axial_ratio"], listed[78]["position_angle"]) == (None, None)  # not retired yet
        assert (listed[79]["axial_ratio"], listed[79]["position_angle"]) == (0.6, 20.0)  # retired: public
        # Nor can the consensus filters probe a gold galaxy's answer.
        assert 77 not in pgcs(client.get(LIST, {"inclination_min": 66, "inclination_max": 67}))

    def test_staff_see_everything(self, galaxies, bob):
        gold = token_client(bob).get("/api/galaxies/77/").json()
        assert (gold["axial_ratio"], gold["position_angle"], gold["known_inclination"]) == (0.45, 30.0, 66.0)
        assert gold["consensus"]["inclination"] == 66.5 and gold["predictions"][0]["median"] == 65.0
        assert 77 in pgcs(token_client(bob).get(LIST, {"inclination_min": 66, "inclination_max": 67}))

    def test_the_served_galaxy_comes_without_b_a_or_position_angle(self, alice):
        standards_grid(degrees=list(range(45, 91)))
        GalaxyFactory(pgc=80, axial_ratio=0.3, position_angle=10.0, with_image=True)
        served = token_client(alice).get("/api/assignments/next/").json()["galaxy"]
        assert served["pgc"] == 80
        assert not {"axial_ratio", "position_angle", "known_inclination", "consensus"} & set(served)

    def test_a_volunteers_catalogue_leaves_gold_galaxies_out(self, galaxies, alice, bob):
        def exported(user) -> str:
            response = token_client(user).get("/api/catalog/", {"format": "csv"})
            return b"".join(response.streaming_content).decode()

        assert "\n77," not in exported(alice) and "\n79," in exported(alice)
        assert "\n77," in exported(bob)
