"""The galaxy population both synthetic sources draw from: what is in a GIZ stamp, not how it is drawn.

Django-free and renderer-free. `draw_population(rng)` returns a `PopulationDraw` with the physical
description of one stamp (morphological type, thickness, size, surface brightness, bulge, bar, dust,
neighbours, stars, seeing, where the galaxy sits in the stamp). `acquisition.renderer` (our own
renderer) and `acquisition.galsim_renderer` (GalSim) each turn it into pixels their own way; sharing
the population and nothing else is what makes the two sources' disagreement informative.

Realism comes from how the real stamps are made (GIZ.md): the field of view is 1.5-3 x D25 in a
512 px stamp, so small galaxies (D25 well under an arcminute) are a few tens of pixels across in
the model's 128 px input and visibly thickened by 1.0-1.6" seeing; faint, low-surface-brightness
and bulge-dominated (Sa) galaxies are common; the intrinsic thickness q0 depends on the type.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from acquisition.sdss import cutout_plan

# Type: (share of the population, q0 range, bulge-to-total range, disk g-r range)
TYPES: dict[str, tuple[float, tuple[float, float], tuple[float, float], tuple[float, float]]] = {
    "Sa": (0.22, (0.18, 0.25), (0.30, 0.60), (0.62, 0.78)),
    "Sb": (0.33, (0.14, 0.22), (0.12, 0.35), (0.52, 0.70)),
    "Sc": (0.30, (0.10, 0.17), (0.03, 0.15), (0.42, 0.62)),
    "Sd": (0.15, (0.08, 0.14), (0.00, 0.05), (0.35, 0.55)),
}
STAMP_PX = 512


@dataclass(frozen=True)
class SurveyLook:
    """How one survey's stamps look, for the renderers: what differs between telescopes and says nothing about
    the inclination. The defaults are SDSS's (the reference survey the models were trained on).

    `pixel_scale` is the native scale (arcsec/px) the galaxy is drawn on before resampling to the stamp;
    `seeing` the FWHM range (arcsec) drawn per stamp; `stretch` and `softening` multiply the asinh stretch and
    Q of the colour composite; `band_scales` multiply the g, r, i weights of the composite (a g, r, z survey:
    the red channel weighted up); `noise` multiplies the sky noise; `sky_level` is sky left in the composite
    (nanomaggies per SDSS pixel area added to every band: a bright sky or a poor sky subtraction).
    """

    pixel_scale: float = 0.396127
    seeing: tuple[float, float] = (1.0, 1.6)
    stretch: float = 1.0
    softening: float = 1.0
    band_scales: tuple[float, float, float] = (1.0, 1.0, 1.0)
    noise: float = 1.0
    sky_level: float = 0.0

    def __post_init__(self):
        if self.pixel_scale <= 0 or self.stretch <= 0 or self.softening <= 0 or self.noise <= 0:
            raise ValueError("pixel_scale, stretch, softening and noise must be positive")
        lo, hi = self.seeing
        if not 0 < lo <= hi:
            raise ValueError("seeing must be a (low, high) FWHM range in arcsec, 0 < low <= high")

    @classmethod
    def from_dict(cls, values: dict) -> SurveyLook:
        """A look from plain values (settings, JSON); unknown keys are an error that names them."""
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown survey look parameters: {sorted(unknown)}")
        values = dict(values)
        for key in ("seeing", "band_scales"):
            if key in values:
                values[key] = tuple(float(v) for v in values[key])
        return cls(**values)

    @property
    def is_reference(self) -> bool:
        return self == SDSS_LOOK


SDSS_LOOK = SurveyLook()


@dataclass(frozen=True)
class PopulationDraw:
    """One stamp's contents; angles in degrees, sizes in arcsec unless named otherwise."""

    inclination: float
    position_angle: float  # north through east
    morphology: str
    q0: float
    d25_arcmin: float
    fov_factor: float
    stamp_scale: float  # arcsec per pixel of the 512 px stamp
    cutout_scale: float  # arcsec per pixel SkyServer would serve before resampling to 512 px
    mu0_r: float  # face-on central surface brightness of the disk, r mag/arcsec^2 (LSB: > 21.5)
    bulge_fraction: float
    bulge_n: float
    bulge_q0: float
    bar_strength: float  # 0: no bar
    dust_tau: float  # edge-on optical depth of the midplane lane, r band
    disk_g_r: float
    bulge_g_r: float
    seeing: float  # FWHM, arcsec
    noise_factor: float  # sky noise relative to a typical SDSS field
    offset_x: float  # galaxy centre from the stamp centre, in stamp fractions
    offset_y: float
    neighbour: bool
    bright_stars: int
    star_density: float  # foreground stars per arcmin^2

    @property
    def fov_arcsec(self) -> float:
        return self.stamp_scale * STAMP_PX

    @property
    def disk_scale(self) -> float:
        """Exponential scale length (arcsec) that puts 24 r-mag/arcsec^2 at R25."""
        return self.d25_arcmin * 30.0 * 1.086 / max(24.0 - self.mu0_r, 1.6)


def draw_population(
    rng: np.random.Generator,
    *,
    inclination: float | None = None,
    position_angle: float | None = None,
    look: SurveyLook = SDSS_LOOK,
) -> PopulationDraw:
    """Draw one stamp's galaxy; inclination defaults to isotropic orientations (uniform cos i).

    `look` sets the seeing and sky noise of the survey the stamp comes from; the random draws are the same
    for every look, so one seed gives the same galaxy seen by two surveys.
    """
    if inclination is None:
        inclination = math.degrees(math.acos(rng.uniform(0.0, 1.0)))
    if position_angle is None:
        position_angle = rng.uniform(0.0, 180.0)
    names = list(TYPES)
    morphology = names[rng.choice(len(names), p=[TYPES[n][0] for n in names])]
    _, q0_range, bt_range, gr_range = TYPES[morphology]
    # GIZ targets are mostly 0.5-2 arcmin; the small end is where seeing and pixels hurt.
    d25 = float(10 ** rng.uniform(math.log10(0.35), math.log10(2.8)))
    fov_factor = float(rng.uniform(1.5, 3.0))
    cutout_scale, _, fov = cutout_plan(d25_arcmin=d25, fov_factor=fov_factor)
    # Surface brightness: a normal disk 20-21.5, a third of them low surface brightness.
    mu0_r = float(rng.uniform(21.5, 22.8) if rng.uniform() < 0.3 else rng.uniform(19.8, 21.5))
    has_bar = rng.uniform() < 0.3
    offset = rng.uniform(0.0, 0.12) if rng.uniform() < 0.35 else 0.0
    angle = rng.uniform(0, 2 * math.pi)
    return PopulationDraw(
        inclination=float(inclination),
        position_angle=float(position_angle % 180.0),
        morphology=morphology,
        q0=float(rng.uniform(*q0_range)),
        d25_arcmin=d25,
        fov_factor=fov_factor,
        stamp_scale=fov / STAMP_PX,
        cutout_scale=cutout_scale,
        mu0_r=mu0_r,
        bulge_fraction=float(rng.uniform(*bt_range)),
        bulge_n=float(rng.uniform(1.5, 4.0) if morphology in ("Sa", "Sb") else rng.uniform(1.0, 2.0)),
        bulge_q0=float(rng.uniform(0.5, 0.9)),
        bar_strength=float(rng.uniform(0.05, 0.2)) if has_bar else 0.0,
        dust_tau=float(rng.uniform(0.3, 3.0) if rng.uniform() < 0.8 else 0.0),
        disk_g_r=float(rng.uniform(*gr_range)),
        bulge_g_r=float(rng.uniform(0.75, 0.92)),
        seeing=float(rng.uniform(*look.seeing)),
        noise_factor=float(rng.uniform(0.7, 1.4)) * look.noise,
        offset_x=float(offset * math.cos(angle)),
        offset_y=float(offset * math.sin(angle)),
        neighbour=bool(rng.uniform() < 0.2),
        bright_stars=int(rng.choice([0, 0, 0, 1, 1, 2])),
        star_density=float(rng.uniform(0.2, 2.0)),
    )
