"""The demo seeding behind the README's start command."""

import re
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command
from django.http import HttpRequest  # django-axes needs a request to count the login

from acquisition.models import AcquisitionJob, GalaxyImage
from labeling.models import Galaxy, StandardGalaxy
from tests.acquisition_fixtures import standin, standin_server  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db


@pytest.fixture
def seed(django_capture_on_commit_callbacks):
    def run() -> str:
        with django_capture_on_commit_callbacks(execute=True):
            return call_seed()

    return run


def call_seed() -> str:
    out = StringIO()
    call_command("seed_demo", galaxies=3, standards_per_degree=1, skip_models=True, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_seed_demo_fills_a_fresh_site_and_prints_working_logins(client, standin, seed):  # noqa: F811
    output = seed()

    logins = dict(re.findall(r"^\s+(\w+)\s+password: (\S+)", output, flags=re.M))
    assert set(logins) == {"staff", "volunteer"}
    assert client.login(request=HttpRequest(), username="staff", password=logins["staff"])
    assert client.get("/admin/").status_code == 200
    assert (settings.DATA_DIR / "demo-logins.txt").stat().st_mode & 0o077 == 0  # not readable by others

    assert StandardGalaxy.objects.filter(inclination__gte=45).count() == 46
    targets = Galaxy.objects.filter(source=Galaxy.Source.SYNTHETIC, standard__isnull=True)
    assert targets.count() == 3 and targets.filter(images__band=GalaxyImage.Band.COLOR).count() == 3

    # The SDSS-like catalog is imported and its images fetched from the stand-in (tasks run eagerly here):
    job = AcquisitionJob.objects.get(description__contains="SDSS")
    assert job.total == Galaxy.objects.filter(source=Galaxy.Source.SDSS, survey__slug="sdss").count() == 40
    job.refresh_from_db()
    assert job.done == 38 and job.failed == 2  # two lie outside the footprint
    assert (
        Galaxy.objects.filter(source="sdss", state=Galaxy.State.FAILED, failure_reason__icontains="footprint").count()
        == 2
    )

    # A second survey: southern galaxies from the Legacy Surveys through the stand-in's hips2fits, all fetched.
    south = AcquisitionJob.objects.get(description__contains="Legacy")
    assert (south.total, south.done, south.failed) == (12, 12, 0)
    legacy = Galaxy.objects.filter(survey__slug="legacy")
    assert legacy.count() == 12 and all(g.dec < -30 for g in legacy)
    assert GalaxyImage.objects.filter(galaxy__in=legacy, band="color", survey__slug="legacy").count() == 12

    # Seeding again (the start script does it on every start) adds nothing and prints the same logins.
    counts = (Galaxy.objects.count(), GalaxyImage.objects.count(), AcquisitionJob.objects.count())
    again = seed()
    assert (Galaxy.objects.count(), GalaxyImage.objects.count(), AcquisitionJob.objects.count()) == counts
    assert dict(re.findall(r"^\s+(\w+)\s+password: (\S+)", again, flags=re.M)) == logins
