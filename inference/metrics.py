"""Accuracy figures for inclination predictions (Django-free, NumPy only)."""

from __future__ import annotations

import numpy as np

# The original service reported these ranges (docs/DOMAIN.md); 10 deg wide except the last.
BINS = ((45.0, 55.0), (55.0, 65.0), (65.0, 75.0), (75.0, 85.0), (85.0, 90.0))


def bin_label(lo: float, hi: float) -> str:
    return f"{lo:.0f}-{hi:.0f}"


def _bin_mask(true: np.ndarray, lo: float, hi: float) -> np.ndarray:
    # The last bin includes 90 itself.
    return (true >= lo) & ((true < hi) | ((hi == BINS[-1][1]) & (true <= hi)))


def regression_metrics(predicted, true) -> dict:
    """RMS and MAE overall and per bin, and the fractions off by more than 5 and 10 deg."""
    predicted = np.asarray(predicted, dtype=np.float64).ravel()
    true = np.asarray(true, dtype=np.float64).ravel()
    if predicted.shape != true.shape:
        raise ValueError("predicted and true differ in length")
    if predicted.size == 0:
        return {"n": 0}
    error = predicted - true
    result = {
        "n": int(error.size),
        "rms": float(np.sqrt(np.mean(error**2))),
        "mae": float(np.mean(np.abs(error))),
        "bias": float(np.mean(error)),
        "frac_gt5": float(np.mean(np.abs(error) > 5)),
        "frac_gt10": float(np.mean(np.abs(error) > 10)),
        "bins": {},
    }
    for lo, hi in BINS:
        mask = _bin_mask(true, lo, hi)
        if mask.any():
            e = error[mask]
            result["bins"][bin_label(lo, hi)] = {
                "n": int(mask.sum()),
                "rms": float(np.sqrt(np.mean(e**2))),
                "mae": float(np.mean(np.abs(e))),
            }
    return result


def classification_metrics(probability, truth) -> dict:
    """Accuracy at 0.5, and the log loss, of a binary classifier."""
    p = np.clip(np.asarray(probability, dtype=np.float64).ravel(), 1e-7, 1 - 1e-7)
    y = np.asarray(truth, dtype=np.float64).ravel()
    if p.size == 0:
        return {"n": 0}
    return {
        "n": int(p.size),
        "accuracy": float(np.mean((p >= 0.5) == (y >= 0.5))),
        "log_loss": float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))),
        "positive_rate": float(np.mean(y)),
    }


def bin_weights(true, *, lo: float = 45.0, hi: float = 90.0, width: float = 10.0) -> np.ndarray:
    """Sample weights that give every inclination bin the same total weight (mean weight 1)."""
    true = np.asarray(true, dtype=np.float64).ravel()
    if true.size == 0:
        return np.zeros(0, dtype=np.float32)
    edges = np.arange(lo, hi + width, width)
    index = np.clip(np.digitize(true, edges) - 1, 0, len(edges) - 2)
    counts = np.bincount(index, minlength=len(edges) - 1).astype(np.float64)
    occupied = np.count_nonzero(counts)
    weights = true.size / (occupied * counts[index])
    return weights.astype(np.float32)


def ensemble_summary(values) -> tuple[float, float, float]:
    """(median, mean, spread = standard deviation) of the members' inclinations."""
    v = np.asarray(values, dtype=np.float64)
    return float(np.median(v)), float(np.mean(v)), float(np.std(v))


# The standard deviation of an inclination known only to lie in 45-90 deg (uniform): what an image that
# is not a usable galaxy tells about it.
UNINFORMATIVE_SIGMA = 45.0 / 12**0.5


# The classifier's probabilities are not calibrated at the low end (clean spirals get 0-0.3), so the
# mixture weight rises linearly from 0 at p = 0.25 to 1 at p = 0.75: a galaxy the classifier keeps
# keeps its sigma, one at p = 0.5 gets about 9 deg, certain junk 13 deg.
JUNK_WEIGHT_FROM, JUNK_WEIGHT_TO = 0.25, 0.75


def sigma_with_rejection(answer: float, sigma: float, rejection: float) -> float:
    """The models' sigma widened by the rejection likelihood (deg).

    A mixture: with weight 1 - w the image is a galaxy and the answer ~ N(answer, sigma); with w it is
    not, and the answer says nothing (uniform over 45-90). w follows the rejection likelihood (see
    JUNK_WEIGHT_FROM/TO). The result is the mixture's standard deviation, so junk never carries a
    confident inclination.
    """
    w = min(max((float(rejection) - JUNK_WEIGHT_FROM) / (JUNK_WEIGHT_TO - JUNK_WEIGHT_FROM), 0.0), 1.0)
    variance = (1 - w) * sigma**2 + w * UNINFORMATIVE_SIGMA**2 + w * (1 - w) * (answer - 67.5) ** 2
    return float(variance**0.5)


# ---------------------------------------------------------------------------------------------- calibration


# The steepest and flattest a calibration curve may be: steeper would multiply sigmas (and noise) by more than
# the validation galaxies can vouch for, flatter would squash answers together.
CALIBRATION_SLOPES = (1 / 3, 3.0)


def fit_calibration(answers, true, *, width: float = 5.0) -> dict | None:
    """A member's monotone calibration curve from validation galaxies: mean answer -> mean truth per bin.

    A regression pulls toward the middle of the range most where the picture changes least: at 85-90 deg
    a disk hardly changes shape, so the answers there average 1-2 deg low. Mapping each `width`-degree
    bin's mean answer back to its mean truth (straight lines between, the end segments' slopes beyond)
    makes the answers unbiased per bin of the true inclination, at the cost of a wider spread where the
    curve is steep. Neighbouring bins that would make the curve turn back or steeper (flatter) than
    CALIBRATION_SLOPES are pooled first (pool-adjacent-violators, weighted by their galaxies).
    """
    answers, true = np.asarray(answers, dtype=np.float64), np.asarray(true, dtype=np.float64)
    edges = np.arange(45.0, 90.0 + width, width)
    index = np.clip(np.digitize(true, edges) - 1, 0, len(edges) - 2)
    # [count, mean answer, mean truth] per bin with enough galaxies to trust its means.
    knots = [
        [float((index == k).sum()), answers[index == k].mean(), true[index == k].mean()]
        for k in range(len(edges) - 1)
        if (index == k).sum() >= 10
    ]
    low, high = CALIBRATION_SLOPES
    k = 0
    while k < len(knots) - 1:
        (n0, a0, t0), (n1, a1, t1) = knots[k], knots[k + 1]
        if a1 > a0 and low <= (t1 - t0) / (a1 - a0) <= high:
            k += 1
            continue
        n = n0 + n1
        knots[k : k + 2] = [[n, (n0 * a0 + n1 * a1) / n, (n0 * t0 + n1 * t1) / n]]
        k = max(k - 1, 0)  # the pooled bin may now violate with the one before
    if len(knots) < 2:
        return None  # too few galaxies to draw a curve through: answers stay as they are
    return {"answer": [round(float(a), 3) for _, a, _ in knots], "true": [round(float(t), 3) for _, _, t in knots]}


def apply_calibration(answers, sigma, calibration: dict | None) -> tuple[np.ndarray, np.ndarray]:
    """(answers, sigmas) through a calibration curve of `fit_calibration` (unchanged without one).

    Beyond its end knots the curve goes on with its end segments' slopes; the sigma is stretched by the
    curve's local slope, as the error is.
    """
    answers, sigma = np.asarray(answers, dtype=np.float64), np.asarray(sigma, dtype=np.float64)
    if not calibration:
        return answers, sigma
    x, y = np.asarray(calibration["answer"]), np.asarray(calibration["true"])
    slopes = np.diff(y) / np.diff(x)
    segment = np.clip(np.searchsorted(x, answers) - 1, 0, len(slopes) - 1)
    slope = slopes[segment]
    # The segment's own line: between the knots it is the interpolation, beyond them its extension.
    return y[segment] + slope * (answers - x[segment]), sigma * slope
