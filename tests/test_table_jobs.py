"""Batch jobs from an uploaded table: every format in, every row back out with results or a reason; bad tables 4xx."""

import io

import numpy as np
import pytest
from astropy import units as u
from astropy.table import MaskedColumn, Table
from django.core.files.storage import default_storage

from acquisition.standin import running_standin
from inference.models import InferenceJob
from tests.api_fixtures import (  # noqa: F401
    assert_error,
    ensemble,
    fresh_ensemble,
    token_client,
    upload,
)
from tests.factories import GalaxyFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_ensemble")]

WRITE = {"ecsv": "ascii.ecsv", "csv": "ascii.csv", "vot": "votable", "fits": "fits"}


def _bytes(table: Table, ext: str) -> bytes:
    if ext in ("vot", "fits"):
        out = io.BytesIO()
        table.write(out, format=WRITE[ext])
        return out.getvalue()
    out = io.StringIO()
    table.write(out, format=WRITE[ext])
    return out.getvalue().encode()


def _post(client, name: str, data: bytes):
    return client.post("/api/jobs/table/", {"file": upload(name, data, "application/octet-stream")}, format="multipart")


def _stored_jobs() -> set[str]:
    return set(default_storage.listdir("jobs")[0]) if default_storage.exists("jobs") else set()


@pytest.fixture
def nothing_created():
    """After the test: no job row and no new stored table."""
    before = _stored_jobs()
    yield
    assert InferenceJob.objects.count() == 0
    assert _stored_jobs() == before


@pytest.mark.usefixtures("ensemble")
def test_a_table_of_pgcs_and_positions_comes_back_with_every_row(alice, settings, django_capture_on_commit_callbacks):
    GalaxyFactory(with_image=True, pgc=501, ra=150.0, dec=2.0)
    GalaxyFactory(with_image=True, pgc=502, ra=151.0, dec=3.0)
    table = Table()
    table["pgc"] = MaskedColumn([501, 0, 999999, 0, 0], mask=[False, True, False, True, True])
    # Row 2 is 2 arcsec from PGC 502 (RA given in hours); row 4 is a new position; row 5 has nothing.
    table["ra"] = MaskedColumn(np.array([0, 151.0 + 2 / 3600, 0, 152.5, 0]) / 15, unit=u.hourangle)
    table["ra"].mask = [True, False, True, False, True]
    table["dec"] = MaskedColumn([0, 3.0, 0, 2.5, 0], unit=u.deg, mask=[True, False, True, False, True])
    table["vmag"] = [12.1, 13.2, 14.3, 15.4, 16.5]  # the astronomer's own column, kept
    api = token_client(alice)
    with running_standin() as standin, django_capture_on_commit_callbacks(execute=True):
        settings.GIZ_SDSS_CUTOUT_BASE_URL = standin.url
        settings.GIZ_SDSS_FRAMES_BASE_URL = f"{standin.url}/sas"
        settings.GIZ_SDSS_FETCH_FITS = False
        response = _post(api, "mine.ecsv", _bytes(table, "ecsv"))
    assert response.status_code == 202, response.content
    job = api.get(response["Location"]).json()
    assert job["status"] == "succeeded"
    assert {k: job["params"]["table"][k] for k in ("filename", "format", "rows")} == {
        "filename": "mine.ecsv",
        "format": "ecsv",
        "rows": 5,
    }
    assert job["params"]["unresolved"] == 2

    result = Table.read(
        io.BytesIO(b"".join(api.get(f"/api/jobs/{job['id']}/table/").streaming_content)), format="ascii.ecsv"
    )
    assert list(result["vmag"]) == [12.1, 13.2, 14.3, 15.4, 16.5]
    assert result["giz_inclination"].unit == "deg"
    assert list(result["giz_status"]) == ["ok", "ok", "failed", "ok", "failed"]
    assert list(result["giz_pgc"][:2]) == [501, 502]
    assert result["giz_pgc"][3] not in (501, 502)  # a galaxy created at the new position, then acquired
    assert result["giz_reason"][2] == "Unknown PGC number."
    assert "Neither a PGC number nor a position" in result["giz_reason"][4]
    assert np.all(np.isfinite(result["giz_inclination"][[0, 1, 3]]))

    fits_result = api.get(f"/api/jobs/{job['id']}/table/", {"format": "fits"})
    assert fits_result["Content-Type"] == "application/fits"
    assert len(Table.read(io.BytesIO(b"".join(fits_result.streaming_content)), format="fits")) == 5


@pytest.mark.parametrize("ext", ["ecsv", "csv", "vot", "fits"])
def test_every_format_is_accepted(alice, ext):
    response = _post(token_client(alice), f"galaxies.{ext}", _bytes(Table({"PGC": [1, 2, 3]}), ext))
    assert response.status_code == 202, response.content
    assert response.json()["params"]["table"]["rows"] == 3


def _table(**columns) -> Table:
    return Table(columns)


@pytest.mark.parametrize(
    "name, make, status, code, words",
    [
        ("t.xlsx", lambda: b"PK\x03\x04", 400, "unsupported_table", "Unsupported file type '.xlsx'"),
        ("t.fits", lambda: b"SIMPLE  = garbage" * 10, 400, "malformed_table", "could not be read as fits"),
        ("t.vot", lambda: b"<VOTABLE><RESOURCE><TABLE>", 400, "malformed_table", "could not be read as votable"),
        ("t.csv", lambda: b"name,vmag\nNGC 1,12\n", 400, "missing_columns", "No PGC column and no RA and Dec"),
        ("t.csv", lambda: b"ra,dec\n10h21m,+5d\n", 400, "invalid_column", "must hold numbers"),
        ("t.csv", lambda: b"ra,dec\n10,95\n10,2\n", 400, "out_of_range", "'dec' is out of range [-90, 90] in rows 1"),
        ("t.csv", lambda: b"pgc\n1.5\n", 400, "invalid_column", "whole PGC numbers"),
        ("t.csv", lambda: b"pgc\n" + b"1\n" * 10_400, 413, "too_many_rows", "the limit is 10,000"),
        ("t.csv", lambda: b"pgc\n", 400, "empty_table", "no rows"),
    ],
)
@pytest.mark.usefixtures("nothing_created")
def test_bad_tables_are_refused_naming_the_problem_and_create_nothing(alice, name, make, status, code, words):
    error = assert_error(_post(token_client(alice), name, make()), status, code)
    assert words in error["message"]


@pytest.mark.usefixtures("nothing_created")
def test_a_coordinate_column_in_a_unit_that_is_not_an_angle_is_refused(alice):
    table = _table(ra=[10.0] * u.km, dec=[2.0] * u.deg)
    error = assert_error(_post(token_client(alice), "t.ecsv", _bytes(table, "ecsv")), 400, "invalid_unit")
    assert "'ra'" in error["message"] and "'km'" in error["message"]


@pytest.mark.usefixtures("nothing_created")
def test_a_file_over_the_size_limit_is_a_413_naming_the_limit(alice, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2**20
    error = assert_error(_post(token_client(alice), "t.csv", b"pgc\n" + b"1\n" * 600_000), 413, "too_large")
    assert "the limit is 1 MiB" in error["message"]


def test_another_volunteer_cannot_read_the_result(alice, charlie):
    response = _post(token_client(alice), "t.csv", b"pgc\n1\n")
    assert_error(token_client(charlie).get(f"/api/jobs/{response.json()['id']}/table/"), 404)
