"""Catalog import through the management command and the admin: good rows in, bad rows reported by line."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError
from django.db.models import QuerySet

from acquisition.models import AcquisitionJob, GalaxyImage
from labeling.models import Galaxy
from tests.factories import GalaxyFactory

pytestmark = pytest.mark.django_db

GOOD_AND_BAD = (
    "PGC,name,RA,Dec,D25,PA,b/a\n"  # line 1
    "2557,NGC 224,10.6847,41.2690,190.5,35,0.31\n"  # 2: good
    "5818,NGC 598,23.4621,30.6599,62.1,23,0.59\n"  # 3: good
    "3,bad-ra,400.0,10.0,1.0,10,0.5\n"  # 4: RA out of range
    "4,no-dec,10.0,,1.0,10,0.5\n"  # 5: missing Dec
    "5,size,10.0,10.0,large,10,0.5\n"  # 6: non-numeric size
    "2557,again,1.0,1.0,1.0,10,0.5\n"  # 7: duplicate PGC
    "7,ratio,10.0,10.0,1.0,10,1.7\n"  # 8: b/a out of range
    "8,short,10.0\n"  # 9: wrong field count
    "PGCX,word,10.0,10.0,1.0,10,0.5\n"  # 10: bad PGC
    "43495,NGC 4565,189.0866,25.9875,15.9,-45,0.13\n"  # 11: good, PA normalised
)


def run_import(path, *extra):
    out, err = StringIO(), StringIO()
    call_command("import_catalog", str(path), *extra, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_good_rows_are_imported_and_each_bad_row_is_reported_with_its_line(tmp_path):
    path = tmp_path / "catalog.csv"
    path.write_text(GOOD_AND_BAD)
    out, err = run_import(path)

    assert sorted(Galaxy.objects.values_list("pgc", flat=True)) == [2557, 5818, 43495]
    andromeda = Galaxy.objects.get(pgc=2557)
    assert (andromeda.name, andromeda.ra, andromeda.d25_arcmin, andromeda.axial_ratio) == (
        "NGC 224",
        10.6847,
        190.5,
        0.31,
    )
    assert andromeda.state == Galaxy.State.NEW
    assert Galaxy.objects.get(pgc=43495).position_angle == 135.0
    for line, reason in [
        (4, "RA 400 out of range"),
        (5, "missing Dec"),
        (6, "D25 is not a number: 'large'"),
        (7, "duplicate PGC 2557 (first on line 2)"),
        (8, "b/a 1.7 out of range"),
        (9, "expected 7 fields, found 3"),
        (10, "PGC is not a positive whole number: 'PGCX'"),
    ]:
        assert f"catalog.csv: line {line}: {reason}" in err
    assert "Imported 3 galaxies (3 new, 0 updated, 0 unchanged); 7 bad rows skipped." in out
    assert "importing" in err  # the progress bar


def test_reimport_updates_by_pgc_instead_of_duplicating(tmp_path, settings):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    path = tmp_path / "catalog.csv"
    path.write_text("pgc,name,ra,dec,d25\n100,first,10,10,1.0\n200,second,20,20,2.0\n")
    run_import(path)
    galaxy = Galaxy.objects.get(pgc=100)
    Galaxy.objects.filter(pgc=100).update(state=Galaxy.State.READY)
    GalaxyImage.objects.create(galaxy=galaxy, band="color", format="jpeg", file="images/x.jpg", source="sdss",
                               width=512, height=512, checksum="0" * 64)  # fmt: skip

    path.write_text("pgc,name,ra,dec,d25\n100,first,10.5,10,1.0\n200,renamed,20,20,2.0\n300,third,30,30,3.0\n")
    out, _ = run_import(path)

    assert "(1 new, 2 updated, 0 unchanged)" in out
    assert Galaxy.objects.count() == 3
    assert Galaxy.objects.get(pgc=200).name == "renamed"
    moved = Galaxy.objects.get(pgc=100)
    # A moved galaxy needs a new stamp: its old image is dropped and it waits for acquisition again.
    assert (moved.ra, moved.state) == (10.5, Galaxy.State.NEW)
    assert not GalaxyImage.objects.filter(galaxy=moved).exists()

    out, _ = run_import(path)
    assert "(0 new, 0 updated, 3 unchanged)" in out


def test_ecsv_with_hyperleda_columns(tmp_path):
    path = tmp_path / "leda.ecsv"
    path.write_text(
        "# %ECSV 1.0\n"
        "# ---\n"
        "# datatype:\n"
        "# - {name: pgc, datatype: int64}\n"
        "# - {name: objname, datatype: string}\n"
        "# - {name: al2000, datatype: float64}\n"
        "# - {name: de2000, datatype: float64}\n"
        "# - {name: logd25, datatype: float64}\n"
        "# - {name: pa, datatype: float64}\n"
        "# - {name: logr25, datatype: float64}\n"
        "pgc objname al2000 de2000 logd25 pa logr25\n"
        '43495 "NGC 4565" 12.605773 25.98751 2.2 135.0 0.87\n'
        '5 "bad one" 12.6 95.0 1.0 10 0.1\n'
    )
    out, err = run_import(path)
    galaxy = Galaxy.objects.get(pgc=43495)
    assert galaxy.name == "NGC 4565"
    assert galaxy.ra == pytest.approx(189.0866, abs=1e-3)
    assert galaxy.d25_arcmin == pytest.approx(0.1 * 10**2.2)
    assert galaxy.axial_ratio == pytest.approx(10**-0.87)
    assert "leda.ecsv: line 13: Dec 95 out of range" in err
    assert "1 bad rows skipped" in out


def test_a_latin1_line_is_reported_and_the_rest_imported(tmp_path):
    path = tmp_path / "mixed.csv"
    path.write_bytes(b"pgc,name,ra,dec\n1,Andr\xe9,10,10\n2,plain,20,20\n")
    out, err = run_import(path)
    assert list(Galaxy.objects.values_list("pgc", flat=True)) == [2]
    assert "line 2: not UTF-8 text (byte 0xE9 at column 7)" in err


def test_utf16_with_a_byte_order_mark_is_read(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes("pgc,name,ra,dec\r\n1,Ærø,10,10\r\n".encode("utf-16"))
    run_import(path)
    assert Galaxy.objects.get(pgc=1).name == "Ærø"


HOSTILE = (
    "pgc,name,ra,dec,logd25,pa,logr25\n"  # line 1
    "1,overflowing size,10,10,400,10,0.1\n"  # 2: 10**400 overflows a float
    "2,overflowing ratio,10,10,1.0,10,-400\n"  # 3
    "9223372036854775808,past bigint,10,10,1.0,10,0.1\n"  # 4: 2**63
    "\u00b2,superscript two,10,10,1.0,10,0.1\n"  # 5: isdigit() but not int()
    "6,arabic digits,\u0661\u0660,10,1.0,10,0.1\n"  # 6: float() reads them
    "7,bell\a,10,10,1.0,10,0.1\n"  # 7: a control character in a name
    "8,tiny negative pa,10,10,1.0,-1e-20,0.1\n"  # 8: good; -1e-20 % 180 == 180.0
    "9223372036854775807,largest pgc,10,10,1.0,10,0.1\n"  # 9: good
)


def test_every_row_is_checked_against_what_the_database_holds(tmp_path):
    path = tmp_path / "hostile.csv"
    padding = "".join(f"{1000 + i},padding {i},10,10,1.0,10,0.1\n" for i in range(200))  # past the first 4 KB
    path.write_text(HOSTILE + padding + "3000,nul\x00name,10,10,1.0,10,0.1\n")
    out, err = run_import(path)
    for line, reason in [
        (2, "logD25 400 out of range"),
        (3, "logR25 -400 out of range"),
        (4, "PGC 9223372036854775808 is larger than the largest the database holds"),
        (5, "PGC is not a positive whole number: '\u00b2'"),
        (6, "RA is not a number"),
        (7, "name contains control characters"),
        (210, "contains a NUL character (column 9)"),
    ]:
        assert f"hostile.csv: line {line}: {reason}" in err
    assert "Imported 202 galaxies (202 new, 0 updated, 0 unchanged); 7 bad rows skipped." in out
    assert Galaxy.objects.get(pgc=8).position_angle == 0.0
    assert Galaxy.objects.filter(pgc=2**63 - 1).exists()


def test_a_file_is_imported_whole_or_not_at_all(tmp_path, monkeypatch):
    """A database failure in a later batch leaves nothing of the earlier ones behind."""
    calls = []
    real_bulk_create = QuerySet.bulk_create

    def bulk_create_failing_the_second_time(self, objs, *args, **kwargs):
        calls.append(len(objs))
        if len(calls) == 2:
            raise IntegrityError("duplicate key value violates unique constraint")
        return real_bulk_create(self, objs, *args, **kwargs)

    monkeypatch.setattr(QuerySet, "bulk_create", bulk_create_failing_the_second_time)
    rows = "".join(f"{pgc},g{pgc},10,10\n" for pgc in range(1, 1201))  # three batches of 500
    path = tmp_path / "big.csv"
    path.write_text("pgc,name,ra,dec\n" + rows)
    with pytest.raises(CommandError, match="Nothing was imported"):
        run_import(path)
    assert not Galaxy.objects.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"name,ra,dec\nx,1,2\n", "no PGC column"),
        (b"pgc,ra\n1,2\n", "no Dec column"),
        (b"", "no header line"),
        (b"\x00\x01\x02binary", "NUL bytes"),
    ],
)
def test_an_unreadable_file_is_a_clear_error(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(CommandError, match=message):
        run_import(path)
    assert not Galaxy.objects.exists()


def test_a_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(CommandError, match="Cannot read"):
        run_import(tmp_path / "nope.csv")


class TestAdmin:
    def test_import_page_reports_bad_rows_and_queues_a_job(
        self, bob_client, tmp_path, settings, django_capture_on_commit_callbacks
    ):
        listing = bob_client.get("/admin/acquisition/acquisitionjob/")
        assert b"Import catalog" in listing.content
        path = tmp_path / "catalog.csv"
        path.write_text(GOOD_AND_BAD)
        with path.open("rb") as upload, django_capture_on_commit_callbacks(execute=False):
            response = bob_client.post("/admin/acquisition/acquisitionjob/import/", {"file": upload, "acquire": "on"})
        assert response.status_code == 200
        page = response.content.decode()
        assert "Imported 3 galaxies" in page
        assert "<td>7</td><td>duplicate PGC 2557 (first on line 2); row skipped</td>" in page
        job = AcquisitionJob.objects.get()
        assert (job.total, job.created_by.username) == (3, "bob")

    def test_import_page_reports_an_unreadable_file(self, bob_client):
        from django.core.files.uploadedfile import SimpleUploadedFile

        upload = SimpleUploadedFile("x.csv", b"name,ra\n1,2\n")
        response = bob_client.post("/admin/acquisition/acquisitionjob/import/", {"file": upload})
        assert response.status_code == 200
        assert "Cannot read the catalog: no PGC column" in response.content.decode()

    def test_import_page_reports_hostile_rows_instead_of_failing(self, bob_client):
        from django.core.files.uploadedfile import SimpleUploadedFile

        padding = "".join(f"{1000 + i},padding {i},10,10,1.0,10,0.1\n" for i in range(200))
        upload = SimpleUploadedFile("x.csv", (HOSTILE + padding + "3000,nul\x00,10,10,1,10,0.1\n").encode())
        response = bob_client.post("/admin/acquisition/acquisitionjob/import/", {"file": upload})
        assert response.status_code == 200
        page = response.content.decode()
        assert "Imported 202 galaxies" in page
        assert "<td>4</td><td>PGC 9223372036854775808 is larger" in page
        assert "contains a NUL character" in page

    def test_volunteers_cannot_import(self, alice_client):
        response = alice_client.get("/admin/acquisition/acquisitionjob/import/")
        assert response.status_code == 302  # to the admin login

    def test_acquire_images_action_on_galaxies_creates_a_job(self, bob_client, django_capture_on_commit_callbacks):
        galaxies = GalaxyFactory.create_batch(3, state=Galaxy.State.NEW)
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            response = bob_client.post(
                "/admin/labeling/galaxy/",
                {"action": "acquire_images", "_selected_action": [g.pk for g in galaxies]},
                follow=True,
            )
        assert response.status_code == 200
        job = AcquisitionJob.objects.get()
        assert job.total == 3
        assert f">{job.pk}</a> queued for 3 galaxies" in response.content.decode()
        assert len(callbacks) == 1  # the fan-out, queued after commit
        assert "Acquisition job" in bob_client.get("/admin/acquisition/acquisitionjob/").content.decode()
