"""Synthetic SDSS-like spiral galaxies with known inclinations: an image source beside SDSS.

A galaxy is drawn in two steps: `draw_params(rng)` picks the physical description (a
`GalaxyParams`: inclination, position angle, disk thickness, bulge, arms, bar, dust, colours,
size, seeing, noise ...), and `render_galaxy(params, seed=...)` turns it into g, r, i images in
nanomaggies per stamp pixel. The seed fixes the small-scale randomness (star-forming knots,
stars, background galaxies, noise), so the same params and seed give identical pixels.

The model, chosen so the axial-ratio physics is exact and the pictures look like SDSS stamps:
- Disk: an oblate spheroid whose light falls off exponentially in the disk plane; seen at
  inclination i its isophotes are ellipses of axis ratio q = sqrt(cos^2 i + q0^2 sin^2 i), the
  relation the axial-ratio baseline inverts (Hubble 1926). Its surface brightness scales as 1/q
  (longer path through the disk) so total flux is conserved.
- Logarithmic spiral arms (count, pitch, strength) and blue star-forming knots along them, drawn
  in the disk plane and projected; a Sersic bulge (redder than the disk, its own flattening);
  a Ferrers-like bar in some; dust lanes along the arms' inner edges and a midplane dust lane
  that darkens near edge-on disks, stronger in g than in i.
- Sky: SDSS pixel scale 0.396"/px resampled to the stamp, double-Gaussian seeing of 1.0-1.6"
  FWHM, per-band sky noise, foreground stars (bright ones with halo and diffraction spikes),
  faint background galaxies and sometimes a close neighbour.
- Stamps are sized like the real ones (GIZ.md): field of view 1.5-3 x D25 in 512 x 512 px.

Speed comes from NumPy over whole frames: coordinate grids are cached per shape, the PSF is
applied as one FFT per band with an analytic transform, the sky noise is synthesised in Fourier
space (random phases, a flat spectrum, correlated when the stamp oversamples the 0.396" pixels)
so it costs no extra transform, and stars and knots are deposited as points before the PSF.
No loop runs over pixels; the only Python loops are over the few bright stars.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from dataclasses import asdict, dataclass, field
from functools import lru_cache

import numpy as np
from scipy import fft as sfft

from acquisition.composites import bands_to_rgb

__all__ = [
    "BANDS",
    "SDSS_PIXEL_SCALE",
    "GalaxyParams",
    "Rendering",
    "draw_params",
    "render_at",
    "render_galaxy",
    "to_color_jpeg",
    "to_color_rgb",
    "to_fits",
]

BANDS = ("g", "r", "i")
SDSS_PIXEL_SCALE = 0.396127  # arcsec per native SDSS pixel
NANOMAGGY_ZEROPOINT = 22.5  # m = 22.5 - 2.5 log10(flux in nanomaggies)
# Relative dust optical depth per band (roughly a Milky Way extinction curve).
DUST_BAND_RATIO = np.array([1.30, 1.00, 0.76], dtype=np.float32)


def _colour_ratios(g_r: float, r_i: float) -> np.ndarray:
    """Flux in g, r, i relative to r for given g-r and r-i colours."""
    return np.array([10 ** (-0.4 * g_r), 1.0, 10 ** (0.4 * r_i)], dtype=np.float32)


@dataclass
class GalaxyParams:
    """Everything that defines one synthetic galaxy; angles in degrees, sizes in arcsec."""

    inclination: float
    position_angle: float  # north through east
    q0: float  # intrinsic axial ratio (thickness) of the disk
    d25_arcmin: float
    fov_factor: float  # stamp field of view in units of D25
    mu0_r: float  # face-on central surface brightness of the disk, r mag/arcsec^2
    disk_scale: float  # exponential scale length, arcsec (follows from D25 and mu0_r)
    bulge_fraction: float  # bulge-to-total light ratio
    bulge_n: float  # Sersic index
    bulge_re: float  # effective radius, arcsec
    bulge_q0: float  # intrinsic flattening of the bulge
    n_arms: int
    pitch_angle: float
    arm_strength: float  # 0 smooth .. 1 grand design
    arm_width: int  # exponent of the arm profile: larger is narrower
    arm_phase: float
    winding: int  # +1 or -1: which way the arms wind on the sky
    clumpiness: float  # 0..1, share of disk light in star-forming knots (scaled)
    bar_strength: float  # share of disk light in the bar (0 for no bar)
    bar_length: float  # semi-major axis in disk scale lengths
    bar_angle: float  # in the disk plane, from the line of nodes
    dust_tau: float  # r-band optical depth of the midplane lane seen edge-on
    near_side: int  # +1 or -1: which side of the major axis is nearer (lane offset)
    colour_bulge: tuple[float, float]  # (g-r, r-i)
    colour_disk: tuple[float, float]
    colour_arms: tuple[float, float]
    seeing: float  # r-band FWHM, arcsec
    sky_sigma: tuple[float, float, float]  # noise per native 0.396" pixel, nanomaggies, g r i
    sky_level: tuple[float, float, float]  # subtracted sky per native pixel (for the record)
    star_density: float  # visible foreground stars per arcmin^2
    bright_stars: int  # stars bright enough to show spikes
    background_density: float  # visible background galaxies per arcmin^2
    neighbour: bool  # a close companion galaxy
    pixel_scale: float | None = None  # arcsec/px; None: sized from D25 like the real stamps

    def stamp_scale(self, size: int) -> float:
        """Arcsec per pixel of a `size`-pixel stamp (GIZ.md: FOV = fov_factor x D25)."""
        if self.pixel_scale is not None:
            return self.pixel_scale
        return self.fov_factor * self.d25_arcmin * 60.0 / size


@dataclass
class Rendering:
    """Rendered g, r, i images (H x W x 3 float32, nanomaggies per pixel) and the truth.

    `bands` is usually a view on band-major planes (each band contiguous); copy it with
    np.ascontiguousarray if pixel-major memory matters.
    """

    bands: np.ndarray
    truth: dict = field(default_factory=dict)

    def band(self, name: str) -> np.ndarray:
        return self.bands[..., BANDS.index(name)]


def draw_params(
    rng: np.random.Generator,
    *,
    inclination: float | None = None,
    position_angle: float | None = None,
) -> GalaxyParams:
    """Draw a plausible SDSS spiral; inclination defaults to isotropic orientations (uniform cos i)."""
    if inclination is None:
        inclination = math.degrees(math.acos(rng.uniform(0.0, 1.0)))
    if position_angle is None:
        position_angle = rng.uniform(0.0, 180.0)
    d25 = 10 ** rng.uniform(math.log10(0.7), math.log10(3.0))
    mu0_r = rng.uniform(19.9, 21.3)
    # Exponential disk reaching 24 r-mag/arcsec^2 (about B 25) at R25.
    disk_scale = d25 * 30.0 * 1.086 / (24.0 - mu0_r)
    bulge_fraction = float(np.clip(rng.beta(1.6, 6.0), 0.02, 0.6))
    has_bar = rng.uniform() < 0.3
    gr_disk = rng.uniform(0.45, 0.62)
    return GalaxyParams(
        inclination=float(inclination),
        position_angle=float(position_angle % 180.0),
        q0=float(rng.uniform(0.10, 0.25)),
        d25_arcmin=float(d25),
        fov_factor=float(rng.uniform(1.5, 3.0)),
        mu0_r=float(mu0_r),
        disk_scale=float(disk_scale),
        bulge_fraction=bulge_fraction,
        bulge_n=float(rng.uniform(1.0, 4.0)),
        bulge_re=float(disk_scale * rng.uniform(0.12, 0.3)),
        bulge_q0=float(rng.uniform(0.55, 0.9)),
        n_arms=int(rng.choice([2, 2, 2, 3, 4])),
        pitch_angle=float(rng.uniform(13.0, 32.0)),
        arm_strength=float(rng.uniform(0.25, 0.85)),
        arm_width=int(rng.integers(2, 7)),
        arm_phase=float(rng.uniform(0.0, 2 * math.pi)),
        winding=int(rng.choice([-1, 1])),
        clumpiness=float(rng.uniform(0.1, 1.0)),
        bar_strength=float(rng.uniform(0.05, 0.15)) if has_bar else 0.0,
        bar_length=float(rng.uniform(0.7, 1.5)),
        bar_angle=float(rng.uniform(0.0, 180.0)),
        dust_tau=float(rng.uniform(0.8, 3.0)),
        near_side=int(rng.choice([-1, 1])),
        colour_bulge=(float(rng.uniform(0.72, 0.85)), float(rng.uniform(0.36, 0.45))),
        colour_disk=(float(gr_disk), float(0.22 + 0.2 * (gr_disk - 0.45))),
        colour_arms=(float(rng.uniform(0.1, 0.35)), float(rng.uniform(0.0, 0.15))),
        seeing=float(rng.uniform(1.0, 1.6)),
        sky_sigma=tuple(float(s * rng.uniform(0.8, 1.3)) for s in (0.027, 0.036, 0.055)),
        sky_level=(0.45, 0.7, 1.1),
        star_density=float(rng.uniform(0.2, 1.5)),
        bright_stars=int(rng.choice([0, 0, 0, 0, 0, 1, 1, 2])),
        background_density=float(rng.uniform(0.8, 2.5)),
        neighbour=bool(rng.uniform() < 0.15),
    )


# --------------------------------------------------------------------------------------------
# Rendering


@lru_cache(maxsize=8)
def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates from the stamp centre: x to the right (west), y up (north)."""
    x = (np.arange(width, dtype=np.float32) - (width - 1) / 2.0)[np.newaxis, :]
    y = ((height - 1) / 2.0 - np.arange(height, dtype=np.float32))[:, np.newaxis]
    x, y = np.broadcast_to(x, (height, width)), np.broadcast_to(y, (height, width))
    return np.ascontiguousarray(x), np.ascontiguousarray(y)


@lru_cache(maxsize=1)
def _phasor_table() -> np.ndarray:
    return np.exp(2j * np.pi * np.arange(4096) / 4096).astype(np.complex64)


@lru_cache(maxsize=8)
def _frequency_radius2(height: int, width: int) -> np.ndarray:
    """(fx^2 + fy^2) in cycles/px on the rfft2 grid."""
    fy = np.fft.fftfreq(height).astype(np.float32)[:, np.newaxis]
    fx = np.fft.rfftfreq(width).astype(np.float32)[np.newaxis, :]
    return fy * fy + fx * fx


def _ipow(x: np.ndarray, n: int) -> np.ndarray:
    """x**n for a small integer n by multiplication (np.power with a float exponent is slow)."""
    result = x * x if n >= 2 else x.copy()
    for _ in range(n - 2):
        result *= x
    return result


def _texture(rng: np.random.Generator, height: int, width: int, *, cells: int) -> np.ndarray:
    """A smooth positive random field (mean about 1) for patchy arms: coarse noise, upsampled.

    Bilinear upsampling as two small matrix products, far cheaper than ndimage.zoom.
    """
    coarse = rng.normal(0.0, 1.0, (cells, cells)).astype(np.float32)
    fine = _interpolation_matrix(height, cells) @ coarse @ _interpolation_matrix(width, cells).T
    fine *= 0.45
    fine -= 0.1
    return np.exp(fine, out=fine)


@lru_cache(maxsize=16)
def _interpolation_matrix(size: int, cells: int) -> np.ndarray:
    """size x cells matrix doing linear interpolation from `cells` samples spread over `size` px."""
    position = (np.arange(size) + 0.5) * (cells / size) - 0.5
    low = np.clip(np.floor(position).astype(int), 0, cells - 1)
    high = np.clip(low + 1, 0, cells - 1)
    frac = np.clip(position - np.floor(position), 0.0, 1.0)
    frac = np.where(position < 0, 0.0, frac)
    matrix = np.zeros((size, cells), dtype=np.float32)
    matrix[np.arange(size), low] += 1.0 - frac
    matrix[np.arange(size), high] += frac
    return matrix


def _sersic_b(n: float) -> float:
    return 2.0 * n - 1.0 / 3.0 + 4.0 / (405.0 * n) + 46.0 / (25515.0 * n * n)


def _to_sky(u: np.ndarray, v: np.ndarray, pa: float) -> tuple[np.ndarray, np.ndarray]:
    """Major/minor-axis offsets (u along PA, v across it) to image x (right), y (up)."""
    s, c = math.sin(pa), math.cos(pa)
    return -u * s + v * c, u * c + v * s


def _central_box(height: int, width: int, *, half: float) -> tuple[slice, slice]:
    """Slices of a box of half-size `half` px around the stamp centre, clipped to the stamp."""
    half_rows = min(int(math.ceil(half)), height // 2)
    half_cols = min(int(math.ceil(half)), width // 2)
    return (
        slice(height // 2 - half_rows, height // 2 + half_rows + height % 2),
        slice(width // 2 - half_cols, width // 2 + half_cols + width % 2),
    )


def _deposit(image: np.ndarray, x: np.ndarray, y: np.ndarray, flux: np.ndarray) -> None:
    """Add point fluxes at image coordinates (x right, y up, from the centre) into `image`."""
    height, width = image.shape
    col = np.rint(x + (width - 1) / 2.0).astype(np.int64)
    row = np.rint((height - 1) / 2.0 - y).astype(np.int64)
    inside = (col >= 0) & (col < width) & (row >= 0) & (row < height)
    # A few hundred points at most: np.add.at beats a full-frame bincount here.
    np.add.at(image.reshape(-1), row[inside] * width + col[inside], flux[inside].astype(np.float32))


def _galaxy_patches(
    image_bands: np.ndarray,
    *,
    x: np.ndarray,
    y: np.ndarray,
    flux: np.ndarray,
    colours: np.ndarray,
    re_px: np.ndarray,
    q: np.ndarray,
    theta: np.ndarray,
    n: np.ndarray,
    half: int,
) -> None:
    """Add small Sersic galaxies (all at once, one patch each) into the 3 x H x W band stack."""
    if len(x) == 0:
        return
    _, height, width = image_bands.shape
    offsets = np.arange(-half, half + 1, dtype=np.float32)
    col0 = np.rint(x + (width - 1) / 2.0).astype(np.int64)
    row0 = np.rint((height - 1) / 2.0 - y).astype(np.int64)
    dx = offsets[np.newaxis, np.newaxis, :] + 0.0 * offsets[np.newaxis, :, np.newaxis]
    dy = -offsets[np.newaxis, :, np.newaxis] + 0.0 * offsets[np.newaxis, np.newaxis, :]
    c, s = np.cos(theta)[:, None, None], np.sin(theta)[:, None, None]
    a = dx * c + dy * s
    b = (-dx * s + dy * c) / q[:, None, None]
    r = np.sqrt(a * a + b * b) / re_px[:, None, None]
    nn = n[:, None, None]
    profile = np.exp(-_sersic_b_array(n)[:, None, None] * (r ** (1.0 / nn) - 1.0))
    profile /= profile.sum(axis=(1, 2), keepdims=True)
    rows = row0[:, None, None] + offsets.astype(np.int64)[None, :, None]
    cols = col0[:, None, None] + offsets.astype(np.int64)[None, None, :]
    rows, cols = np.broadcast_arrays(rows, cols)
    inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    flat = (rows * width + cols)[inside]
    for k in range(3):
        weights = (profile * (flux * colours[:, k])[:, None, None])[inside]
        np.add.at(image_bands[k].reshape(-1), flat, weights.astype(np.float32))


def _sersic_b_array(n: np.ndarray) -> np.ndarray:
    return 2.0 * n - 1.0 / 3.0 + 4.0 / (405.0 * n) + 46.0 / (25515.0 * n * n)


def _mag_to_flux(mag: np.ndarray | float) -> np.ndarray:
    return np.asarray(10 ** (-0.4 * (np.asarray(mag) - NANOMAGGY_ZEROPOINT)), dtype=np.float32)


def _bright_star_features(
    bands: np.ndarray, *, x: float, y: float, flux: np.ndarray, psf_sigma: float, rng: np.random.Generator
) -> None:
    """Halo and diffraction spikes of one bright star, added after the PSF in a local patch."""
    _, height, width = bands.shape
    half = int(min(max(height, width) // 3, 25 * psf_sigma + 20))
    col0 = int(round(x + (width - 1) / 2.0))
    row0 = int(round((height - 1) / 2.0 - y))
    r0, r1 = max(row0 - half, 0), min(row0 + half + 1, height)
    c0, c1 = max(col0 - half, 0), min(col0 + half + 1, width)
    if r0 >= r1 or c0 >= c1:
        return
    dy = (np.arange(r0, r1, dtype=np.float32) - row0)[:, None]
    dx = (np.arange(c0, c1, dtype=np.float32) - col0)[None, :]
    # SDSS cutouts are rotated from the camera, so the spikes are tilted by a random angle.
    tilt = rng.uniform(-0.3, 0.3)
    ct, st = math.cos(tilt), math.sin(tilt)
    a, b = dx * ct + dy * st, -dx * st + dy * ct
    width_px = max(0.6, 0.35 * psf_sigma)
    length = half * 0.3
    spikes = np.exp(-np.abs(a) / length) * np.exp(-0.5 * (b / width_px) ** 2) + np.exp(-np.abs(b) / length) * np.exp(
        -0.5 * (a / width_px) ** 2
    )
    r2 = a * a + b * b
    halo = 1.0 / (1.0 + r2 / (3.0 * psf_sigma) ** 2) ** 1.5
    # Fade everything to zero at the patch edge so no square outline shows.
    window = np.clip(1.0 - r2 / float(half * half), 0.0, None) ** 2
    pattern = (0.003 * spikes / width_px + 0.01 * halo / (psf_sigma * psf_sigma)) * window
    bands[:, r0:r1, c0:c1] += flux[:, None, None] * pattern[None]


def render_galaxy(params: GalaxyParams, *, size: int = 512, seed: int) -> Rendering:
    """Render a size x size stamp of `params`; identical pixels for identical params and seed."""
    return _render(params, height=size, width=size, seed=seed)


def _render(params: GalaxyParams, *, height: int, width: int, seed: int) -> Rendering:
    p = params
    rng = np.random.default_rng([seed, 0x6A1A])
    scale = p.stamp_scale(max(height, width))
    x, y = _grid(height, width)
    inc = math.radians(p.inclination)
    pa = math.radians(p.position_angle)
    cos_i, sin_i = math.cos(inc), math.sin(inc)
    q_disk = math.sqrt(cos_i**2 + (p.q0 * sin_i) ** 2)
    h = p.disk_scale / scale  # px

    # Coordinates along (u) and across (v) the major axis, and the deprojected disk radius.
    s_pa, c_pa = math.sin(pa), math.cos(pa)
    u = y * c_pa - x * s_pa
    v = x * c_pa + y * s_pa
    vd = v * (1.0 / q_disk)
    radius = np.sqrt(u * u + vd * vd)
    smooth = np.exp(radius * (-1.0 / h))

    # Spiral arms: a logarithmic spiral in the disk plane, washed out by the line of sight
    # through an edge-on disk; dust lanes follow the arms' inner edges. The pattern angle
    # m*phi - psi(R) is handled through its cosine and sine (complex powers of (u + i vd) / R),
    # which avoids a full-frame arctan2, the slowest ufunc here.
    disk_flux = _mag_to_flux(p.mu0_r) * 2 * math.pi * p.disk_scale**2  # total, nanomaggies
    r_in = max(p.bar_length * h if p.bar_strength > 0 else 0.0, 2.0 * p.bulge_re / scale, 0.4 * h)
    arm_amp = p.arm_strength * (1.0 - 0.85 * sin_i**4)
    inv_r = 1.0 / (radius + 1e-3)
    c1, s1 = u * inv_r, vd * inv_r
    cm, sm = c1, s1
    for _ in range(p.n_arms - 1):
        cm, sm = cm * c1 - sm * s1, sm * c1 + cm * s1
    psi = np.log(radius + 0.5)
    psi *= float(p.winding * p.n_arms / math.tan(math.radians(p.pitch_angle)))
    psi -= p.arm_phase
    cos_psi, sin_psi = np.cos(psi), np.sin(psi)
    wave = cm * cos_psi + sm * sin_psi  # cos(m phi - psi)
    wave_sin = sm * cos_psi - cm * sin_psi  # sin(m phi - psi)
    # Real arms are lopsided and patchy: a one-armed (m = 1) term and a coarse random texture.
    lopsided = 1.0 + p.arm_strength * 0.35 * (c1 * math.cos(p.arm_phase * 3) + s1 * math.sin(p.arm_phase * 3))
    texture = _texture(rng, height, width, cells=int(np.clip(12 * (width / (p.disk_scale / scale * 9)), 8, 48)))
    crest = _ipow((1.0 + wave) * 0.5, p.arm_width)
    mean_crest = math.gamma(p.arm_width + 0.5) / (math.sqrt(math.pi) * math.gamma(p.arm_width + 1.0))
    taper = 1.0 - np.exp(radius * radius * (-1.0 / (r_in * r_in)))
    arms = smooth * taper * crest * lopsided * texture
    arms *= 1.0 / mean_crest
    delta = 0.45 * p.winding  # the lane leads the arm crest by this much phase
    lane_wave = wave * math.cos(delta) - wave_sin * math.sin(delta)
    arm_dust = 1.0 - (0.4 * arm_amp) * taper * _ipow((1.0 + lane_wave) * 0.5, p.arm_width + 2)
    norm = 1.0 / (2 * math.pi * h * h * q_disk)
    disk_img = smooth * (norm * disk_flux * (1.0 - arm_amp))
    arm_img = arms * (norm * disk_flux * arm_amp)

    # Star-forming knots: points along the arms (some scattered) in the disk plane, projected.
    n_knots = int(20 + 200 * p.clumpiness)
    knot_r = rng.gamma(2.0, 1.0, n_knots).astype(np.float32) * h * 0.9 + r_in * 0.8
    on_arm = rng.uniform(size=n_knots) < 0.75
    knot_phi = (
        (np.log(knot_r + 0.5) * (p.winding * p.n_arms / math.tan(math.radians(p.pitch_angle))) - p.arm_phase) / p.n_arms
        + 2 * math.pi * rng.integers(0, p.n_arms, n_knots) / p.n_arms
        + rng.normal(0.0, 0.12, n_knots)
    )
    knot_phi = np.where(on_arm, knot_phi, rng.uniform(0, 2 * math.pi, n_knots)).astype(np.float32)
    height_z = rng.normal(0.0, 0.25 * p.q0 * h, n_knots)
    ku = knot_r * np.cos(knot_phi)
    kv = knot_r * np.sin(knot_phi) * cos_i + height_z * sin_i
    kx, ky = _to_sky(ku, kv, pa)
    knot_flux = rng.lognormal(0.0, 0.8, n_knots)
    knot_flux *= 0.12 * p.clumpiness * disk_flux / knot_flux.sum()
    _deposit(arm_img, kx, ky, knot_flux)

    # Bulge: Sersic, flattened less than the disk.
    # Bulge and bar are central, so they are computed in a central box only (the Sersic power
    # is the second slowest ufunc here); light beyond 15 r_e is negligible against the disk.
    re_px = p.bulge_re / scale
    box = _central_box(height, width, half=max(15.0 * re_px, p.bar_length * h if p.bar_strength else 0.0) + 4)
    ub, vbox, vdb = u[box], v[box], vd[box]
    q_bulge = math.sqrt(cos_i**2 + (p.bulge_q0 * sin_i) ** 2)
    vb = vbox * (1.0 / q_bulge)
    rb2 = (ub * ub + vb * vb) * (1.0 / re_px**2)
    bulge = np.exp((-_sersic_b(p.bulge_n)) * (np.power(rb2 + 1e-4, 0.5 / p.bulge_n) - 1.0))
    bulge_flux = disk_flux * p.bulge_fraction / (1.0 - p.bulge_fraction)
    red_img = np.zeros((height, width), dtype=np.float32)
    red_img[box] = bulge * (bulge_flux / float(bulge.sum()))
    if p.bar_strength > 0:
        beta = math.radians(p.bar_angle)
        xb = ub * math.cos(beta) + vdb * math.sin(beta)
        yb = vdb * math.cos(beta) - ub * math.sin(beta)
        a_bar = p.bar_length * h
        m2 = (xb * xb + (yb * yb) * (1.0 / 0.28**2)) * (1.0 / (a_bar * a_bar))
        bar = np.clip(1.0 - m2, 0.0, None) ** 2
        total = float(bar.sum())
        if total > 0:
            red_img[box] += bar * (p.bar_strength * disk_flux / total)

    # Compose g, r, i from the components' colours, then dust. The midplane lane darkens disks
    # near edge-on and drifts to the near side as the disk opens up.
    sed_disk = _colour_ratios(*p.colour_disk)
    sed_arms = _colour_ratios(*p.colour_arms)
    sed_bulge = _colour_ratios(*p.colour_bulge)
    edge_on = float(np.clip((p.inclination - 62.0) / 24.0, 0.0, 1.0)) ** 2
    bands = np.empty((3, height, width), dtype=np.float32)
    if edge_on > 0:
        lane_offset = p.near_side * 0.6 * h * p.q0 * cos_i / max(q_disk, 1e-3)
        lane_width = max(0.35 * p.q0 * h * sin_i + 0.2 * h * cos_i, 0.5)
        lane = np.exp(np.abs(u) * (-1.0 / (2.5 * h)) - 0.5 * ((v - lane_offset) * (1.0 / lane_width)) ** 2)
        lane *= p.dust_tau * edge_on
    disk_img *= arm_dust
    red_img *= arm_dust
    for k in range(3):
        band = disk_img * sed_disk[k]
        band += red_img * sed_bulge[k]
        band += arm_img * sed_arms[k]
        if edge_on > 0:
            band *= np.exp(lane * (-DUST_BAND_RATIO[k]))
        bands[k] = band

    # Foreground stars as points (the PSF shapes them), background galaxies as small patches.
    fov_arcmin2 = (width * scale / 60.0) * (height * scale / 60.0)
    n_stars = rng.poisson(p.star_density * fov_arcmin2)
    star_mag = 22.0 + np.log10(rng.uniform(1e-3, 1.0, n_stars)) / 0.3
    star_mag = np.maximum(star_mag, 15.5)
    star_x = rng.uniform(-width / 2, width / 2, n_stars)
    star_y = rng.uniform(-height / 2, height / 2, n_stars)
    star_gr = rng.uniform(0.3, 1.4, n_stars)
    bright_mag = rng.uniform(12.0, 14.5, p.bright_stars)
    bright_x = rng.uniform(-0.45 * width, 0.45 * width, p.bright_stars)
    bright_y = rng.uniform(-0.45 * height, 0.45 * height, p.bright_stars)
    bright_gr = rng.uniform(0.4, 1.2, p.bright_stars)
    all_mag = np.concatenate([star_mag, bright_mag])
    all_x, all_y = np.concatenate([star_x, bright_x]), np.concatenate([star_y, bright_y])
    all_gr = np.concatenate([star_gr, bright_gr])
    star_sed = np.stack([10 ** (-0.4 * all_gr), np.ones_like(all_gr), 10 ** (0.4 * (0.45 * all_gr))], axis=1)
    star_flux = _mag_to_flux(all_mag)
    for k in range(3):
        _deposit(bands[k], all_x, all_y, star_flux * star_sed[:, k])

    n_bg = rng.poisson(p.background_density * fov_arcmin2)
    bg_mag = 21.8 + np.log10(rng.uniform(1e-3, 1.0, n_bg)) / 0.45
    bg_mag = np.maximum(bg_mag, 17.5)
    bg_re = np.clip(0.6 * 10 ** (-0.2 * (bg_mag - 19.0)) * rng.lognormal(0, 0.3, n_bg), 0.3, 6.0) / scale
    bg_gr = rng.uniform(0.4, 1.5, n_bg)
    bg_sed = np.stack([10 ** (-0.4 * bg_gr), np.ones_like(bg_gr), 10 ** (0.4 * (0.3 + 0.2 * bg_gr))], axis=1)
    _galaxy_patches(
        bands,
        x=rng.uniform(-width / 2, width / 2, n_bg),
        y=rng.uniform(-height / 2, height / 2, n_bg),
        flux=_mag_to_flux(bg_mag),
        colours=bg_sed,
        re_px=np.maximum(bg_re, 0.5),
        q=rng.uniform(0.3, 1.0, n_bg),
        theta=rng.uniform(0, math.pi, n_bg),
        n=rng.choice([1.0, 1.0, 2.0, 4.0], n_bg),
        half=int(min(max(np.max(bg_re, initial=1.0) * 3.0, 3), 12)),
    )
    neighbour = None
    if p.neighbour:
        angle = rng.uniform(0, 2 * math.pi)
        distance = rng.uniform(0.55, 0.85) * (p.d25_arcmin * 30.0 / scale) + 3 * h
        distance = min(distance, 0.42 * min(height, width))
        n_re = p.disk_scale * rng.uniform(0.3, 0.7) / scale
        n_gr = rng.uniform(0.5, 0.9)
        neighbour = {
            "x": float(distance * math.cos(angle)),
            "y": float(distance * math.sin(angle)),
            "flux_r": float(disk_flux * rng.uniform(0.08, 0.35)),
            "re_px": float(n_re),
        }
        _galaxy_patches(
            bands,
            x=np.array([neighbour["x"]]),
            y=np.array([neighbour["y"]]),
            flux=np.array([neighbour["flux_r"]]),
            colours=_colour_ratios(n_gr, 0.3 + 0.2 * n_gr)[np.newaxis],
            re_px=np.array([n_re]),
            q=np.array([rng.uniform(0.35, 0.95)]),
            theta=np.array([rng.uniform(0, math.pi)]),
            n=np.array([rng.choice([1.0, 2.5, 4.0])]),
            half=int(min(6 * n_re + 5, 0.4 * min(height, width))),
        )

    # Seeing (double Gaussian, slightly worse in g) and sky noise in one inverse FFT per band.
    # The noise has random phases and a flat spectrum (white, Gaussian by the central limit
    # theorem); when the stamp oversamples the 0.396" pixels it is correlated over one of them.
    f2 = _frequency_radius2(height, width)
    spectrum = sfft.rfft2(bands, workers=1)
    sigma_native = np.array(p.sky_sigma, dtype=np.float32)
    # Binning n x n native pixels into one multiplies the noise in flux per pixel by n;
    # interpolating (oversampling) keeps the noise per unit area, so it scales with pixel area.
    ratio = scale / SDSS_PIXEL_SCALE
    noise_scale = sigma_native * (ratio if ratio >= 1.0 else ratio * ratio) * math.sqrt(height * width)
    oversample = 1.0 / ratio
    corr_sigma = 0.45 * oversample if oversample > 1.2 else 0.0
    psf_sigma = p.seeing / 2.3548 / scale
    # One PSF for the three bands: the band-to-band seeing difference is below the spread in
    # seeing between galaxies, and each extra PSF costs two full-frame exponentials.
    psf_ft = np.exp(f2 * (-2 * math.pi**2 * psf_sigma * psf_sigma))
    psf_ft *= 0.88
    psf_ft += 0.12 * np.exp(f2 * (-2 * math.pi**2 * (2.3 * psf_sigma) ** 2))
    if corr_sigma > 0:
        noise_ft = np.exp(f2 * (-2 * math.pi**2 * corr_sigma**2))
        # Keep the per-pixel noise: smoothing white noise by sigma divides its sd by 2 sqrt(pi) sigma.
        noise_ft *= 2.0 * math.sqrt(math.pi) * corr_sigma
    else:
        noise_ft = np.ones_like(f2)
    # Random phases from a table of unit phasors: a uint16 draw and a gather are several times
    # cheaper than cos and sin of uniform floats, and 4096 phase steps are plenty.
    phasors = _phasor_table()
    for k in range(3):
        spectrum[k] *= psf_ft
        noise = phasors[rng.integers(0, phasors.size, f2.shape, dtype=np.uint16)]
        noise *= noise_ft * noise_scale[k]
        spectrum[k] += noise
    bands = sfft.irfft2(spectrum, s=(height, width), workers=1)

    for k in range(p.bright_stars):
        flux = _mag_to_flux(bright_mag[k]) * star_sed[n_stars + k]
        _bright_star_features(bands, x=bright_x[k], y=bright_y[k], flux=flux, psf_sigma=psf_sigma, rng=rng)

    truth = asdict(p)
    truth.update(
        pixel_scale=scale,
        width=width,
        height=height,
        seed=int(seed),
        units="nanomaggies per pixel",
        bands=list(BANDS),
        axial_ratio=q_disk,
        disk_scale_px=h,
        psf_fwhm_px=p.seeing / scale,
        n_stars=int(n_stars + p.bright_stars),
        n_background=int(n_bg),
        n_knots=n_knots,
        neighbour_position=neighbour,
    )
    # H x W x 3 as a view on the band planes: no copy, and each band stays contiguous.
    return Rendering(bands=np.moveaxis(bands, 0, -1), truth=_jsonable(truth))


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def render_at(
    ra: float,
    dec: float,
    *,
    scale_arcsec_per_px: float,
    width: int,
    height: int,
    seed: int | None = None,
    inclination: float | None = None,
    position_angle: float | None = None,
) -> Rendering:
    """Render the galaxy "at" (ra, dec), as an ImgCutout stand-in would serve it.

    The galaxy is drawn deterministically from the coordinates (or `seed`), so repeated requests
    give the same galaxy; the field of view follows the requested scale and size.
    """
    if seed is None:
        digest = hashlib.sha256(f"{ra:.5f},{dec:.5f}".encode()).digest()
        seed = int.from_bytes(digest[:8], "little")
    params = draw_params(np.random.default_rng(seed), inclination=inclination, position_angle=position_angle)
    params.pixel_scale = float(scale_arcsec_per_px)
    rendering = _render(params, height=int(height), width=int(width), seed=seed)
    rendering.truth.update(ra=float(ra), dec=float(dec))
    return rendering


# --------------------------------------------------------------------------------------------
# Output formats


def to_color_rgb(rendering_or_bands: Rendering | np.ndarray) -> np.ndarray:
    """SDSS-like gri composite (uint8 H x W x 3) with the Lupton asinh stretch."""
    if isinstance(rendering_or_bands, Rendering):
        bands = rendering_or_bands.bands
        scale = float(rendering_or_bands.truth.get("pixel_scale", SDSS_PIXEL_SCALE))
    else:
        bands, scale = np.asarray(rendering_or_bands, dtype=np.float32), SDSS_PIXEL_SCALE
    # The stretch is tuned for flux per native SDSS pixel; resampled stamps keep its look.
    return bands_to_rgb(bands * (SDSS_PIXEL_SCALE / scale) ** 2)


def to_color_jpeg(rendering_or_bands: Rendering | np.ndarray, *, quality: int = 90) -> bytes:
    """SDSS-like gri colour JPEG bytes."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(to_color_rgb(rendering_or_bands)).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def to_fits(rendering: Rendering) -> bytes:
    """FITS bytes: a g, r, i cube (float32 nanomaggies), pixel scale, WCS if known, and the truth.

    FITS rows run bottom to top, so the cube is flipped; `inference.imaging.decode_image` flips
    it back.
    """
    from astropy.io import fits

    cube = np.ascontiguousarray(np.moveaxis(rendering.bands, -1, 0)[:, ::-1, :])
    hdu = fits.PrimaryHDU(cube.astype(np.float32))
    header = hdu.header
    truth = rendering.truth
    header["BANDS"] = (",".join(BANDS), "planes in order")
    header["BUNIT"] = ("nanomaggy", "flux per pixel")
    header["ORIGIN"] = "GIZ synthetic"
    scale = float(truth.get("pixel_scale", SDSS_PIXEL_SCALE))
    header["PIXSCALE"] = (scale, "arcsec per pixel")
    for key, name in (
        ("INCL", "inclination"),
        ("PA", "position_angle"),
        ("Q0", "q0"),
        ("D25", "d25_arcmin"),
        ("SEEING", "seeing"),
        ("SEED", "seed"),
    ):
        if name in truth:
            header[key] = truth[name]
    if "ra" in truth and "dec" in truth:
        height, width = rendering.bands.shape[:2]
        header["CTYPE1"], header["CTYPE2"] = "RA---TAN", "DEC--TAN"
        header["CRVAL1"], header["CRVAL2"] = truth["ra"], truth["dec"]
        header["CRPIX1"], header["CRPIX2"] = (width + 1) / 2.0, (height + 1) / 2.0
        header["CDELT1"], header["CDELT2"] = -scale / 3600.0, scale / 3600.0  # east is left
    header["TRUTH"] = json.dumps(truth, separators=(",", ":"))
    buffer = io.BytesIO()
    hdu.writeto(buffer)
    return buffer.getvalue()


def params_from_population(draw, rng: np.random.Generator) -> GalaxyParams:
    """Our renderer's parameters for a draw of the shared population (`acquisition.population`).

    The population fixes what is in the stamp (type, thickness, size, surface brightness, bulge,
    bar, dust, seeing, neighbours, stars); arms, knots and colours of the arms stay our own.
    """
    from dataclasses import replace

    base = draw_params(rng, inclination=draw.inclination, position_angle=draw.position_angle)
    return replace(
        base,
        q0=draw.q0,
        d25_arcmin=draw.d25_arcmin,
        fov_factor=draw.fov_factor,
        mu0_r=draw.mu0_r,
        disk_scale=draw.disk_scale,
        bulge_fraction=min(draw.bulge_fraction, 0.6),
        bulge_n=draw.bulge_n,
        bulge_re=float(draw.disk_scale * rng.uniform(0.12, 0.3)),
        bulge_q0=draw.bulge_q0,
        bar_strength=draw.bar_strength,
        dust_tau=max(draw.dust_tau, 0.1),
        colour_disk=(draw.disk_g_r, float(0.22 + 0.3 * (draw.disk_g_r - 0.45))),
        colour_bulge=(draw.bulge_g_r, float(0.36 + 0.2 * (draw.bulge_g_r - 0.75))),
        seeing=draw.seeing,
        # Real GIZ stamps have a far smoother sky than our default (GIZ.md, last table).
        sky_sigma=tuple(float(0.25 * s * draw.noise_factor) for s in (0.027, 0.036, 0.055)),
        star_density=draw.star_density,
        bright_stars=draw.bright_stars,
        neighbour=draw.neighbour,
    )
