"""Contract tests for volunteering through the API: next assignment, vote with its one-time token, own votes."""

import pytest

from labeling.models import Assignment, Vote
from tests.api_fixtures import assert_error, standards_grid, token_client
from tests.factories import GalaxyFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def field():
    """Two galaxies to label and a full grid of standards."""
    standards_grid()
    return [GalaxyFactory(with_image=True, pgc=5001), GalaxyFactory(with_image=True, pgc=5002)]


def answer_between(assignment: dict, low: int, high: int, inclination: float) -> dict:
    grid = assignment["grid"]
    return {
        "token": assignment["token"],
        "inclination": inclination,
        "left_standard_id": grid[str(low)],
        "right_standard_id": grid[str(high)],
        "seconds_taken": 42,
    }


class TestVoting:
    def test_a_volunteer_labels_a_galaxy_through_the_api(self, alice, field):
        client = token_client(alice)
        response = client.get("/api/assignments/next/")
        assert response.status_code == 200, response.content
        assignment = response.json()
        assert assignment["galaxy"]["pgc"] in {5001, 5002}
        assert assignment["galaxy"]["images"][0]["band"] == "color"
        assert "consensus" not in assignment["galaxy"]  # no hint of the answer
        assert set(assignment["grid"]) == {str(d) for d in range(45, 91)}
        assert {s["id"] for s in assignment["standards"]} >= set(assignment["grid"].values())

        response = client.post("/api/votes/", answer_between(assignment, 60, 61, 60.5), format="json")
        assert response.status_code == 201, response.content
        vote = response.json()
        assert vote["pgc"] == assignment["galaxy"]["pgc"] and vote["inclination"] == 60.5
        stored = Vote.objects.get(pk=vote["id"])
        assert stored.volunteer == alice and stored.seconds_taken is not None

        mine = client.get("/api/votes/").json()["results"]
        assert [v["id"] for v in mine] == [vote["id"]]
        assert client.get(f"/api/votes/{vote['id']}/").json()["inclination"] == 60.5

    def test_the_assignment_and_the_vote_answer_every_documented_field(self, alice, field):
        # The hot path writes these answers out by hand (no DRF field-by-field representation): every field the
        # schema documents, with the stored values, dates in ISO 8601 with Z.
        client = token_client(alice)
        assignment = client.get("/api/assignments/next/").json()
        served = Assignment.objects.get(token=assignment["token"])
        galaxy, image = served.galaxy, served.galaxy.images.get()
        assert assignment["expires_at"] == served.expires_at.isoformat().replace("+00:00", "Z")
        assert assignment["galaxy"] == {
            "pgc": galaxy.pgc,
            "name": galaxy.name,
            "ra": galaxy.ra,
            "dec": galaxy.dec,
            "d25_arcmin": galaxy.d25_arcmin,
            "images": [
                {
                    "id": image.id,
                    "band": "color",
                    "format": image.format,
                    "source": image.source,
                    "width": image.width,
                    "height": image.height,
                    "pixel_scale": image.pixel_scale,
                    "url": f"http://testserver{image.file.url}",
                    "acquired_at": image.acquired_at.isoformat().replace("+00:00", "Z"),
                }
            ],
        }
        assert [s["id"] for s in assignment["standards"]] == sorted(served.standard_ids)  # one per degree here
        assert set(assignment["standards"][0]) == {"id", "pgc", "name", "inclination", "inclination_source", "images"}

        answer = answer_between(assignment, 60, 61, 60.5) | {"note": " looks warped ", "not_sure": True}
        vote = client.post("/api/votes/", answer, format="json").json()
        stored = Vote.objects.get()
        assert vote == {
            "id": stored.id,
            "pgc": galaxy.pgc,
            "inclination": 60.5,
            "flag": "",
            "not_sure": True,
            "note": "looks warped",
            "left_standard": assignment["grid"]["60"],
            "right_standard": assignment["grid"]["61"],
            "seconds_taken": stored.seconds_taken,
            "created_at": stored.created_at.isoformat().replace("+00:00", "Z"),
        }
        assert client.get(f"/api/votes/{stored.id}/").json() == vote

    def test_a_flag_instead_of_an_inclination(self, alice, field):
        client = token_client(alice)
        assignment = client.get("/api/assignments/next/").json()
        response = client.post("/api/votes/", {"token": assignment["token"], "flag": "face_on"}, format="json")
        assert response.status_code == 201, response.content
        assert response.json()["flag"] == "face_on" and response.json()["inclination"] is None

    def test_a_token_is_used_once(self, alice, field):
        client = token_client(alice)
        assignment = client.get("/api/assignments/next/").json()
        answer = answer_between(assignment, 70, 71, 70.2)
        assert client.post("/api/votes/", answer, format="json").status_code == 201
        assert_error(client.post("/api/votes/", answer, format="json"), 409, "already_voted")
        assert Vote.objects.count() == 1

    def test_another_volunteers_token_is_refused(self, alice, charlie, field):
        assignment = token_client(alice).get("/api/assignments/next/").json()
        response = token_client(charlie).post("/api/votes/", answer_between(assignment, 50, 51, 50.5), format="json")
        assert_error(response, 400, "unknown_assignment")
        assert not Vote.objects.exists()

    @pytest.mark.parametrize(
        "change, code",
        [
            ({"inclination": 30.0}, "inclination_out_of_range"),
            ({"inclination": 80.0}, "inclination_not_between"),
            ({"left_standard_id": 999999}, "standard_not_shown"),
            ({"flag": "face_on"}, "flag_and_inclination"),
        ],
    )
    def test_the_websites_rules_apply(self, alice, field, change, code):
        client = token_client(alice)
        assignment = client.get("/api/assignments/next/").json()
        assert_error(
            client.post("/api/votes/", answer_between(assignment, 60, 61, 60.5) | change, format="json"), 400, code
        )

    @pytest.mark.parametrize(
        "body, field_name",
        [
            ({}, "token"),
            ({"token": "x", "flag": "sparkly"}, "flag"),
            ({"token": "x", "inclination": "steep"}, "inclination"),
            ({"token": "x", "seconds_taken": -3}, "seconds_taken"),
            ({"token": "x", "note": "n" * 2001}, "note"),
        ],
    )
    def test_malformed_votes_are_400s_naming_the_field(self, alice, body, field_name):
        error = assert_error(token_client(alice).post("/api/votes/", body, format="json"), 400, "invalid")
        assert field_name in error["details"]

    def test_reshuffle_draws_other_standards_that_may_then_be_cited(self, alice, field):
        standards_grid(degrees=[60, 60])  # more standards at 60 deg to draw from
        client = token_client(alice)
        assignment = client.get("/api/assignments/next/").json()
        response = client.post(
            "/api/assignments/reshuffle/", {"token": assignment["token"], "degrees": [60]}, format="json"
        )
        assert response.status_code == 200, response.content
        new_60 = response.json()["standards"]["60"]
        assert new_60["url"] and 59.5 <= new_60["inclination"] <= 60.5  # laid out as the website's grid
        answer = answer_between(assignment, 60, 61, 60.5) | {"left_standard_id": new_60["id"]}
        assert client.post("/api/votes/", answer, format="json").status_code == 201

    def test_nothing_left_to_label_is_a_204(self, alice):
        assert token_client(alice).get("/api/assignments/next/").status_code == 204


class TestOwnVotesOnly:
    def test_another_volunteers_vote_is_a_404(self, alice, charlie, field):
        client = token_client(alice)
        assignment = client.get("/api/assignments/next/").json()
        vote_id = client.post("/api/votes/", answer_between(assignment, 60, 61, 60.5), format="json").json()["id"]
        other = token_client(charlie)
        assert_error(other.get(f"/api/votes/{vote_id}/"), 404, "not_found")
        assert other.get("/api/votes/").json()["results"] == []
