"""Synthetic galaxies as a first-class data source: rendered, stored like SDSS images, truth kept.

Synthetic galaxies get PGC numbers from SYNTHETIC_PGC_BASE up, far above real PGC numbers, so they
can never collide with an imported catalog.
"""

import math
from collections.abc import Iterator

import numpy as np
from django.db import transaction
from django.db.models import Max

from acquisition import renderer as synthetic
from acquisition.models import GalaxyImage
from acquisition.services import image_store
from labeling.models import Galaxy, StandardGalaxy

SYNTHETIC_PGC_BASE = 900_000_000
STAMP_SIZE = 512


def _next_synthetic_pgc() -> int:
    highest = Galaxy.objects.filter(pgc__gte=SYNTHETIC_PGC_BASE).aggregate(top=Max("pgc"))["top"]
    return (highest or SYNTHETIC_PGC_BASE) + 1


def _sky_position(rng: np.random.Generator) -> tuple[float, float]:
    """A random position, uniform on the sphere (synthetic galaxies need coordinates like real ones)."""
    return float(rng.uniform(0.0, 360.0)), float(math.degrees(math.asin(rng.uniform(-1.0, 1.0))))


@transaction.atomic
def synthetic_galaxy_create(*, params: synthetic.GalaxyParams, seed: int, pgc: int, is_gold: bool = False) -> Galaxy:
    """Render one galaxy and store it with its colour JPEG, its g/r/i FITS cube and its truth."""
    rendering = synthetic.render_galaxy(params, size=STAMP_SIZE, seed=seed)
    rng = np.random.default_rng(seed)
    ra, dec = _sky_position(rng)
    truth = rendering.truth
    q = math.sqrt(
        math.cos(math.radians(params.inclination)) ** 2 + (params.q0 * math.sin(math.radians(params.inclination))) ** 2
    )
    galaxy = Galaxy.objects.create(
        pgc=pgc,
        name=f"SYN {pgc - SYNTHETIC_PGC_BASE:06d}",
        ra=ra,
        dec=dec,
        d25_arcmin=params.d25_arcmin,
        position_angle=params.position_angle % 180.0,
        axial_ratio=min(1.0, q),
        source=Galaxy.Source.SYNTHETIC,
        state=Galaxy.State.READY,
        known_inclination=params.inclination,
        truth={**truth, "seed": seed},
        is_gold=is_gold,
    )
    scale = float(truth.get("pixel_scale", synthetic.SDSS_PIXEL_SCALE))
    image_store(
        galaxy=galaxy,
        band=GalaxyImage.Band.COLOR,
        format=GalaxyImage.Format.JPEG,
        data=synthetic.to_color_jpeg(rendering),
        source=Galaxy.Source.SYNTHETIC,
        pixel_scale=scale,
        predict=False,  # bulk renders are predicted by one batched inference job, not a task each
    )
    image_store(
        galaxy=galaxy,
        band=GalaxyImage.Band.GRI,
        format=GalaxyImage.Format.FITS,
        data=synthetic.to_fits(rendering),
        source=Galaxy.Source.SYNTHETIC,
        pixel_scale=scale,
    )
    return galaxy


def synthetic_catalog_render(
    *,
    count: int,
    seed: int,
    min_inclination: float = 0.0,
    max_inclination: float = 90.0,
    distribution: str = "isotropic",
    gold_fraction: float = 0.0,
) -> Iterator[Galaxy]:
    """Render `count` galaxies, yielding each as it is stored (callers show progress).

    distribution: "isotropic" (uniform in cos i, as real galaxies are oriented) or "uniform" in degrees.
    """
    rng = np.random.default_rng(seed)
    cos_hi, cos_lo = math.cos(math.radians(min_inclination)), math.cos(math.radians(max_inclination))
    pgc = _next_synthetic_pgc()
    for index in range(count):
        if distribution == "uniform":
            inclination = rng.uniform(min_inclination, max_inclination)
        else:
            inclination = math.degrees(math.acos(rng.uniform(cos_lo, cos_hi)))
        params = synthetic.draw_params(rng, inclination=float(inclination))
        yield synthetic_galaxy_create(
            params=params, seed=int(rng.integers(2**62)), pgc=pgc + index, is_gold=bool(rng.uniform() < gold_fraction)
        )


def standard_set_create(
    *, seed: int, per_degree: int = 3, lowest: int = 45, highest: int = 90, face_on_examples: int = 12
) -> Iterator[StandardGalaxy]:
    """Standards: `per_degree` clean galaxies at each whole degree from `lowest` to `highest`, plus face-on ones.

    Standards are chosen clean, as the real ones were (well-fixed axial ratio): no bright star,
    no close neighbour, a modest bulge.
    """
    rng = np.random.default_rng(seed)
    inclinations = [float(i) for i in range(lowest, highest + 1) for _ in range(per_degree)]
    inclinations += [float(i) for i in np.linspace(10.0, lowest - 1.0, face_on_examples).round()]
    pgc = _next_synthetic_pgc()
    for index, inclination in enumerate(inclinations):
        params = synthetic.draw_params(rng, inclination=inclination)
        params.bright_stars = 0
        params.neighbour = False
        params.bulge_fraction = min(params.bulge_fraction, 0.25)
        galaxy = synthetic_galaxy_create(params=params, seed=int(rng.integers(2**62)), pgc=pgc + index)
        yield StandardGalaxy.objects.create(
            galaxy=galaxy, inclination=inclination, inclination_source="synthetic truth"
        )
