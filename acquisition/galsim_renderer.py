"""A second, independent galaxy source: GalSim profiles, seeing and noise, SDSS-style colour stamps.

Django-free, and it shares no rendering code with `acquisition.renderer` (only the population
drawn by `acquisition.population`). Where our own renderer builds an oblate exponential with
logarithmic arms as a brightness pattern on the disk, a dust screen and a double-Gaussian PSF by
hand, this one uses GalSim's physics: `InclinedExponential` (a thick exponential disk, sech^2
vertically, as thick as q0 says), `InclinedSersic` (an oblate bulge), a midplane dust lane as a thin
negative-flux disk; arms as clouds of points in the disk plane (light as thick as the disk, young
clumps and absorbing dust clouds thinner) that are projected, blurred and convolved with the seeing;
Kolmogorov or Moffat seeing convolved exactly, Poisson sky and
source noise (`galsim.PoissonNoise`), drawn on SDSS's native 0.396" pixels and resampled to the
stamp the way SkyServer serves small galaxies (interpolated, so the noise is correlated).

`render_bands(draw, size=..., seed=...)` -> H x W x 3 float32 g, r, i in nanomaggies per native
SDSS pixel area (a surface brightness, so one stretch suits every stamp scale);
`to_color_rgb(bands, rng)` -> uint8 RGB with astropy's `make_lupton_rgb`, as SDSS makes its JPEGs.
"""

from __future__ import annotations

import math

import galsim
import numpy as np
from astropy.visualization import make_lupton_rgb
from PIL import Image
from scipy import ndimage, signal

from acquisition.population import SDSS_LOOK, PopulationDraw, SurveyLook

NATIVE_SCALE = 0.396127  # arcsec per SDSS pixel
# Sky per native pixel (nanomaggies) and electrons per nanomaggy, g r i: Poisson noise of the sky
# then gives per-pixel noise (about 0.01, 0.012, 0.022 nanomaggies) that, once stretched, matches the
# smooth sky and core-to-noise ratios measured on real GIZ stamps (GIZ.md, last table).
SKY_NMGY = np.array([0.35, 0.62, 1.0])
ELECTRONS_PER_NMGY = np.array([560.0, 690.0, 330.0]) * 6.0
# How much each band loses to dust relative to r (a Milky-Way-like extinction curve).
DUST_BAND = np.array([1.3, 1.0, 0.75])
# GalSim's InclinedExponential is sech^2(z / h_s) vertically, which falls off as exp(-2 z / h_s): with
# h_s = q0 h its edge-on isophotes are half as thick as the q0 the population drew, so the same galaxy
# looked more inclined than in our renderer (and than Hubble's formula with that q0 says) and the
# ensemble, trained on both, answered 3 deg high at 75-85 deg on GalSim and 3 deg low at 85-90 on ours.
# h_s = 1.7 q0 h puts the 3-10% isophotes' axis ratio within 1 deg (as an inclination) of
# sqrt(cos^2 i + q0^2 sin^2 i) at 70-90 deg (bench/bench_thickness.py).
SECH2_HEIGHT_PER_Q0 = 1.7


def _sed(g_r: float) -> np.ndarray:
    """Flux in g, r, i relative to r for a g-r colour (r-i follows it, as for normal galaxies)."""
    r_i = 0.12 + 0.45 * g_r
    return np.array([10 ** (-0.4 * g_r), 1.0, 10 ** (0.4 * r_i)])


def _flux(mag: float | np.ndarray) -> float | np.ndarray:
    return 10 ** (-0.4 * (np.asarray(mag) - 22.5))


# Share of the disk's light in its arms, by type: early types have smooth, faint arms.
ARM_SHARE = {"Sa": (0.05, 0.2), "Sb": (0.1, 0.3), "Sc": (0.15, 0.4), "Sd": (0.15, 0.4)}


class _Spiral:
    """Logarithmic arms in the disk plane: m arms wound by the pitch angle, one way or the other."""

    def __init__(self, rng: np.random.Generator, draw: PopulationDraw):
        self.rng = rng
        self.h = draw.disk_scale
        self.m = int(rng.choice([2, 2, 3, 4]))
        self.wind = rng.choice([-1, 1]) / math.tan(math.radians(rng.uniform(10.0, 35.0)))
        self.phase = rng.uniform(0, 2 * math.pi)

    def points(self, n: int, *, spread: float, lead: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """n (radius, azimuth) points around the arms (exponential in radius, gaussian `spread` rad across)."""
        radius = self.rng.gamma(2.0, self.h, n) + 0.2 * self.h
        arm = self.rng.integers(0, self.m, n)
        phi = self.phase + 2 * math.pi * arm / self.m + self.wind * np.log(radius / self.h)
        return radius, phi + lead + self.rng.normal(0, spread, n)


def _components(draw: PopulationDraw, rng: np.random.Generator, *, height_per_q0: float) -> tuple[list, list, list]:
    """Extended sources as (unit-flux profile, g r i fluxes); point sources and diffuse points (arm light,
    dust clouds: blurred to a tenth of the disk scale length before the seeing) as (x, y, g r i fluxes)."""
    inc = galsim.Angle(draw.inclination, galsim.degrees)
    cos_i = math.cos(math.radians(draw.inclination))
    h = draw.disk_scale
    disk_flux = float(_flux(draw.mu0_r)) * 2 * math.pi * h * h
    rotate = galsim.Angle(90.0 + draw.position_angle, galsim.degrees)
    fov = draw.fov_arcsec
    shift = (draw.offset_x * fov, draw.offset_y * fov)
    parts, points, diffuse = [], [], []

    def galaxy_part(profile, flux_gri):
        parts.append((profile.rotate(rotate).shift(*shift), np.asarray(flux_gri, dtype=float)))

    knot_share = rng.uniform(0.02, 0.12)
    # Spiral arms carry part of the disk's light (more in late types), as a cloud of points along
    # logarithmic spirals, blurred (`diffuse`) into arms a tenth of the scale length wide.
    arm_share = rng.uniform(*ARM_SHARE[draw.morphology])
    disk_sed = _sed(draw.disk_g_r)
    smooth_share = 1 - knot_share - arm_share
    disk = galsim.InclinedExponential(inc, scale_radius=h, scale_height=height_per_q0 * draw.q0 * h, flux=1.0)
    galaxy_part(disk, disk_flux * smooth_share * disk_sed)
    spiral = _Spiral(rng, draw)

    def to_sky(radius, phi, z):
        """Disk-plane (radius, azimuth, height) -> sky (x, y) arcsec, as the disk is inclined and turned."""
        u, v = radius * np.cos(phi), radius * np.sin(phi) * cos_i + z * sin_i
        return u * cos_t - v * sin_t + shift[0], u * sin_t + v * cos_t + shift[1]

    sin_i = math.sin(math.radians(draw.inclination))
    theta = math.radians(90.0 + draw.position_angle)
    cos_t, sin_t = math.cos(theta), math.sin(theta)
    thickness = 0.3 * draw.q0 * h  # of the young clumps and the dust, thinner than the disk
    n_arm = int(rng.integers(1500, 4000))
    radius, phi = spiral.points(n_arm, spread=rng.uniform(0.15, 0.35))
    # The arms' light is as thick as the disk it belongs to: sech^2(z / h_s) is a logistic of scale h_s / 2.
    x, y = to_sky(radius, phi, rng.logistic(0, 0.5 * height_per_q0 * draw.q0 * h, n_arm))
    arm_flux = disk_flux * arm_share * _sed(draw.disk_g_r - rng.uniform(0.1, 0.3)) / n_arm
    diffuse.extend((xk, yk, arm_flux) for xk, yk in zip(x, y, strict=True))
    # Star-forming clumps, most along the arms, the rest anywhere in the disk.
    n_knots = int(rng.integers(60, 300))
    on_arms = rng.uniform(size=n_knots) < 0.7
    radius, phi = spiral.points(n_knots, spread=0.12)
    phi = np.where(on_arms, phi, rng.uniform(0, 2 * math.pi, n_knots))
    weights = rng.lognormal(0.0, 0.7, n_knots)
    weights *= disk_flux * knot_share / weights.sum()
    x, y = to_sky(radius, phi, rng.normal(0, thickness, n_knots))
    points.extend((xk, yk, wk * _sed(0.25)) for xk, yk, wk in zip(x, y, weights, strict=True))
    # Patchy dust: absorbing clouds on the arms' inner edges, taking light in proportion to the disk's
    # local brightness (clouds follow the disk's radial profile with equal weights).
    if draw.dust_tau > 0:
        n_dust = int(rng.integers(1000, 3000))
        radius, phi = spiral.points(n_dust, spread=0.2, lead=-0.35)
        x, y = to_sky(radius, phi, rng.normal(0, 0.5 * thickness, n_dust))
        absorbed = disk_flux * min(0.015 * draw.dust_tau, 0.06) * disk_sed * DUST_BAND / n_dust
        diffuse.extend((xk, yk, -absorbed) for xk, yk in zip(x, y, strict=True))
    if draw.bulge_fraction > 0.01:
        bulge_flux = disk_flux * draw.bulge_fraction / (1 - draw.bulge_fraction)
        re = h * rng.uniform(0.15, 0.35)
        n = round(draw.bulge_n * 2) / 2  # GalSim caches Sersic tables per index: few distinct values
        bulge = galsim.InclinedSersic(
            n, inc, half_light_radius=re, scale_h_over_r=draw.bulge_q0, flux=1.0, trunc=12 * re
        )
        galaxy_part(bulge, bulge_flux * _sed(draw.bulge_g_r))
    if draw.bar_strength > 0:
        bar = galsim.Gaussian(half_light_radius=h * rng.uniform(0.4, 0.8)).shear(
            q=0.3, beta=galsim.Angle(rng.uniform(0, 180), galsim.degrees)
        )
        galaxy_part(bar.transform(1.0, 0.0, 0.0, max(cos_i, 0.3)), disk_flux * draw.bar_strength * _sed(0.7))
    edge_on = min(max((draw.inclination - 60.0) / 28.0, 0.0), 1.0) ** 1.5
    if draw.dust_tau > 0 and edge_on > 0:
        # Light the midplane blocks, as a thin disk of negative flux slightly towards the near side.
        lane = galsim.InclinedExponential(
            inc, scale_radius=1.1 * h, scale_height=0.3 * height_per_q0 * draw.q0 * h, flux=1.0
        )
        lane = lane.shift(0.0, rng.choice([-1, 1]) * 0.25 * draw.q0 * h * (0.3 + cos_i))
        blocked = 0.5 * (1 - np.exp(-draw.dust_tau * DUST_BAND)) * edge_on
        galaxy_part(lane, -disk_flux * (1 - knot_share) * disk_sed * blocked)
    if draw.neighbour:
        angle = rng.uniform(0, 2 * math.pi)
        distance = rng.uniform(0.4, 0.9) * draw.d25_arcmin * 30.0
        companion = galsim.Sersic(float(rng.choice([1.0, 2.0, 4.0])), half_light_radius=h * rng.uniform(0.3, 0.8))
        companion = companion.shear(q=rng.uniform(0.3, 0.95), beta=galsim.Angle(rng.uniform(0, 180), galsim.degrees))
        parts.append(
            (
                companion.shift(distance * math.cos(angle) + shift[0], distance * math.sin(angle) + shift[1]),
                disk_flux * rng.uniform(0.05, 0.4) * _sed(rng.uniform(0.5, 0.9)),
            )
        )
    # Foreground stars (number counts rising to faint magnitudes) and a few bright ones.
    fov_arcmin2 = (fov / 60.0) ** 2
    n_stars = int(rng.poisson(draw.star_density * fov_arcmin2))
    for mag in rng.uniform(12.5, 15.0, draw.bright_stars):
        # Bright stars as GalSim profiles: their wings reach far beyond the point-source kernel.
        x, y = rng.uniform(-0.45 * fov, 0.45 * fov, 2)
        parts.append((galsim.DeltaFunction(flux=1.0).shift(x, y), float(_flux(mag)) * _sed(rng.uniform(0.4, 1.2))))
    for mag in np.maximum(22.0 + np.log10(rng.uniform(1e-3, 1.0, n_stars)) / 0.3, 16.0):
        x, y = rng.uniform(-0.48 * fov, 0.48 * fov, 2)
        points.append((x, y, float(_flux(mag)) * _sed(rng.uniform(0.3, 1.4))))
    # Faint background galaxies: one profile (one colour) for all of them, one draw per stamp.
    background = []
    for _ in range(int(rng.poisson(1.5 * fov_arcmin2))):
        x, y = rng.uniform(-0.5 * fov, 0.5 * fov, 2)
        one = galsim.Exponential(half_light_radius=rng.uniform(0.4, 2.0), flux=float(_flux(rng.uniform(19.0, 22.5))))
        beta = galsim.Angle(rng.uniform(0, 180), galsim.degrees)
        background.append(one.shear(q=rng.uniform(0.3, 1.0), beta=beta).shift(x, y))
    if background:
        parts.append((galsim.Sum(background), _sed(rng.uniform(0.6, 1.2))))
    return parts, points, diffuse


def _deposit(points: list, n_draw: int, scale: float) -> np.ndarray:
    """3 x n x n image of (x, y, g r i flux) points (arcsec from the centre) summed into their pixels."""
    dots = np.zeros((3, n_draw, n_draw))
    if not points:
        return dots
    xy = np.array([(x, y) for x, y, _ in points]) / scale + n_draw / 2.0
    inside = (xy >= 0).all(axis=1) & (xy < n_draw).all(axis=1)
    cols, rows = xy[inside, 0].astype(int), xy[inside, 1].astype(int)
    fluxes = np.array([f for _, _, f in points])[inside]
    for k in range(3):
        np.add.at(dots[k], (rows, cols), fluxes[:, k])
    return dots


def render_bands(
    draw: PopulationDraw,
    *,
    size: int = 256,
    seed: int,
    native_scale: float = NATIVE_SCALE,
    height_per_q0: float = SECH2_HEIGHT_PER_Q0,
) -> np.ndarray:
    """g, r, i images of `draw` (size x size, nanomaggies per SDSS-pixel area); same seed, same pixels.

    `native_scale` is the pixel scale (arcsec) of the survey the stamp comes from (SDSS's by default): the
    galaxy is drawn on those pixels, then resampled to the stamp. `height_per_q0` is the disk's sech^2 scale
    height per q0 scale radius (bench/bench_thickness.py compares values).
    """
    rng = np.random.default_rng([seed, 0x6A15])
    gs_rng = galsim.BaseDeviate(int(seed) % (2**31 - 1) + 1)
    fov = draw.fov_arcsec
    # Draw on the native pixels when the stamp oversamples them (SkyServer interpolates), else
    # directly at the coarser stamp scale (SkyServer bins).
    n_draw = int(min(size, max(32, round(fov / native_scale))))
    scale = fov / n_draw
    if rng.uniform() < 0.5:
        psf = galsim.Kolmogorov(fwhm=draw.seeing)
    else:
        psf = galsim.Moffat(beta=rng.uniform(2.5, 4.5), fwhm=draw.seeing)
    parts, points, diffuse = _components(draw, rng, height_per_q0=height_per_q0)
    planes = np.zeros((3, n_draw, n_draw))
    params = galsim.GSParams(maximum_fft_size=8192, folding_threshold=1e-2)
    for profile, flux in parts:
        image = galsim.Convolve(profile, psf, gsparams=params).drawImage(nx=n_draw, ny=n_draw, scale=scale)
        planes += image.array[np.newaxis] * flux[:, np.newaxis, np.newaxis]
    # Point sources (clumps, stars) and diffuse points (arms, dust): deposited on the pixel grid (the
    # diffuse ones blurred first), then one convolution with the pixelised PSF; one GalSim draw per
    # point would cost a second per stamp.
    if points or diffuse:
        dots = _deposit(points, n_draw, scale)
        if diffuse:
            blur = 0.1 * draw.disk_scale / scale
            dots += ndimage.gaussian_filter(_deposit(diffuse, n_draw, scale), (0, blur, blur), mode="constant")
        psf_size = int(min(n_draw, 2 * math.ceil(4 * draw.seeing / scale) + 1))
        kernel = psf.drawImage(nx=psf_size, ny=psf_size, scale=scale).array
        planes += signal.fftconvolve(dots, kernel[np.newaxis], mode="same", axes=(1, 2))
    np.clip(planes, 0.0, None, out=planes)  # the dust lane cannot block more light than there is
    area = (scale / NATIVE_SCALE) ** 2
    noise_boost = draw.noise_factor**2
    for k in range(3):
        gain = ELECTRONS_PER_NMGY[k] / noise_boost
        sky_e = SKY_NMGY[k] * area * gain
        image = galsim.ImageD(np.ascontiguousarray(planes[k] * gain), scale=scale)
        image.addNoise(galsim.PoissonNoise(gs_rng, sky_level=sky_e))
        planes[k] = image.array / gain / area  # per native-pixel area
    # Row 0 at the top, as in a JPEG (GalSim's first row is the bottom).
    bands = np.moveaxis(planes[:, ::-1, :], 0, -1).astype(np.float32)
    if n_draw != size:
        bands = np.stack(
            [
                np.asarray(Image.fromarray(np.ascontiguousarray(bands[..., k])).resize((size, size), Image.BICUBIC))
                for k in range(3)
            ],
            axis=-1,
        )
    return bands


def to_color_rgb(
    bands: np.ndarray, rng: np.random.Generator | None = None, *, look: SurveyLook = SDSS_LOOK
) -> np.ndarray:
    """Lupton asinh gri composite (i -> red, r -> green, g -> blue) as uint8, SDSS-like.

    With `rng`, the stretch, softening, band balance and sky pedestal vary around the SDSS look
    (different data releases and cutout services differ in exactly these); `look` moves that centre to
    another survey's stretch, softening and band balance.
    """
    scales = np.array([1.8, 1.4, 1.0]) * np.array(look.band_scales)
    stretch, q, pedestal = 0.5 * look.stretch, 8.0 * look.softening, 0.006
    if rng is not None:
        scales = scales * rng.uniform(0.85, 1.15, 3)
        stretch *= rng.uniform(0.7, 1.5)
        q *= rng.uniform(0.6, 1.5)
        pedestal *= rng.uniform(0.0, 2.0)
    if look.sky_level:
        bands = bands + look.sky_level
    g, r, i = (bands[..., k] * scales[k] for k in range(3))
    with np.errstate(invalid="ignore", divide="ignore"):
        return make_lupton_rgb(i, r, g, minimum=-pedestal, stretch=stretch, Q=q)
