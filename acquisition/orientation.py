"""A galaxy image turned so its major axis is horizontal, for the labeling page (Django-free).

Volunteers judge an inclination by comparing the target's shape with the standards' shapes; the original GIZ
site showed every galaxy with its major axis horizontal, so only the axis ratio differs between them. The angle
is the catalogue's position angle when there is one, else the one measured here on the image (labeling sits
below inference, so it cannot use inference.baseline; this is a smaller measurement of the same kind).

Conventions as inference.imaging: row 0 at the top, north up, east left, position angle (PA) in degrees from
north through east, so PA 90 is already horizontal.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image
from scipy import ndimage

MEASURE_SIZE = 128  # the PA needs the outline, not the detail: measuring on at most ~128 px is enough
LIGHT_FRACTION = 0.85  # the isophote enclosing this share of the central source's light: the disk, not the bulge


def _grey_small(pixels: np.ndarray) -> np.ndarray:
    grey = np.asarray(pixels, dtype=np.float32)
    if grey.ndim == 3:
        grey = grey.mean(axis=-1)
    factor = max(1, min(grey.shape) // MEASURE_SIZE)
    if factor > 1:  # block means: cheap and antialiased
        h, w = (grey.shape[0] // factor) * factor, (grey.shape[1] // factor) * factor
        grey = grey[:h, :w].reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3))
    return grey


def _border(array: np.ndarray) -> np.ndarray:
    return np.concatenate([array[0], array[-1], array[1:-1, 0], array[1:-1, -1]])


def position_angle_measure(pixels: np.ndarray) -> float | None:
    """The PA of the central source's outer isophote (second moments), or None when no source stands out."""
    grey = _grey_small(pixels)
    if min(grey.shape) < 8:
        return None
    border = _border(grey)
    sky = float(np.median(border))
    noise = max(float(1.4826 * np.median(np.abs(border - sky))), 1e-3)
    signal = grey - sky
    # A projected disk is symmetric under a half turn about the centre; stars and neighbours almost never are.
    signal = np.minimum(signal, signal[::-1, ::-1])
    smooth = ndimage.gaussian_filter(signal, 1.0)
    detect = max(3.0 * noise / (2.0 * math.sqrt(math.pi)), 1e-3 * float(smooth.max()))
    labels, count = ndimage.label(smooth > detect)
    if count == 0:
        return None
    cy, cx = (grey.shape[0] - 1) / 2.0, (grey.shape[1] - 1) / 2.0
    rows, cols = np.nonzero(labels)
    nearest = np.argmin((rows - cy) ** 2 + (cols - cx) ** 2)
    region = labels == labels[rows[nearest], cols[nearest]]
    values = np.sort(smooth[region])[::-1]
    cumulative = np.cumsum(values, dtype=np.float64)
    level = values[min(int(np.searchsorted(cumulative, LIGHT_FRACTION * cumulative[-1])), values.size - 1)]
    rows, cols = np.nonzero(ndimage.binary_fill_holes(region & (smooth >= level)))
    if rows.size < 6:
        return None
    dx, dy = cols - cols.mean(), -(rows - rows.mean())  # y up
    cxx, cyy, cxy = (dx * dx).mean(), (dy * dy).mean(), (dx * dy).mean()
    theta = 0.5 * math.degrees(math.atan2(2.0 * cxy, cxx - cyy))  # major axis, from +x counter-clockwise
    return (theta - 90.0) % 180.0


def turn_horizontal(pixels: np.ndarray, position_angle: float, *, seed: int = 0) -> np.ndarray:
    """An H x W x 3 (or H x W grey) uint8 image turned so a major axis at `position_angle` lies horizontal, same size.

    The corners the turn uncovers are filled with sky drawn like the image's border (level and noise), blended
    with the interpolation's own coverage so no dark seam or flat triangle shows where the frame was.
    """
    array = np.asarray(pixels, dtype=np.uint8)
    if array.ndim == 2:
        return turn_horizontal(np.repeat(array[..., np.newaxis], 3, axis=-1), position_angle, seed=seed)[..., 0]
    angle = (90.0 - float(position_angle)) % 180.0
    if angle == 0.0:
        return array.copy()
    image = Image.fromarray(array, "RGB")
    # Bilinear with black outside gives coverage * true value; the same turn of a white frame gives the coverage.
    turned = np.asarray(image.rotate(angle, resample=Image.Resampling.BILINEAR), dtype=np.float32)
    frame = Image.new("L", image.size, 255).rotate(angle, resample=Image.Resampling.BILINEAR)
    coverage = np.asarray(frame, dtype=np.float32)[..., np.newaxis] / 255.0
    # Sky level and noise from the border, stars clipped; the noise correlated over a pixel or so, like a
    # JPEG's, so the filled corners read as more of the same sky.
    border = np.stack([_border(array[..., c].astype(np.float32)) for c in range(3)], axis=-1)
    median = np.median(border, axis=0)
    clipped = np.where(np.abs(border - median) < 3.0 * border.std(axis=0), border, median)
    sky, spread = clipped.mean(axis=0), clipped.std(axis=0)
    uncovered = coverage[..., 0] < 1.0
    noise = np.random.default_rng(seed).standard_normal((*array.shape[:2], 3)).astype(np.float32)
    noise = ndimage.gaussian_filter(noise, (0.8, 0.8, 0))
    noise /= max(float(noise.std()), 1e-6)
    out = turned.copy()
    out[uncovered] += (1.0 - coverage[uncovered]) * (sky + noise[uncovered] * spread)
    return np.clip(out, 0, 255).round().astype(np.uint8)
