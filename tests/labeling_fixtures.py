"""Data for the labeling tests: galaxies with small generated colour JPEGs, standards on the 45-90 grid."""

import io

import numpy as np
from django.core.files.base import ContentFile
from PIL import Image, ImageDraw

from acquisition.models import GalaxyImage
from labeling.models import Galaxy
from tests.factories import GalaxyFactory, StandardGalaxyFactory


def galaxy_jpeg(inclination: float, *, size: int = 64, seed: int = 0) -> bytes:
    """A tiny colour image of an ellipse whose axis ratio follows the inclination (b/a = cos i, thickness 0.2)."""
    rng = np.random.default_rng(seed)
    q = max(np.cos(np.radians(inclination)), 0.2)
    base = (rng.normal(8, 3, (size, size, 3))).clip(0, 255).astype("uint8")
    image = Image.fromarray(base, "RGB")
    draw = ImageDraw.Draw(image)
    a = size * 0.38
    b = a * q
    c = size / 2
    draw.ellipse([c - a, c - b, c + a, c + b], fill=(235, 200, 150))
    draw.ellipse([c - a / 4, c - b / 3, c + a / 4, c + b / 3], fill=(255, 245, 220))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=80)
    return out.getvalue()


def attach_color_image(galaxy: Galaxy, inclination: float) -> GalaxyImage:
    data = galaxy_jpeg(inclination, seed=galaxy.pgc)
    image = GalaxyImage(
        galaxy=galaxy,
        band=GalaxyImage.Band.COLOR,
        format=GalaxyImage.Format.JPEG,
        source=galaxy.source,
        width=64,
        height=64,
        checksum="0" * 64,
    )
    image.file.save(f"{galaxy.pgc}-color.jpg", ContentFile(data), save=False)
    image.save()
    return image


def make_galaxy(*, inclination: float = 60.0, **kwargs) -> Galaxy:
    galaxy = GalaxyFactory(**kwargs)
    attach_color_image(galaxy, inclination)
    return galaxy


def make_gold(*, known: float = 67.0, **kwargs) -> Galaxy:
    return make_galaxy(inclination=known, is_gold=True, known_inclination=known, **kwargs)


def make_standards(*, per_degree: int = 1, low: int = 45, high: int = 90) -> dict[int, list]:
    """Standards at every whole degree from low to high (per_degree of each, for reshuffles)."""
    standards: dict[int, list] = {}
    for degree in range(low, high + 1):
        for k in range(per_degree):
            standard = StandardGalaxyFactory(inclination=degree + (0.2 * k if degree < 90 else -0.2 * k))
            attach_color_image(standard.galaxy, degree)
            standards.setdefault(degree, []).append(standard)
    return standards
