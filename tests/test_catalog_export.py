"""Catalogue exports through the API, the command and background jobs: the rows, their provenance, the filters."""

import io
import math

import numpy as np
import pytest
from astropy.table import Table
from django.core.management import CommandError, call_command

from inference.models import ModelVersion
from labeling.models import CatalogExport
from tests.api_fixtures import assert_error, token_client
from tests.catalog_fixtures import catalogue  # noqa: F401

pytestmark = pytest.mark.usefixtures("catalogue")

READ = {"ecsv": "ascii.ecsv", "votable": "votable", "fits": "fits", "csv": "ascii.csv"}
Q0 = 0.2


@pytest.fixture
def alice_api(alice):
    return token_client(alice)


@pytest.fixture
def charlie_api(charlie):
    return token_client(charlie)


def _body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def _export(client, **params) -> Table:
    response = client.get("/api/catalog/", params)
    assert response.status_code == 200, response.content[:300]
    fmt = params.get("format", "ecsv")
    assert response["Content-Disposition"].startswith("attachment")
    return Table.read(io.BytesIO(_body(response)), format=READ[fmt])


def _row(table: Table, pgc: int):
    return table[list(table["pgc"]).index(pgc)]


@pytest.mark.parametrize("fmt", ["ecsv", "fits", "votable"])
def test_export_holds_every_galaxy_with_consensus_ensemble_and_provenance(alice_api, fmt, settings):
    settings.GIZ_SDSS_DATA_RELEASE = "dr17"
    m1, m2 = ModelVersion.objects.get(name="m1"), ModelVersion.objects.get(name="m2")
    table = _export(alice_api, format=fmt)

    assert list(table["pgc"]) == [10, 11, 12, 13, 14]
    assert table["inclination"].unit == "deg" and table["ra"].unit == "deg"
    g10 = _row(table, 10)
    assert (g10["name"], g10["ra"], g10["dec"]) == ("NGC 3000", 150.0, 2.0)
    assert (g10["inclination"], g10["inclination_err"], g10["n_votes"], g10["status"]) == (62.5, 2.5, 5, "accepted")
    assert not g10["face_on"] and not g10["rejected"]
    # The latest ensemble prediction, not the older one, with the model versions it came from.
    assert (g10["ensemble_inclination"], g10["ensemble_spread"], g10["ensemble_n_models"]) == (61.0, 1.5, 2)
    assert g10["model_version"] == f"{m1.id}+{m2.id}"
    expected_q = math.degrees(math.acos(math.sqrt((0.5**2 - Q0**2) / (1 - Q0**2))))
    assert g10["inclination_axial_ratio"] == pytest.approx(expected_q)
    assert (g10["image_source"], g10["data_release"]) == ("sdss", "dr17")
    assert g10["consensus_date"].endswith("Z") and g10["ensemble_date"].endswith("Z")

    assert _row(table, 11)["face_on"] and _row(table, 11)["status"] == "face_on"
    g12 = _row(table, 12)
    assert g12["rejected"] and g12["reject_reason"] == "not_spiral"
    # No consensus, no ensemble, no b/a, not from SDSS: masked, not zero.
    missing = table["pgc"] == 13
    for name in ["inclination", "n_votes", "ensemble_inclination", "inclination_axial_ratio"]:
        assert np.ma.getmaskarray(table[name])[missing].all(), name
    assert _row(table, 13)["data_release"] in ("", np.ma.masked)


def test_filters_are_the_galaxy_apis_plus_status_and_cone(alice_api):
    assert list(_export(alice_api, status="accepted")["pgc"]) == [10]
    assert list(_export(alice_api, inclination_min=60, inclination_max=70)["pgc"]) == [10]
    assert list(_export(alice_api, source="synthetic")["pgc"]) == [13]
    # A cone of 0.15 deg around (150, 2) holds 10 and 11 (0.14 deg), not 12 (0.22 deg) nor 13 (0.2 deg).
    assert list(_export(alice_api, cone_ra=150, cone_dec=2, cone_radius=0.15)["pgc"]) == [10, 11]
    # A cone across RA 0: the galaxy at (10, -40) is 8.04 deg from (359.5, -40).
    assert list(_export(alice_api, cone_ra=359.5, cone_dec=-40, cone_radius=8.1)["pgc"]) == [14]
    assert len(_export(alice_api, cone_ra=359.5, cone_dec=-40, cone_radius=8.0)) == 0
    assert len(_export(alice_api, status="accepted", source="synthetic")) == 0


@pytest.mark.parametrize(
    "params, field",
    [
        ({"format": "xlsx"}, "format"),
        ({"cone_ra": 150, "cone_dec": 2}, "cone_radius"),
        ({"cone_ra": 400, "cone_dec": 2, "cone_radius": 1}, "cone_ra"),
        ({"dec_min": -91}, "dec_min"),
        ({"status": "maybe"}, "status"),
        ({"inclination_min": 80, "inclination_max": 50}, "inclination_min"),
    ],
)
def test_bad_export_parameters_are_a_400_naming_the_parameter(alice_api, params, field):
    error = assert_error(alice_api.get("/api/catalog/", params), 400, "invalid")
    assert field in error["details"]


def test_export_needs_an_account(api_client):
    assert_error(api_client.get("/api/catalog/"), 401)


def test_command_writes_a_filtered_fits_file(tmp_path):
    out = tmp_path / "cat.fits"
    call_command("export_catalog", "--format", "fits", "--out", str(out), "--cone", "150", "2", "0.5", verbosity=0)
    table = Table.read(out)
    assert list(table["pgc"]) == [10, 11, 12, 13]
    assert table["ensemble_inclination"].unit == "deg"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--cone", "150", "95", "1"], "cone_dec"),
        (["--status", "maybe"], "status"),
        (["--chunk-size", "0"], "chunk-size"),
    ],
)
def test_command_refuses_bad_filters_and_writes_nothing(tmp_path, args, message):
    out = tmp_path / "cat.ecsv"
    with pytest.raises(CommandError, match=message):
        call_command("export_catalog", "--out", str(out), *args, verbosity=0)
    assert list(tmp_path.iterdir()) == []


def test_background_export_job_reports_progress_and_serves_its_file(
    alice_api, charlie_api, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_api.post("/api/catalog/exports/", {"format": "votable", "status": "rejected"}, format="json")
    assert response.status_code == 202, response.content
    job = alice_api.get(f"/api/catalog/exports/{response.json()['id']}/").json()
    assert (job["status"], job["total"], job["done"], job["progress"]) == ("succeeded", 1, 1, 1.0)
    assert job["filters"] == {"status": "rejected"}

    download = alice_api.get(job["download_url"])
    assert download.status_code == 200
    table = Table.read(io.BytesIO(_body(download)), format="votable")
    assert list(table["pgc"]) == [12]
    # Another volunteer sees neither the job nor its file.
    assert_error(charlie_api.get(f"/api/catalog/exports/{job['id']}/"), 404)
    assert_error(charlie_api.get(job["download_url"]), 404)


def test_bad_background_export_creates_nothing(alice_api):
    assert_error(alice_api.post("/api/catalog/exports/", {"format": "fits", "cone_ra": 1}, format="json"), 400)
    assert CatalogExport.objects.count() == 0


# ------------------------------------------------------------------------------ admin


def _read_export(export: CatalogExport) -> Table:
    with export.file.open("rb") as file:
        return Table.read(io.BytesIO(file.read()), format=READ[export.format])


def test_staff_start_a_filtered_export_in_the_admin_and_download_it(bob_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = bob_client.post(
            "/admin/labeling/catalogexport/add/", {"format": "fits", "cone_ra": 150, "cone_dec": 2, "cone_radius": 0.15}
        )
    assert response.status_code == 302, response.content.decode()[-2000:]
    export = CatalogExport.objects.get()
    assert (export.status, export.filters["cone_radius"], export.created_by.username) == ("succeeded", 0.15, "bob")
    assert list(_read_export(export)["pgc"]) == [10, 11]
    listing = bob_client.get("/admin/labeling/catalogexport/").content.decode()
    assert export.file.url in listing and "100%" in listing
    assert bob_client.get(f"/admin/labeling/catalogexport/{export.id}/change/").status_code == 200


def test_admin_export_form_refuses_bad_filters_and_creates_nothing(bob_client):
    response = bob_client.post("/admin/labeling/catalogexport/add/", {"format": "ecsv", "cone_ra": 150})
    assert response.status_code == 200
    assert "A cone needs cone_ra, cone_dec and cone_radius." in response.content.decode()
    response = bob_client.post("/admin/labeling/catalogexport/add/", {"format": "ecsv", "dec_min": 95})
    assert "less than or equal to 90" in response.content.decode()
    assert CatalogExport.objects.count() == 0


def test_admin_action_exports_the_selected_galaxies(bob_client, django_capture_on_commit_callbacks):
    from labeling.models import Galaxy

    selected = [str(pk) for pk in Galaxy.objects.filter(pgc__in=[12, 14]).values_list("pk", flat=True)]
    with django_capture_on_commit_callbacks(execute=True):
        response = bob_client.post(
            "/admin/labeling/galaxy/", {"action": "export_catalogue_csv", "_selected_action": selected}, follow=True
        )
    assert "Catalogue export" in response.content.decode()
    export = CatalogExport.objects.get()
    assert export.format == "csv" and export.status == "succeeded"
    assert list(_read_export(export)["pgc"]) == [12, 14]


def test_volunteers_cannot_reach_the_export_admin(alice_client):
    assert alice_client.get("/admin/labeling/catalogexport/").status_code == 302
