"""Contract tests for inference through the API: uploads, by PGC, by position, batch jobs, bad input."""

import io

import numpy as np
import pytest
from PIL import Image

from acquisition.models import GalaxyImage
from acquisition.renderer import draw_params, render_galaxy, to_fits
from acquisition.standin import running_standin
from inference.models import EnsemblePrediction, ModelVersion, Prediction
from labeling.models import Galaxy
from tests.api_fixtures import (
    assert_error,
    ensemble,  # noqa: F401
    fresh_ensemble,  # noqa: F401
    png_bomb,
    token_client,
    upload,
)
from tests.factories import GalaxyFactory, galaxy_jpeg

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_ensemble")]

UPLOAD = "/api/inference/upload/"


def post_image(client, data: bytes, name: str = "galaxy.jpg", content_type: str = "image/jpeg"):
    return client.post(UPLOAD, {"file": upload(name, data, content_type)}, format="multipart")


def assert_ensemble_result(body: dict, members: int = 3) -> None:
    assert len(body["members"]) == members
    assert all(isinstance(v, float) for v in body["members"].values())
    values = sorted(body["members"].values())
    assert body["median"] == pytest.approx(float(np.median(values)), abs=0.01)
    assert body["mean"] == pytest.approx(float(np.mean(values)), abs=0.01)
    assert body["spread"] >= 0
    assert 0 <= body["rejection_likelihood"] <= 1
    assert isinstance(body["alarm_raised"], bool)
    assert len(body["model_versions"]) >= members


def fits_bytes() -> bytes:
    rendering = render_galaxy(draw_params(np.random.default_rng(1), inclination=70.0), size=64, seed=1)
    return to_fits(rendering)


def encoded(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.open(io.BytesIO(galaxy_jpeg())).save(buffer, format=fmt)
    return buffer.getvalue()


class TestUpload:
    @pytest.mark.parametrize(
        "name, data_factory",
        [
            ("g.jpg", lambda: galaxy_jpeg()),
            ("g.png", lambda: encoded("PNG")),
            ("g.gif", lambda: encoded("GIF")),
            ("g.tiff", lambda: encoded("TIFF")),
            ("g.fits", fits_bytes),
        ],
    )
    @pytest.mark.usefixtures("ensemble")
    def test_every_format_gets_each_models_inclination_and_the_summary(self, api_client, name, data_factory):
        response = post_image(api_client, data_factory(), name=name, content_type="application/octet-stream")
        assert response.status_code == 200, response.content[:500]
        assert_ensemble_result(response.json())

    @pytest.mark.usefixtures("ensemble")
    def test_the_same_image_gives_the_same_answer(self, api_client):
        first = post_image(api_client, galaxy_jpeg()).json()
        assert post_image(api_client, galaxy_jpeg()).json()["members"] == first["members"]

    def test_no_active_models_is_a_503_in_the_error_format(self, api_client):
        assert_error(post_image(api_client, galaxy_jpeg()), 503, "no_active_models")


class TestUploadBadInput:
    """Every bad upload is a 4xx in the error format, and the server keeps serving afterwards."""

    @pytest.mark.parametrize(
        "name, data, content_type, status, code",
        [
            ("bomb.png", png_bomb(), "image/png", 413, "too_many_pixels"),
            ("notes.png", b"these are not pixels" * 20, "image/png", 400, None),
            ("cut.jpg", galaxy_jpeg()[:200], "image/jpeg", 400, None),
            ("random.fits", b"SIMPLE  =" + bytes(range(256)) * 12, "application/fits", 400, None),
            ("empty.jpg", b"", "image/jpeg", 400, None),
            ("script.jpg", b"#!/bin/sh\nrm -rf /\n", "image/jpeg", 400, None),
        ],
    )
    @pytest.mark.usefixtures("ensemble")
    def test_bad_files(self, api_client, name, data, content_type, status, code):
        assert_error(post_image(api_client, data, name, content_type), status, code)
        assert post_image(api_client, galaxy_jpeg()).status_code == 200  # still serving

    @pytest.mark.usefixtures("ensemble")
    def test_a_file_over_the_size_limit_is_a_413_before_it_is_read(self, api_client, settings):
        settings.GIZ_IMAGE_MAX_BYTES = 4096
        big = encoded("PNG") + b"\0" * 8192
        error = assert_error(post_image(api_client, big, "big.png", "image/png"), 413, "too_large")
        assert error["details"]["max_bytes"] == 4096

    @pytest.mark.usefixtures("ensemble")
    def test_a_png_posing_as_a_jpeg_is_judged_by_its_bytes(self, api_client):
        response = post_image(api_client, encoded("PNG"), "really-a-png.jpg", "image/jpeg")
        assert response.status_code == 200

    def test_json_instead_of_multipart_is_a_415(self, api_client):
        assert_error(api_client.post(UPLOAD, {"file": "galaxy.jpg"}, format="json"), 415, "unsupported_media_type")

    def test_a_missing_file_field_is_named(self, api_client):
        error = assert_error(api_client.post(UPLOAD, {"image": "x"}, format="multipart"), 400, "invalid")
        assert "file" in error["details"]


class TestByPgc:
    @pytest.mark.usefixtures("ensemble")
    def test_uses_the_stored_image_and_saves_the_prediction(self, api_client):
        galaxy = GalaxyFactory(with_image=True, pgc=2557, name="NGC0224")
        response = api_client.get("/api/inference/pgc/2557/")
        assert response.status_code == 200, response.content[:500]
        body = response.json()
        assert body["galaxy"]["pgc"] == 2557
        assert_ensemble_result(body["result"])
        saved = EnsemblePrediction.objects.get(galaxy=galaxy)
        assert saved.median == pytest.approx(body["result"]["median"])

    @pytest.mark.usefixtures("ensemble")
    def test_every_inclination_names_the_model_versions_and_date_it_comes_from(self, api_client):
        GalaxyFactory(with_image=True, pgc=2557, name="NGC0224")
        active = sorted(ModelVersion.objects.filter(status="active").values_list("pk", "name"))
        expected = [{"id": pk, "name": name, "url": f"/api/models/{pk}/"} for pk, name in active]

        uploaded = post_image(api_client, galaxy_jpeg()).json()["provenance"]
        assert uploaded["model_versions"] == expected
        assert uploaded["predicted_at"]
        by_pgc = api_client.get("/api/inference/pgc/2557/").json()["result"]["provenance"]
        assert by_pgc["model_versions"] == expected
        detail = api_client.get("/api/galaxies/2557/").json()["predictions"][0]
        assert detail["provenance"] == {"model_versions": expected, "predicted_at": detail["created_at"]}
        assert api_client.get(expected[0]["url"]).json()["name"] == expected[0]["name"]

    @pytest.mark.usefixtures("ensemble")
    def test_acquires_the_images_first_when_missing(self, api_client, settings):
        galaxy = GalaxyFactory(pgc=4242, ra=150.0, dec=2.0, d25_arcmin=1.0, state=Galaxy.State.NEW)
        with running_standin() as standin:
            settings.GIZ_SDSS_CUTOUT_BASE_URL = standin.url
            settings.GIZ_SDSS_FRAMES_BASE_URL = f"{standin.url}/sas"
            settings.GIZ_SDSS_FETCH_FITS = False
            response = api_client.get("/api/inference/pgc/4242/")
        assert response.status_code == 200, response.content[:500]
        assert GalaxyImage.objects.filter(galaxy=galaxy, band="color").exists()
        assert_ensemble_result(response.json()["result"])

    @pytest.mark.usefixtures("ensemble")
    def test_predicts_once_even_with_the_on_commit_work_run(
        self, api_client, settings, django_capture_on_commit_callbacks
    ):
        # The acquisition on the way stores an image, whose on-commit hook must not add a second prediction;
        # asking again with the same ensemble updates the prediction rather than adding one.
        galaxy = GalaxyFactory(pgc=4243, ra=150.0, dec=2.0, d25_arcmin=1.0, state=Galaxy.State.NEW)
        with running_standin() as standin:
            settings.GIZ_SDSS_CUTOUT_BASE_URL = standin.url
            settings.GIZ_SDSS_FRAMES_BASE_URL = f"{standin.url}/sas"
            settings.GIZ_SDSS_FETCH_FITS = False
            for _ in range(2):
                with django_capture_on_commit_callbacks(execute=True):
                    response = api_client.get("/api/inference/pgc/4243/")
                assert response.status_code == 200, response.content[:500]
        saved = EnsemblePrediction.objects.get(galaxy=galaxy)
        assert saved.median == pytest.approx(response.json()["result"]["median"])
        assert Prediction.objects.filter(galaxy=galaxy).count() == saved.n_models + (
            1 if saved.rejection_likelihood is not None else 0
        )

    @pytest.mark.usefixtures("ensemble")
    def test_a_gold_galaxys_prediction_is_for_staff_only(self, api_client, alice, bob):
        galaxy = GalaxyFactory(with_image=True, pgc=2558, is_gold=True, known_inclination=70.0, axial_ratio=0.4)
        for client in (api_client, token_client(alice)):
            body = client.get("/api/inference/pgc/2558/").json()
            assert body["result"] is None
            assert body["galaxy"]["pgc"] == 2558 and body["galaxy"]["position_angle"] is None
        assert not EnsemblePrediction.objects.filter(galaxy=galaxy).exists()
        staff = token_client(bob).get("/api/inference/pgc/2558/").json()
        assert_ensemble_result(staff["result"])
        assert staff["galaxy"]["position_angle"] == galaxy.position_angle

    @pytest.mark.parametrize("pgc", ["999999", "123456789012345678901234"])
    def test_unknown_pgc_is_a_404(self, api_client, pgc):
        assert_error(api_client.get(f"/api/inference/pgc/{pgc}/"), 404, "not_found")


class TestByPosition:
    @pytest.mark.usefixtures("ensemble")
    def test_answers_202_with_a_job_url_to_poll(self, alice, settings, django_capture_on_commit_callbacks):
        client = token_client(alice)
        with running_standin() as standin, django_capture_on_commit_callbacks(execute=True):
            settings.GIZ_SDSS_CUTOUT_BASE_URL = standin.url
            settings.GIZ_SDSS_FRAMES_BASE_URL = f"{standin.url}/sas"
            settings.GIZ_SDSS_FETCH_FITS = False
            response = client.post(
                "/api/inference/position/", {"ra": 150.1, "dec": 2.2, "fov_arcmin": 2.0}, format="json"
            )
        assert response.status_code == 202, response.content[:500]
        job = response.json()
        assert response["Location"] == job["url"]
        assert job["kind"] == "position"
        polled = client.get(job["url"]).json()  # tasks run eagerly under test settings
        assert polled["status"] == "succeeded", polled
        results = client.get(polled["results_url"]).json()["results"]
        assert len(results) == 1 and results[0]["status"] == "ok"
        assert 40 <= results[0]["median"] <= 95

    @pytest.mark.parametrize(
        "body, field_name",
        [
            ({"ra": 361, "dec": 0, "fov_arcmin": 2}, "ra"),
            ({"ra": -1, "dec": 0, "fov_arcmin": 2}, "ra"),
            ({"ra": 10, "dec": 91, "fov_arcmin": 2}, "dec"),
            ({"ra": 10, "dec": -90.5, "fov_arcmin": 2}, "dec"),
            ({"ra": 10, "dec": 0, "fov_arcmin": 0}, "fov_arcmin"),
            ({"ra": 10, "dec": 0, "fov_arcmin": 1e9}, "fov_arcmin"),
            ({"ra": "ten", "dec": 0, "fov_arcmin": 2}, "ra"),
            ({"dec": 0, "fov_arcmin": 2}, "ra"),
        ],
    )
    def test_coordinates_out_of_range_are_a_400_naming_the_field(self, alice, body, field_name):
        response = token_client(alice).post("/api/inference/position/", body, format="json")
        assert field_name in assert_error(response, 400, "invalid")["details"]


class TestBatchJobs:
    @pytest.mark.usefixtures("ensemble")
    def test_a_list_of_pgcs_with_progress_and_paged_results(self, alice, django_capture_on_commit_callbacks):
        for pgc in (11, 12, 13):
            GalaxyFactory(with_image=True, pgc=pgc)
        client = token_client(alice)
        with django_capture_on_commit_callbacks(execute=True):  # the task runs eagerly once queued
            response = client.post("/api/jobs/", {"kind": "pgc_list", "pgcs": [11, 12, 13, 999999]}, format="json")
        assert response.status_code == 202, response.content[:500]
        job = client.get(response.json()["url"]).json()
        assert job["status"] == "succeeded" and job["total"] == 4
        assert job["done"] + job["failed"] == 4 and job["progress"] == 1.0
        pages, url = [], job["results_url"] + "?page_size=2"
        while url:
            body = client.get(url).json()
            pages.append(body["results"])
            url = body["next"]
        assert [len(p) for p in pages] == [2, 2]
        by_pgc = {r["pgc"]: r for page in pages for r in page}
        assert {pgc for pgc, r in by_pgc.items() if r["status"] == "ok"} == {11, 12, 13}
        assert by_pgc[999999]["status"] == "failed" and by_pgc[999999]["reason"]
        assert by_pgc[999999]["provenance"] is None
        active = sorted(ModelVersion.objects.filter(status="active").values_list("pk", "name"))
        for pgc in (11, 12, 13):
            provenance = by_pgc[pgc]["provenance"]
            assert [(m["id"], m["name"]) for m in provenance["model_versions"]] == active
            assert provenance["predicted_at"]
        assert [j["id"] for j in client.get("/api/jobs/").json()["results"]] == [job["id"]]

    @pytest.mark.usefixtures("ensemble")
    def test_a_volunteers_pgc_list_does_not_find_a_gold_galaxy(self, alice, bob, django_capture_on_commit_callbacks):
        GalaxyFactory(with_image=True, pgc=31, is_gold=True, known_inclination=70.0)
        GalaxyFactory(with_image=True, pgc=32)
        statuses = {}
        for user in (alice, bob):
            client = token_client(user)
            with django_capture_on_commit_callbacks(execute=True):
                response = client.post("/api/jobs/", {"kind": "pgc_list", "pgcs": [31, 32]}, format="json")
            results = client.get(client.get(response.json()["url"]).json()["results_url"]).json()["results"]
            statuses[user.username] = {r["pgc"]: (r["status"], r["median"] is not None) for r in results}
        assert statuses["alice"] == {31: ("failed", False), 32: ("ok", True)}
        assert statuses["bob"] == {31: ("ok", True), 32: ("ok", True)}

    @pytest.mark.usefixtures("ensemble")
    def test_a_whole_catalog_job_is_for_staff(self, alice, bob):
        GalaxyFactory(with_image=True, pgc=21)
        assert_error(token_client(alice).post("/api/jobs/", {"kind": "catalog"}, format="json"), 403)
        response = token_client(bob).post("/api/jobs/", {"kind": "catalog"}, format="json")
        assert response.status_code == 202, response.content[:500]
        assert response.json()["kind"] == "catalog"

    @pytest.mark.parametrize(
        "body, field_name",
        [
            ({"kind": "pgc_list"}, "pgcs"),
            ({"kind": "pgc_list", "pgcs": []}, "pgcs"),
            ({"kind": "pgc_list", "pgcs": ["x"]}, "pgcs"),
            ({"kind": "pgc_list", "pgcs": list(range(1, 10_002))}, "pgcs"),
            ({"kind": "everything"}, "kind"),
        ],
    )
    def test_bad_job_requests_are_400s(self, alice, body, field_name):
        response = token_client(alice).post("/api/jobs/", body, format="json")
        assert field_name in assert_error(response, 400, "invalid")["details"]

    @pytest.mark.usefixtures("ensemble")
    def test_another_users_job_is_a_404(self, alice, charlie):
        GalaxyFactory(with_image=True, pgc=31)
        job = token_client(alice).post("/api/jobs/", {"kind": "pgc_list", "pgcs": [31]}, format="json").json()
        other = token_client(charlie)
        assert_error(other.get(f"/api/jobs/{job['id']}/"), 404, "not_found")
        assert_error(other.get(f"/api/jobs/{job['id']}/results/"), 404, "not_found")
        assert other.get("/api/jobs/").json()["results"] == []
