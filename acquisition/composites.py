"""SDSS-like colour composites of g, r, i bands: how the survey turns its FITS frames into colour images.

Django-free. Acquisition's renderer and inference's image preparation both make composites this way.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# The g, r, i scales that make nanomaggy images look like SDSS colour JPEGs (tuned by eye
# against SkyServer cutouts); i goes to red, r to green, g to blue.
SDSS_BAND_SCALES = (1.9, 1.25, 1.0)  # g, r, i
SDSS_STRETCH = 0.45
SDSS_Q = 8.0


def bands_to_rgb(
    bands: np.ndarray,
    *,
    stretch: float | None = SDSS_STRETCH,
    Q: float = SDSS_Q,
    scales: Sequence[float] = SDSS_BAND_SCALES,
) -> np.ndarray:
    """Lupton et al. (2004) asinh colour composite of g, r, i bands (H x W x 3) -> uint8 RGB.

    Like SDSS: i -> red, r -> green, g -> blue. The default stretch suits sky-subtracted
    nanomaggies per 0.396" pixel; `stretch=None` picks one from the image's own noise and
    brightness, for data in unknown units.
    """
    from astropy.visualization import make_lupton_rgb

    bands = np.asarray(bands, dtype=np.float32)
    if bands.ndim == 2:
        bands = bands[..., np.newaxis]
    if bands.shape[-1] == 1:
        bands = np.repeat(bands, 3, axis=-1)
    if bands.shape[-1] < 3:
        bands = np.concatenate([bands, bands[..., -1:]], axis=-1)
    g, r, i = (bands[..., k] * scale for k, scale in zip((0, 1, 2), scales, strict=True))
    if stretch is None:
        # Sky level and noise from the stamp's outer frame, where the sky is.
        intensity = (g + r + i) / 3.0
        frame = border(intensity[..., np.newaxis], max(1, min(intensity.shape) // 20))
        sky = float(np.median(frame))
        g, r, i = g - sky, r - sky, i - sky
        noise = robust_sigma(frame)
        bright = float(np.percentile(intensity - sky, 99.9))
        stretch = max(12.0 * noise, bright / 40.0, 1e-12)
    with np.errstate(invalid="ignore", divide="ignore"):  # 0/0 where the intensity is 0: black
        return make_lupton_rgb(i, r, g, minimum=0.0, stretch=stretch, Q=Q)


def robust_sigma(values: np.ndarray) -> float:
    values = np.asarray(values, dtype=np.float32).ravel()
    if values.size > 200_000:  # a strided sample is plenty for a median
        values = values[:: values.size // 100_000]
    median = np.median(values)
    return float(1.4826 * np.median(np.abs(values - median)))


def border(pixels: np.ndarray, width: int) -> np.ndarray:
    """The outer frame of an H x W x C image as N x C (where the sky is, in a stamp)."""
    return np.concatenate(
        [
            pixels[:width].reshape(-1, pixels.shape[-1]),
            pixels[-width:].reshape(-1, pixels.shape[-1]),
            pixels[:, :width].reshape(-1, pixels.shape[-1]),
            pixels[:, -width:].reshape(-1, pixels.shape[-1]),
        ]
    )
