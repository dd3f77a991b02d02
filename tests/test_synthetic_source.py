"""Synthetic galaxies stored as a data source: the render, standards and contact-sheet commands."""

from io import StringIO

import pytest
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from PIL import Image

from acquisition.models import GalaxyImage
from inference.imaging import decode_image
from labeling.models import Galaxy, StandardGalaxy

pytestmark = pytest.mark.django_db


def test_render_synthetic_stores_galaxies_images_and_truth():
    call_command(
        "render_synthetic",
        count=3,
        seed=5,
        min_inclination=45,
        max_inclination=90,
        stdout=StringIO(),
        stderr=StringIO(),
    )
    galaxies = list(Galaxy.objects.filter(source=Galaxy.Source.SYNTHETIC))
    assert len(galaxies) == 3
    for galaxy in galaxies:
        assert galaxy.state == Galaxy.State.READY
        assert 45 <= galaxy.known_inclination <= 90
        assert galaxy.truth["inclination"] == pytest.approx(galaxy.known_inclination)
        colour = galaxy.images.get(band=GalaxyImage.Band.COLOR)
        cube = galaxy.images.get(band=GalaxyImage.Band.GRI, format=GalaxyImage.Format.FITS)
        with default_storage.open(colour.file.name) as handle:
            assert Image.open(handle).size == (512, 512)
        with default_storage.open(cube.file.name) as handle:
            decoded = decode_image(handle.read())
        assert decoded.pixels.shape == (512, 512, 3)


def test_rendering_again_adds_galaxies_without_reusing_numbers():
    for seed in (1, 2):
        call_command("render_synthetic", count=2, seed=seed, stdout=StringIO(), stderr=StringIO())
    assert Galaxy.objects.count() == 4
    assert len(set(Galaxy.objects.values_list("pgc", flat=True))) == 4


def test_create_standards_covers_every_degree_from_45_to_90_and_face_on():
    call_command("create_standards", per_degree=1, face_on=3, stdout=StringIO(), stderr=StringIO())
    inclinations = sorted(StandardGalaxy.objects.values_list("inclination", flat=True))
    assert [i for i in inclinations if i >= 45] == [float(i) for i in range(45, 91)]
    assert len([i for i in inclinations if i < 45]) == 3
    assert not StandardGalaxy.objects.filter(galaxy__images__isnull=True).exists()


def test_contact_sheet_command_writes_a_grid(tmp_path):
    out = tmp_path / "sheet.png"
    call_command(
        "contact_sheet", out=out, inclinations="30,80", per_row=2, tile=64, stdout=StringIO(), stderr=StringIO()
    )
    width, height = Image.open(out).size
    assert width > 2 * 64 and height > 2 * 64


@pytest.mark.parametrize(
    "command, options",
    [
        ("render_synthetic", {"count": 0}),
        ("render_synthetic", {"count": 2, "min_inclination": 80, "max_inclination": 40}),
        ("render_synthetic", {"count": 2, "gold_fraction": 2}),
        ("create_standards", {"per_degree": 0}),
    ],
)
def test_bad_options_are_refused_with_a_reason(command, options):
    with pytest.raises(CommandError):
        call_command(command, stdout=StringIO(), stderr=StringIO(), **options)
    assert not Galaxy.objects.exists()
