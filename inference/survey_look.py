"""Survey-look randomisation: make a clean rendered stamp look like any of the ways real stamps look.

Django-free. Real GIZ stamps differ from our renders in things that say nothing about the
inclination (GIZ.md, last table): stretch and gamma, sky level and smoothness, colour balance,
JPEG artefacts, inverted (black on white) and single-band grey versions, stamps shown rotated
with white or black corners, background gradients, saturated stars with bleed trails, satellite
trails. A model that must give the same answer under all of them cannot lean on any of them.

Two stages:
- `randomise_stamp(rgb, rng)`: NumPy on the full stamp (uint8 H x W x 3) before it is prepared
  for the model, for what needs the whole picture (rotation with corners, trails, JPEG). It
  returns the new stamp and the rotation applied (degrees, counter-clockwise as displayed), so
  the caller can keep the position angle consistent.
- `tf_augment(images)`: TensorFlow on prepared batches at training time, every epoch anew: the
  8 rotations/flips, small rotations and shifts, inversion, gamma, colour balance, grey copies,
  contrast and noise.
Each transform is also a public pure function so tests and the robustness benchmark can apply
exactly one of them.
"""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image

__all__ = [
    "add_bleeding_star",
    "add_gradient",
    "add_satellite_trail",
    "adjust_gamma",
    "grey_copy",
    "invert",
    "jpeg_roundtrip",
    "randomise_stamp",
    "rotate_with_corners",
    "tf_augment",
]


def invert(rgb: np.ndarray) -> np.ndarray:
    """Black on white, as the GIZ site could show the grey bands."""
    return (255 - np.asarray(rgb, dtype=np.uint8)).astype(np.uint8)


def adjust_gamma(rgb: np.ndarray, gamma: float) -> np.ndarray:
    x = np.asarray(rgb, dtype=np.float32) / 255.0
    return np.round(255.0 * x**gamma).astype(np.uint8)


def grey_copy(rgb: np.ndarray, channel: int) -> np.ndarray:
    """One band in grey copied to three channels (IncliNET's g, r, i inputs)."""
    plane = np.asarray(rgb)[..., channel]
    return np.repeat(plane[..., np.newaxis], 3, axis=-1).astype(np.uint8)


def jpeg_roundtrip(rgb: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(rgb, dtype=np.uint8)).save(buffer, format="JPEG", quality=int(quality))
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def rotate_with_corners(rgb: np.ndarray, angle: float, *, white: bool = True) -> np.ndarray:
    """Turn the stamp by `angle` degrees (counter-clockwise as displayed), same size, filled corners."""
    fill = (255, 255, 255) if white else (0, 0, 0)
    image = Image.fromarray(np.asarray(rgb, dtype=np.uint8))
    return np.asarray(image.rotate(angle, resample=Image.BILINEAR, expand=False, fillcolor=fill))


def add_gradient(rgb: np.ndarray, *, amplitude: float, angle: float) -> np.ndarray:
    """A linear sky gradient (scattered light from a bright star or the Moon), in 8-bit levels."""
    h, w = rgb.shape[:2]
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    ramp = (x / w - 0.5) * math.cos(angle) + (y / h - 0.5) * math.sin(angle)
    return np.clip(rgb.astype(np.float32) + amplitude * ramp[..., np.newaxis], 0, 255).astype(np.uint8)


def add_satellite_trail(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = rgb.shape[:2]
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    theta = rng.uniform(0, math.pi)
    offset = rng.uniform(-0.4, 0.4) * min(h, w)
    distance = (x - w / 2) * math.sin(theta) - (y - h / 2) * math.cos(theta) - offset
    width = rng.uniform(0.6, 2.0) * h / 256
    colour = rng.uniform(0.5, 1.0, 3) * rng.uniform(60, 220)
    line = np.exp(-0.5 * (distance / width) ** 2)[..., np.newaxis] * colour
    return np.clip(rgb.astype(np.float32) + line, 0, 255).astype(np.uint8)


def add_bleeding_star(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A saturated star: a white disk with a halo and a vertical bleed trail (CCD columns)."""
    h, w = rgb.shape[:2]
    cy, cx = rng.uniform(0.05, 0.95) * h, rng.uniform(0.05, 0.95) * w
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    radius = rng.uniform(2, 8) * h / 256
    r = np.hypot(x - cx, y - cy)
    light = 255 * np.exp(-0.5 * (r / radius) ** 2) * 1.5 + 80 * np.exp(-r / (4 * radius))
    bleed_half = rng.uniform(3, 15) * radius
    bleed = (np.abs(x - cx) < max(0.7, radius / 4)) & (np.abs(y - cy) < bleed_half)
    light = light + 255 * bleed
    return np.clip(rgb.astype(np.float32) + light[..., np.newaxis], 0, 255).astype(np.uint8)


def randomise_stamp(rgb: np.ndarray, rng: np.random.Generator, *, strength: float = 1.0) -> tuple[np.ndarray, float]:
    """A random survey look of a full stamp; returns (stamp, rotation in degrees applied to it).

    `strength` scales how often each effect occurs (0: the stamp unchanged).
    """
    out = np.asarray(rgb, dtype=np.uint8)
    rotation = 0.0

    def chance(p: float) -> bool:
        return rng.uniform() < p * strength

    if chance(0.3):
        out = add_gradient(out, amplitude=rng.uniform(5, 30), angle=rng.uniform(0, 2 * math.pi))
    if chance(0.1):
        out = add_satellite_trail(out, rng)
    if chance(0.12):
        out = add_bleeding_star(out, rng)
    if chance(0.15):
        out = grey_copy(out, int(rng.integers(3)))
    if chance(0.25):
        out = adjust_gamma(out, float(rng.uniform(0.6, 1.6)))
    if chance(0.2):
        rotation = float(rng.uniform(0, 360))
        out = rotate_with_corners(out, rotation, white=bool(rng.uniform() < 0.7))
    if chance(0.15):
        out = invert(out)
    if chance(0.8):
        out = jpeg_roundtrip(out, int(rng.integers(40, 96)))
    return out, rotation


def tf_augment(images, *, seed: int = 0):
    """Training-time survey look on a prepared float batch (N x S x S x 3 in [0, 1]), in TensorFlow.

    The 8 rotations/flips of the square (so the answer cannot depend on how the image is turned),
    gamma, colour balance, grey copies, contrast, brightness and noise; small rotations and shifts
    are applied by the caller's Keras layers. No inversion: imaging.undo_display_effects turns
    negatives back before any model sees them.
    """
    import tensorflow as tf

    n = tf.shape(images)[0]
    x = images
    turn = tf.random.uniform([n, 1, 1, 1]) < 0.5
    x = tf.where(turn, tf.transpose(x, [0, 2, 1, 3]), x)  # transpose + flips = the dihedral group
    flip_lr = tf.random.uniform([n, 1, 1, 1]) < 0.5
    x = tf.where(flip_lr, tf.reverse(x, axis=[2]), x)
    flip_ud = tf.random.uniform([n, 1, 1, 1]) < 0.5
    x = tf.where(flip_ud, tf.reverse(x, axis=[1]), x)
    grey = tf.random.uniform([n, 1, 1, 1]) < 0.1
    x = tf.where(grey, tf.repeat(tf.reduce_mean(x, axis=-1, keepdims=True), 3, axis=-1), x)
    x = x * tf.random.uniform([n, 1, 1, 3], 0.85, 1.15)  # colour balance
    x = tf.clip_by_value(x, 0.0, 1.0) ** tf.random.uniform([n, 1, 1, 1], 0.7, 1.4)
    x = x * tf.random.uniform([n, 1, 1, 1], 0.75, 1.3) + tf.random.uniform([n, 1, 1, 1], -0.04, 0.04)
    x = x + tf.random.normal(tf.shape(x)) * tf.random.uniform([n, 1, 1, 1], 0.0, 0.03)
    return tf.clip_by_value(x, 0.0, 1.0)
