"""How well an ensemble does on one survey's consensus labels, and the decisions drawn from it (Django-free).

`evaluate` turns predictions and consensus labels into the figures staff read per survey: RMS, bias, outlier
rate overall and per 5-deg bin of the consensus inclination, and how often the ensemble's rejection
likelihood agrees with the volunteers' rejections. `adaptation_needed` compares a survey with the reference
survey; `promotion_decision` judges an adapted ensemble survey by survey (issue 13, items 2 and 3).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

BIN_WIDTH = 5.0
LOW, HIGH = 45.0, 90.0
# An answer this far from the consensus is an outlier (the original service reported 1.1% beyond 10 deg).
OUTLIER_DEG = 10.0


def _figures(error: np.ndarray) -> dict:
    return {
        "n": int(error.size),
        "rms": float(np.sqrt(np.mean(error**2))),
        "bias": float(np.mean(error)),
        "mae": float(np.mean(np.abs(error))),
        "outlier_rate": float(np.mean(np.abs(error) > OUTLIER_DEG)),
        "frac_gt5": float(np.mean(np.abs(error) > 5.0)),
    }


def bins_table(predicted: np.ndarray, consensus: np.ndarray, *, width: float = BIN_WIDTH) -> list[dict]:
    """One row per `width`-degree bin of the consensus inclination over 45-90 (90 in the last): lo, hi and the
    figures of `_figures`; empty bins are left out."""
    rows = []
    for lo in np.arange(LOW, HIGH, width):
        hi = lo + width
        mask = (consensus >= lo) & ((consensus < hi) | ((hi >= HIGH) & (consensus <= hi)))
        if mask.any():
            rows.append({"lo": float(lo), "hi": float(hi), **_figures(predicted[mask] - consensus[mask])})
    return rows


def evaluate(
    predicted,
    consensus,
    *,
    rejection_likelihood=None,
    volunteers_rejected=None,
) -> dict:
    """The ensemble's figures against consensus labels.

    `predicted` and `consensus` (deg) are the accepted labels' pairs. `rejection_likelihood` (0-1, NaN where the
    ensemble has no rejection member) and `volunteers_rejected` (bool) cover every label, accepted or not: the
    ensemble "rejects" at a likelihood of 0.5, and agreement is the share of labels where it decides as the
    volunteers did. Returns n, rms, bias, mae, outlier_rate, frac_gt5, bins (list) and rejection (dict or None).
    """
    predicted = np.asarray(predicted, dtype=np.float64).ravel()
    consensus = np.asarray(consensus, dtype=np.float64).ravel()
    if predicted.shape != consensus.shape:
        raise ValueError("predicted and consensus differ in length")
    result = {"n": 0, "rms": None, "bias": None, "mae": None, "outlier_rate": None, "frac_gt5": None, "bins": []}
    if predicted.size:
        result.update(_figures(predicted - consensus))
        result["bins"] = bins_table(predicted, consensus)
    result["rejection"] = None
    if rejection_likelihood is not None and volunteers_rejected is not None:
        likelihood = np.asarray(rejection_likelihood, dtype=np.float64).ravel()
        rejected = np.asarray(volunteers_rejected, dtype=bool).ravel()
        if likelihood.shape != rejected.shape:
            raise ValueError("rejection_likelihood and volunteers_rejected differ in length")
        known = np.isfinite(likelihood)
        if known.any():
            says_reject = likelihood[known] >= 0.5
            truth = rejected[known]
            result["rejection"] = {
                "n": int(known.sum()),
                "agreement": float(np.mean(says_reject == truth)),
                "volunteers_rejected": int(truth.sum()),
                "ensemble_rejected": int(says_reject.sum()),
            }
    return result


@dataclass(frozen=True)
class Verdict:
    """A yes/no with the reason staff read in the admin and the API."""

    value: bool
    reason: str
    numbers: dict = field(default_factory=dict)


def adaptation_needed(*, survey_rms: float | None, reference_rms: float | None, margin: float) -> Verdict:
    """Whether a survey needs adaptation: its RMS worse than the reference survey's by more than `margin` deg.

    Without a figure on either side nothing is decided (value False, and the reason says why).
    """
    numbers = {"survey_rms": survey_rms, "reference_rms": reference_rms, "margin": margin}
    if survey_rms is None:
        return Verdict(False, "No accepted consensus labels to measure the models on.", numbers)
    if reference_rms is None:
        return Verdict(False, "No figure for the reference survey to compare with.", numbers)
    gap = survey_rms - reference_rms
    numbers["gap"] = gap
    if gap > margin:
        return Verdict(
            True,
            f"RMS {survey_rms:.2f} deg is {gap:.2f} deg worse than the reference survey's {reference_rms:.2f} deg "
            f"(margin {margin:.2f}).",
            numbers,
        )
    return Verdict(
        False,
        f"RMS {survey_rms:.2f} deg is within {margin:.2f} deg of the reference survey's {reference_rms:.2f} deg.",
        numbers,
    )


def promotion_decision(
    *,
    adapted: str,
    before: dict[str, float | None],
    after: dict[str, float | None],
    tolerance: float,
) -> Verdict:
    """Promote an adapted ensemble only if it is better on the `adapted` survey and no worse, within `tolerance`
    deg of RMS, on every other set it was measured on (other surveys with enough labels, the synthetic reference).

    `before` and `after` map a set's name to the active and the new ensemble's RMS on it (None: not measured).
    The numbers give every set's before, after and change.
    """
    numbers = {
        name: {
            "before": before.get(name),
            "after": after.get(name),
            "change": None if before.get(name) is None or after.get(name) is None else after[name] - before[name],
        }
        for name in sorted(set(before) | set(after))
    }
    target = numbers.get(adapted) or {}
    if target.get("change") is None:
        return Verdict(False, f"Not promoted: no figures on {adapted} to compare.", numbers)
    if target["change"] >= 0:
        return Verdict(
            False,
            f"Not promoted: RMS on {adapted} {target['after']:.2f} deg is not better than {target['before']:.2f}.",
            numbers,
        )
    worse = [
        f"{name} {n['before']:.2f} -> {n['after']:.2f} deg"
        for name, n in numbers.items()
        if name != adapted and n["change"] is not None and n["change"] > tolerance
    ]
    if worse:
        return Verdict(
            False, f"Not promoted: worse by more than {tolerance:.2f} deg on " + ", ".join(worse) + ".", numbers
        )
    return Verdict(
        True,
        f"Promoted: RMS on {adapted} {target['before']:.2f} -> {target['after']:.2f} deg, "
        f"no other set worse by more than {tolerance:.2f} deg.",
        numbers,
    )
