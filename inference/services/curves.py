"""The members' answers as the site gives them, and the calibration curves those answers go through.

Training runs and survey adaptations judge members here on what the site would answer (the mean over the 8
rotations/flips, through each member's curve, clipped to 45-90 deg), and fit a fine-tuned member its own curve.
"""

from __future__ import annotations

import numpy as np

from inference import ensemble as ensemble_holder
from inference import metrics
from inference.models import ModelVersion


def predictor(models: list, size: int):
    """The members as one compiled function (each sees the 8 rotations/flips, as on the site)."""
    return ensemble_holder.compile_group(models, size)


def member_answers(function, images: np.ndarray, calibrations: list[dict | None] | None = None) -> np.ndarray:
    """Each member's answer per image (N x M; prepared uint8 images) through a `predictor`, clipped to 45-90 deg.

    calibrations: each member's curve, in the predictor's order, as the site applies it (inference.ensemble):
    the members are judged on the answers they give, not on their raw ones.
    """
    return np.clip(_through_curves(_raw_answers(function, images), calibrations), 45.0, 90.0)


def median_answers(function, images: np.ndarray, calibrations: list[dict | None] | None = None) -> np.ndarray:
    """The members' median answer per image (prepared uint8 images) through a `predictor` and their curves."""
    if len(images) == 0:
        return np.zeros(0)
    return np.median(member_answers(function, images, calibrations), axis=1)


# Galaxies per 5-deg bin before a fine-tuned member gets a curve of its own (a bin of 30 pins its knot to about
# +/- 0.4 deg at the members' 2 deg scatter).
CURVE_MIN_PER_BIN = 30


def fitted_curves(models: list, size: int, images: np.ndarray, truth: np.ndarray) -> list[dict | None]:
    """Each member's own calibration curve (metrics.fit_calibration) on held-out galaxies, or None where the
    galaxies do not reach CURVE_MIN_PER_BIN in every 5-deg bin of 45-90 deg: a curve drawn through part of the
    range goes on beyond it with its end slopes, which a few galaxies cannot be trusted to set.

    A member fine-tuned on new galaxies pulls toward the middle of the range differently from the one it started
    from, so the curve that member was shipped with no longer fits it.
    """
    truth = np.asarray(truth, dtype=np.float64)
    counts = np.histogram(truth, bins=np.arange(45.0, 95.0, 5.0))[0]
    if len(truth) == 0 or counts.min() < CURVE_MIN_PER_BIN:
        return [None] * len(models)
    raw = _raw_answers(predictor(models, size), images)
    return [metrics.fit_calibration(raw[:, j], truth) for j in range(raw.shape[1])]


def _raw_answers(function, images: np.ndarray) -> np.ndarray:
    """N x M: each member's mean answer over the 8 rotations/flips, before any curve."""
    import tensorflow as tf

    if len(images) == 0:  # (a compiled group cannot run an empty batch: its batch norm's shapes do not match)
        return np.zeros((0, 0))
    out = [
        function(tf.constant(images[start : start + 64].astype(np.float32) / 255.0)).numpy()[..., 0]
        for start in range(0, len(images), 64)
    ]
    return np.concatenate(out).astype(np.float64)


def _through_curves(answers: np.ndarray, calibrations: list[dict | None] | None) -> np.ndarray:
    answers = answers.copy()
    for j, calibration in enumerate((calibrations or []) if len(answers) else []):
        answers[:, j] = metrics.apply_calibration(answers[:, j], np.zeros(len(answers)), calibration)[0]  # no sigma
    return answers


def calibrations_of(versions: list[ModelVersion]) -> list[dict | None]:
    """The members' calibration curves as the site reads them from their metrics (None: answers as they are)."""
    return [(v.metrics or {}).get("calibration") for v in versions]
