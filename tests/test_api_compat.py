"""The IncliNET compatibility layer: the original URLs answered with the original response shape."""

import pytest

from tests.api_fixtures import (
    assert_error,
    ensemble,  # noqa: F401
    fresh_ensemble,  # noqa: F401
    token_client,
    upload,
)
from tests.factories import GalaxyFactory, galaxy_jpeg

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_ensemble")]


def assert_original_shape(body: dict, *, members: int = 3) -> None:
    """The shape IncliNET clients parse: Group_N per architecture with model -> deg, summaries, percentages."""
    assert body["status"] == "success"
    inclinations = body["inclinations"]
    groups = {k: v for k, v in inclinations.items() if k != "summary"}
    assert groups and all(k.startswith("Group_") for k in groups)
    values = [deg for group in groups.values() for deg in group.values()]
    assert len(values) == members
    # The original's keys, plus sigma (clients that do not know it ignore it).
    assert set(inclinations["summary"]) == {"mean", "median", "stdev", "sigma"}
    assert min(values) <= inclinations["summary"]["median"] <= max(values)
    rejection = body["rejection_likelihood"]
    assert set(rejection["summary"]) == {"mean", "median", "stdev"}
    percents = [v for k, v in rejection.items() if k != "summary"]
    assert percents and all(0 <= p <= 100 for p in percents)


class TestCompatPgc:
    @pytest.mark.usefixtures("ensemble")
    def test_answers_the_original_shape_with_units_in_strings(self, api_client):
        GalaxyFactory(
            with_image=True, pgc=2557, name="NGC0224", ra=10.6848, dec=41.2689, position_angle=35.0, d25_arcmin=177.827
        )
        response = api_client.get("/api/pgc/2557")
        assert response.status_code == 200, response.content[:500]
        body = response.json()
        assert body["galaxy"] == {
            "pgc": "2557",
            "ra": "10.6848 deg",
            "dec": "41.2689 deg",
            "fov": "266.74 arcmin",
            "pa": "35.0 deg",
            "objname": "NGC0224",
        }
        assert_original_shape(body)

    @pytest.mark.usefixtures("ensemble")
    def test_groups_follow_the_architecture(self, api_client):
        GalaxyFactory(with_image=True, pgc=7)
        groups = {k for k in api_client.get("/api/pgc/7").json()["inclinations"] if k != "summary"}
        assert groups == {"Group_0"}  # the tiny ensemble is three members of one architecture

    def test_an_unknown_pgc_is_a_404_with_the_original_failure_keys(self, api_client):
        response = api_client.get("/api/pgc/424242")
        assert_error(response, 404, "not_found")
        assert response.json()["status"] == "failed"
        assert "424242" in response.json()["message"]


@pytest.mark.usefixtures("ensemble")
@pytest.mark.parametrize("path", ["/api/pgc/2559", "/api/objname/NGC 9999"])
def test_a_gold_galaxy_is_not_found_except_by_staff(api_client, alice, bob, path):
    GalaxyFactory(with_image=True, pgc=2559, name="NGC 9999", is_gold=True, known_inclination=70.0)
    for client in (api_client, token_client(alice)):
        assert_error(client.get(path), 404, "not_found")
    response = token_client(bob).get(path)
    assert response.status_code == 200, response.content[:500]
    assert_original_shape(response.json())


class TestCompatMalformed:
    @pytest.mark.parametrize("path", ["/api/pgc/NGC224", "/api/pgc/", "/api/file/extra"])
    def test_malformed_compat_urls_keep_the_failure_keys(self, api_client, path):
        response = api_client.get(path)
        assert_error(response, 404, "not_found")
        assert response.json()["status"] == "failed" and response.json()["message"]


class TestCompatObjname:
    @pytest.mark.parametrize("asked", ["NGC4579", "ngc 4579", "NGC%204579"])
    @pytest.mark.usefixtures("ensemble")
    def test_finds_the_galaxy_by_name(self, api_client, asked):
        GalaxyFactory(with_image=True, pgc=42168, name="NGC 4579")
        response = api_client.get(f"/api/objname/{asked}")
        assert response.status_code == 200, response.content[:500]
        assert response.json()["galaxy"]["pgc"] == 42168
        assert_original_shape(response.json())

    def test_an_unknown_name_is_a_404(self, api_client):
        response = api_client.get("/api/objname/Sombrero")
        assert_error(response, 404, "not_found")
        assert response.json()["status"] == "failed"


class TestCompatFile:
    @pytest.mark.usefixtures("ensemble")
    def test_a_file_upload_answers_the_original_shape_with_the_filename(self, api_client):
        response = api_client.post("/api/file", {"file": upload("NGC_4579.jpg", galaxy_jpeg())}, format="multipart")
        assert response.status_code == 200, response.content[:500]
        body = response.json()
        assert body["filename"] == "NGC_4579.jpg"
        assert "galaxy" not in body
        assert_original_shape(body)

    @pytest.mark.usefixtures("ensemble")
    def test_over_one_megabyte_is_refused_like_the_original(self, api_client):
        big = galaxy_jpeg() + b"\0" * (2**20)
        response = api_client.post("/api/file", {"file": upload("big.jpg", big)}, format="multipart")
        assert_error(response, 413, "too_large")
        assert response.json()["status"] == "failed"

    @pytest.mark.usefixtures("ensemble")
    def test_a_corrupt_file_is_a_400_with_the_failure_keys(self, api_client):
        response = api_client.post("/api/file", {"file": upload("x.jpg", b"not an image")}, format="multipart")
        assert_error(response, 400)
        assert response.json()["status"] == "failed"

    def test_the_field_must_be_called_file(self, api_client):
        response = api_client.post("/api/file", {"fileToUpload": upload("x.jpg", galaxy_jpeg())}, format="multipart")
        assert "file" in assert_error(response, 400, "invalid")["details"]
