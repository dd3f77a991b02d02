"""The axial-ratio baseline: inclination from the shape of the galaxy's outer isophote.

It is the non-CNN reference every CNN figure is compared with, and a usable predictor in its
own right (docs/DOMAIN.md: it works for roughly 60% of clean images).

Method (`measure_axial_ratio`):
1. Collapse colour to one channel; estimate the sky (median) and its noise (MAD) from
   sigma-clipped pixels, subtract the sky.
2. Point-symmetrise: take the minimum of the image and its half-turned copy about the stamp
   centre. A projected disk is symmetric under a half turn; stars, spikes and neighbours almost
   never are, so they drop out without a star catalogue.
3. Smooth, keep pixels above 2 noise sigmas, and take the connected region at the centre.
   The isophote enclosing 85% of that region's light defines the outline (holes filled).
   Binary second moments of the outline give b/a and the position angle exactly for
   elliptical isophotes, whatever the radial profile, and weigh the outer disk rather than the
   rounder bulge and the seeing-blurred core. A second pass smooths on the scale of the minor
   axis so spiral arms do not make the outline ragged.
Then cos^2 i = (q^2 - q0^2) / (1 - q0^2), with intrinsic thickness q0 = 0.2 (Hubble 1926).

Conventions follow `inference.imaging`: row 0 at the top, north up, east left, position angle
from north through east.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from inference.imaging import median

__all__ = ["Ellipse", "inclination_from_axial_ratio", "measure_axial_ratio", "predict_inclination"]

DEFAULT_Q0 = 0.2
LIGHT_FRACTION = 0.85
DETECTION_SIGMA = 2.0


@dataclass(frozen=True)
class Ellipse:
    """The fitted outer isophote: axis ratio b/a, PA (deg, north through east), sizes in px."""

    q: float
    position_angle: float
    semi_major: float
    semi_minor: float
    x_center: float  # column
    y_center: float  # row (from the top)
    isophote: float  # the surface brightness level used, sky-subtracted image units
    n_pixels: int


def _to_grey(image: np.ndarray) -> np.ndarray:
    array = np.asarray(image, dtype=np.float32)
    if array.ndim == 3 and array.shape[-1] == 3:
        # array.mean(axis=-1)'s values (it adds the channels in this order), without its slow reduction over a
        # 3-long last axis: this runs on every upload.
        array = (array[..., 0] + array[..., 1] + array[..., 2]) / 3
    elif array.ndim == 3:
        array = array.mean(axis=-1)
    if array.ndim != 2:
        raise ValueError(f"expected an H x W or H x W x C image, got shape {np.shape(image)}")
    return array


def _sky_and_noise(image: np.ndarray) -> tuple[float, float]:
    """Sigma-clipped median and MAD-based sigma of the pixels (the sky dominates a stamp)."""
    values = image.ravel()
    if values.size > 100_000:
        values = values[:: values.size // 100_000]
    centre = median(values)
    sky, sigma = float(centre), float(1.4826 * median(np.abs(values - centre)))
    for _ in range(3):
        if sigma <= 0:
            break
        kept = values[np.abs(values - sky) < 3.0 * sigma]
        sky = float(median(kept))
        sigma = float(1.4826 * median(np.abs(kept - sky)))
    return sky, sigma


def measure_axial_ratio(image: np.ndarray, *, light_fraction: float = LIGHT_FRACTION) -> Ellipse:
    """Fit the ellipse of the central galaxy's outer isophote (see the module docstring)."""
    grey = _to_grey(image)
    sky, sigma = _sky_and_noise(grey)
    # Point-symmetrise about the stamp centre: a galaxy seen in projection is symmetric under
    # a half turn, stars, neighbours and spikes almost never are, so the minimum of the image
    # and its half-turned copy keeps the galaxy and drops the contamination.
    signal = grey - sky
    symmetric = np.minimum(signal, signal[::-1, ::-1])
    first = _fit_outline(symmetric, sigma=sigma, smoothing=1.5, light_fraction=light_fraction)
    # Second pass smoothed on the scale of the galaxy's minor axis, so the outline follows the
    # disk rather than the arm/inter-arm pattern (which makes face-on outlines ragged).
    smoothing = max(1.5, 0.15 * first.semi_minor)
    if smoothing <= 2.0:
        return first
    return _fit_outline(symmetric, sigma=sigma, smoothing=smoothing, light_fraction=light_fraction)


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """`ndimage.binary_fill_holes(mask)` by one labelling of the background instead of its iterated dilation
    from the border: the holes are the background pieces (4-connected, as there) that touch no edge."""
    background, count = ndimage.label(~mask)
    filled = np.ones(count + 1, dtype=bool)
    filled[background[0]] = filled[background[-1]] = filled[background[:, 0]] = filled[background[:, -1]] = False
    filled[0] = True  # label 0 is the mask itself
    return filled[background]


def _fit_outline(signal: np.ndarray, *, sigma: float, smoothing: float, light_fraction: float) -> Ellipse:
    height, width = signal.shape
    smoothed = ndimage.gaussian_filter(signal, smoothing)
    peak = float(np.max(smoothed))
    if peak <= 0:
        raise ValueError("no source above the sky")
    # Smoothing white noise by a Gaussian of width s divides its sigma by 2 sqrt(pi) s; the
    # floor keeps noiseless renders sane.
    noise_smoothed = sigma / (2.0 * math.sqrt(math.pi) * smoothing)
    detect = max(DETECTION_SIGMA * noise_smoothed, 1e-4 * peak)
    labels, count = ndimage.label(smoothed > detect)
    if count == 0:
        raise ValueError("no source above the sky")
    # The target sits at the stamp centre: take the region there, or the nearest one.
    cy, cx = (height - 1) / 2.0, (width - 1) / 2.0
    centre_label = labels[int(round(cy)), int(round(cx))]
    if centre_label == 0:
        rows, cols = np.nonzero(labels)
        nearest = np.argmin((rows - cy) ** 2 + (cols - cx) ** 2)
        centre_label = labels[rows[nearest], cols[nearest]]
    region = labels == centre_label

    values = np.sort(smoothed[region])[::-1]
    cumulative = np.cumsum(values, dtype=np.float64)
    index = int(np.searchsorted(cumulative, light_fraction * cumulative[-1]))
    level = max(float(values[min(index, values.size - 1)]), detect)
    outline = _fill_holes((smoothed >= level) & region)
    labels2, count2 = ndimage.label(outline)
    if count2 > 1:  # keep the piece holding most of the light
        sums = ndimage.sum_labels(smoothed, labels2, index=np.arange(1, count2 + 1))
        outline = labels2 == (int(np.argmax(sums)) + 1)
    rows, cols = np.nonzero(outline)
    if rows.size < 5:
        raise ValueError("the galaxy covers too few pixels to fit an ellipse")
    x = cols.astype(np.float64)
    y = -rows.astype(np.float64)  # y up
    xm, ym = x.mean(), y.mean()
    dx, dy = x - xm, y - ym
    # +1/12 per axis: each pixel is a unit square, not a point (matters for thin disks).
    cxx, cyy, cxy = (dx * dx).mean() + 1 / 12, (dy * dy).mean() + 1 / 12, (dx * dy).mean()
    spread = math.sqrt(((cxx - cyy) / 2) ** 2 + cxy**2)
    major2, minor2 = (cxx + cyy) / 2 + spread, max((cxx + cyy) / 2 - spread, 1e-12)
    theta = 0.5 * math.degrees(math.atan2(2 * cxy, cxx - cyy))  # from +x, counter-clockwise
    # For a uniformly filled ellipse the second moment along an axis is (semi-axis)^2 / 4.
    return Ellipse(
        q=math.sqrt(minor2 / major2),
        position_angle=(theta - 90.0) % 180.0,
        semi_major=2.0 * math.sqrt(major2),
        semi_minor=2.0 * math.sqrt(minor2),
        x_center=float(xm),
        y_center=float(-ym),
        isophote=level,
        n_pixels=int(rows.size),
    )


def inclination_from_axial_ratio(q, q0: float = DEFAULT_Q0):
    """Inclination in degrees from b/a: cos^2 i = (q^2 - q0^2) / (1 - q0^2); q <= q0 gives 90.

    Accepts a float or an array and returns the same.
    """
    q_array = np.clip(np.asarray(q, dtype=np.float64), 0.0, 1.0)
    cos2 = np.clip((q_array**2 - q0**2) / (1.0 - q0**2), 0.0, 1.0)
    inclination = np.degrees(np.arccos(np.sqrt(cos2)))
    return float(inclination) if np.ndim(inclination) == 0 else inclination


def predict_inclination(image: np.ndarray, *, q0: float = DEFAULT_Q0) -> float:
    """Inclination (degrees) of the galaxy at the centre of `image` by the axial-ratio method."""
    return inclination_from_axial_ratio(measure_axial_ratio(image).q, q0=q0)
