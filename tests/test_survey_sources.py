"""Images from any survey: HiPS surveys through hips2fits and URL-template surveys, served by the stand-in;
bad answers fail with a reason; catalog import, table jobs and the API name the survey."""
# ruff: noqa: F811 - pytest fixtures imported from tests.acquisition_fixtures are used as arguments

from io import StringIO

import numpy as np
import pytest
from astropy.io import fits
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from rest_framework.authtoken.models import Token

from acquisition.models import GalaxyImage
from acquisition.sources import band_hips_id
from acquisition.tasks import acquire_galaxy
from inference.models import InferenceJob
from labeling.models import ConsensusLabel, Galaxy, Survey
from tests.acquisition_fixtures import standin, standin_server  # noqa: F401
from tests.factories import GalaxyFactory, SurveyFactory

pytestmark = pytest.mark.django_db

CATALOG = (
    "PGC,name,RA,Dec,D25,PA,b/a\n2557,NGC 224,10.6847,-41.2690,2.5,35,0.31\n5818,NGC 598,23.4621,30.6599,1.1,23,0.59\n"
)


@pytest.fixture
def legacy(standin):
    return SurveyFactory(slug="legacy", hips_id="CDS/P/DESI-Legacy-Surveys/DR10/color", bands="grz")


@pytest.fixture
def template_survey(standin):
    return SurveyFactory(
        slug="plain",
        source_kind=Survey.SourceKind.TEMPLATE,
        hips_id="",
        url_template=standin.url + "/cutout?ra={ra}&dec={dec}&size={size}&scale={scale}&band={band}",
        bands="gr",
    )


def southern_galaxy(survey) -> Galaxy:
    # Dec -50: outside the stand-in's SDSS footprint, as the southern sky is outside the real one.
    return GalaxyFactory(survey=survey, ra=150.0, dec=-50.0, d25_arcmin=1.0, state=Galaxy.State.NEW)


class TestSources:
    def test_a_hips_survey_gives_a_colour_stamp_and_float_band_stamps_where_sdss_has_none(
        self, standin, legacy, settings
    ):
        settings.GIZ_SDSS_FETCH_FITS = True
        galaxy = southern_galaxy(legacy)
        acquire_galaxy.delay(galaxy.pk)

        galaxy.refresh_from_db()
        assert (galaxy.state, galaxy.failure_reason) == (Galaxy.State.READY, "")
        images = {(i.band, i.format): i for i in GalaxyImage.objects.filter(galaxy=galaxy)}
        assert set(images) == {("color", "jpeg"), ("g", "fits"), ("r", "fits"), ("z", "fits")}
        assert {i.survey_id for i in images.values()} == {legacy.pk}
        colour = images["color", "jpeg"]
        assert (colour.width, colour.height, colour.pixel_scale) == (512, 512, pytest.approx(120 / 512))
        with images["r", "fits"].file.open("rb") as f, fits.open(f) as hdus:
            data = hdus[0].data
            assert data.dtype.kind == "f" and data.shape == (512, 512)
            # The full range, not 8-bit: sky noise below zero and a core far above it.
            assert data.min() < 0 < np.percentile(data, 50) * 20 < data.max()
        assert standin.stats() == {"hips:ok": 4}

    def test_a_url_template_survey(self, standin, template_survey, settings):
        settings.GIZ_SDSS_FETCH_FITS = True
        galaxy = southern_galaxy(template_survey)
        acquire_galaxy.delay(galaxy.pk)
        galaxy.refresh_from_db()
        assert galaxy.state == Galaxy.State.READY
        assert sorted(GalaxyImage.objects.filter(galaxy=galaxy).values_list("band", "format")) == [
            ("color", "jpeg"),
            ("g", "fits"),
            ("r", "fits"),
        ]
        assert standin.stats() == {"template:ok": 3}

    @pytest.mark.parametrize("kind", ["hips", "template"])
    @pytest.mark.parametrize(
        "fault, reason",
        [("blank", "blank image"), ("wrong_size", "wrong size"), ("html", "instead of an image")],
    )
    def test_blank_sky_a_wrong_size_or_a_non_image_is_a_permanent_failure_never_an_image(
        self, standin, legacy, template_survey, kind, fault, reason
    ):
        galaxy = southern_galaxy(legacy if kind == "hips" else template_survey)
        standin.faults(next=[fault])
        acquire_galaxy.delay(galaxy.pk)

        galaxy.refresh_from_db()
        assert galaxy.state == Galaxy.State.FAILED
        assert galaxy.failure_reason.startswith("permanent:") and reason in galaxy.failure_reason
        assert not GalaxyImage.objects.filter(galaxy=galaxy).exists()
        assert standin.requests_made() == 1  # not retried: the same question gets the same answer

    @pytest.mark.parametrize("fault, reason", [("blank", "blank g-band image"), ("html", "instead of a FITS")])
    def test_a_bad_band_stamp_fails_the_same_way(self, standin, legacy, settings, fault, reason):
        settings.GIZ_SDSS_FETCH_FITS = True
        galaxy = southern_galaxy(legacy)
        standin.faults(next=["none", fault])  # the colour stamp is fine, the first band is not
        acquire_galaxy.delay(galaxy.pk)
        galaxy.refresh_from_db()
        assert galaxy.state == Galaxy.State.FAILED and reason in galaxy.failure_reason
        assert list(GalaxyImage.objects.filter(galaxy=galaxy).values_list("band", flat=True)) == ["color"]

    def test_a_hips_refusal_is_permanent_and_keeps_the_services_words(self, standin, settings):
        settings.GIZ_SDSS_FETCH_FITS = True
        survey = SurveyFactory(slug="odd", hips_id="CDS/P/Odd/colour", bands="gri")
        galaxy = southern_galaxy(survey)
        standin.faults(next=["none", "404"])
        acquire_galaxy.delay(galaxy.pk)
        galaxy.refresh_from_db()
        assert galaxy.state == Galaxy.State.FAILED and "HTTP 404" in galaxy.failure_reason

    def test_band_hips_ids_follow_the_cds_names(self):
        assert band_hips_id("CDS/P/DESI-Legacy-Surveys/DR10/color", "g") == "CDS/P/DESI-Legacy-Surveys/DR10/g"
        assert band_hips_id("CDS/P/PanSTARRS/DR1/color-z-zg-g", "i") == "CDS/P/PanSTARRS/DR1/i"


class TestImportNamesTheSurvey:
    def run(self, tmp_path, *extra):
        path = tmp_path / "catalog.csv"
        path.write_text(CATALOG)
        out = StringIO()
        call_command("import_catalog", str(path), *extra, stdout=out, stderr=StringIO())
        return out.getvalue()

    def test_the_command_puts_new_galaxies_in_the_survey(self, tmp_path):
        SurveyFactory(slug="legacy")
        out = self.run(tmp_path, "--survey", "legacy")
        assert "Survey: legacy." in out
        assert set(Galaxy.objects.values_list("survey__slug", flat=True)) == {"legacy"}
        # Known galaxies stay in the survey their labels and images came from.
        assert "2 were already catalogued under another survey" in self.run(tmp_path)
        assert set(Galaxy.objects.values_list("survey__slug", flat=True)) == {"legacy"}

    def test_an_unknown_survey_is_a_command_error_and_creates_nothing(self, tmp_path):
        with pytest.raises(CommandError, match="Unknown survey 'nope'; known surveys: sdss"):
            self.run(tmp_path, "--survey", "nope")
        assert not Galaxy.objects.exists()

    def test_the_admin_form(self, bob_client):
        legacy = SurveyFactory(slug="legacy")
        url = "/admin/acquisition/acquisitionjob/import/"
        response = bob_client.post(url, {"file": SimpleUploadedFile("c.csv", CATALOG.encode()), "survey": "nope"})
        assert response.status_code == 400 and b"Select a valid choice" in response.content
        assert not Galaxy.objects.exists()
        response = bob_client.post(url, {"file": SimpleUploadedFile("c.csv", CATALOG.encode()), "survey": "legacy"})
        assert response.status_code == 200 and b"into survey legacy" in response.content
        assert Galaxy.objects.filter(survey=legacy).count() == 2

    def test_a_table_job_with_an_unknown_survey_is_a_400_that_creates_nothing(self, api_client, alice):
        api_client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=alice).key}")
        table = SimpleUploadedFile("t.csv", b"ra,dec\n10.0,-40.0\n")
        response = api_client.post("/api/jobs/table/", {"file": table, "survey": "nope"}, format="multipart")
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["code"] == "unknown_survey" and "'nope'" in error["message"]
        assert not InferenceJob.objects.exists() and not Galaxy.objects.exists()


class TestSurveyApi:
    def test_surveys_are_listed_with_their_label_counts(self, api_client):
        legacy = SurveyFactory(slug="legacy")
        for status in ("accepted", "rejected"):
            ConsensusLabel.objects.create(
                galaxy=GalaxyFactory(survey=legacy),
                status=status,
                inclination=60.0 if status == "accepted" else None,
                n_votes=3,
            )
        rows = api_client.get("/api/surveys/").json()
        assert [r["slug"] for r in rows] == ["sdss", "legacy"]
        assert (rows[1]["galaxies_count"], rows[1]["labels_count"], rows[1]["accepted_labels_count"]) == (2, 2, 1)
        assert rows[0]["is_reference"] and rows[1]["hips_id"] == legacy.hips_id
        assert api_client.get("/api/surveys/legacy/").json()["slug"] == "legacy"
        assert api_client.get("/api/surveys/nope/").status_code == 404
        listed = api_client.get("/api/galaxies/", {"survey": "legacy"}).json()["results"]
        assert {g["survey"] for g in listed} == {"legacy"} and len(listed) == 2
