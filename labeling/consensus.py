"""Consensus maths for volunteer votes, free of Django so it can be tested and benchmarked alone.

A galaxy's label is the weighted median of its volunteers' calibrated inclinations (outliers dropped), or
"face-on" / "rejected" when most of the vote weight says so. Each volunteer carries a linear calibration
(corrected = slope * raw + intercept) and a reliability weight 0-4, both estimated from gold galaxies and from
agreement with the consensus of others, as in the original Galaxy Inclination Zoo.

Plain Python rather than numpy: a galaxy has a handful of votes, where numpy's per-call overhead dominates and
the full recomputation runs this a million times.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

MIN_INCLINATION = 45.0
MAX_INCLINATION = 90.0
# Two numeric votes "agree" when within this many degrees (about 1.3 sigma of a single volunteer's scatter).
AGREE_DEG = 5.0
# A single volunteer scatters about 4 deg: the floor for the per-vote scatter used in the uncertainty.
SINGLE_VOTE_SIGMA = 4.0
REJECT_FLAGS = frozenset({"not_spiral", "bad_image", "multiple_objects", "disturbed", "ambiguous"})

ACCEPTED, FACE_ON, REJECTED = "accepted", "face_on", "rejected"


@dataclass(frozen=True, slots=True)
class VoteIn:
    inclination: float | None
    flag: str
    not_sure: bool = False
    weight: float = 1.0
    slope: float = 1.0
    intercept: float = 0.0


@dataclass(frozen=True, slots=True)
class Consensus:
    status: str
    inclination: float | None
    uncertainty: float | None
    agreement: float
    n_votes: int
    n_agreeing: int


def category(flag: str) -> str:
    """The consensus status a vote argues for."""
    if not flag:
        return ACCEPTED
    if flag == "face_on":
        return FACE_ON
    return REJECTED


def calibrated(vote: VoteIn) -> float:
    value = vote.slope * float(vote.inclination) + vote.intercept
    return min(MAX_INCLINATION, max(MIN_INCLINATION, value))


def weighted_median(values: Sequence[float], weights: Sequence[float]) -> float:
    """The value with half the weight on each side; the midpoint of two values on an exact tie."""
    pairs = sorted(zip(values, weights, strict=True))
    half = sum(weights) / 2.0
    running = 0.0
    for k, (value, weight) in enumerate(pairs):
        running += weight
        if math.isclose(running, half) and k + 1 < len(pairs):
            return (value + pairs[k + 1][0]) / 2.0
        if running > half:
            return value
    return pairs[-1][0]


def vote_weight(vote: VoteIn) -> float:
    # "Not sure" counts half; a zero-weight volunteer still counts a little so a galaxy never has no weight.
    return max(vote.weight, 0.05) * (0.5 if vote.not_sure else 1.0)


def consensus_compute(votes: Sequence[VoteIn]) -> Consensus | None:
    """The consensus of one galaxy's votes, or None without votes."""
    if not votes:
        return None
    totals = {ACCEPTED: 0.0, FACE_ON: 0.0, REJECTED: 0.0}
    for vote in votes:
        totals[category(vote.flag)] += vote_weight(vote)
    # Ties go to an inclination, then to face-on: a rejection needs a clear majority.
    status = max(totals, key=lambda k: (totals[k], k == ACCEPTED, k == FACE_ON))
    agreement = totals[status] / sum(totals.values())

    numeric = [v for v in votes if category(v.flag) == ACCEPTED and v.inclination is not None]
    inclination = uncertainty = None
    n_agreeing = sum(1 for v in votes if category(v.flag) == status)
    if numeric:
        values = [calibrated(v) for v in numeric]
        weights = [vote_weight(v) for v in numeric]
        first = weighted_median(values, weights)
        # Robust: drop votes more than 3 robust sigmas (and at least 2 x AGREE_DEG) from the first median.
        mad_sigma = 1.4826 * weighted_median([abs(x - first) for x in values], weights)
        cut = max(3.0 * mad_sigma, 2.0 * AGREE_DEG)
        kept = [(x, w) for x, w in zip(values, weights, strict=True) if abs(x - first) <= cut]
        values, weights = [x for x, _ in kept], [w for _, w in kept]
        inclination = weighted_median(values, weights)
        sigma = max(1.4826 * weighted_median([abs(x - inclination) for x in values], weights), SINGLE_VOTE_SIGMA)
        n_eff = sum(weights) ** 2 / sum(w * w for w in weights)
        # 1.2533: the standard error of a median is that factor above the mean's.
        uncertainty = round(1.2533 * sigma / math.sqrt(n_eff), 2)
        if status == ACCEPTED:
            n_agreeing = sum(1 for x in values if abs(x - inclination) <= AGREE_DEG)
        inclination = round(inclination, 2)
    accepted = status == ACCEPTED
    return Consensus(
        status=status,
        inclination=inclination if accepted else None,
        uncertainty=uncertainty if accepted else None,
        agreement=round(agreement, 3),
        n_votes=len(votes),
        n_agreeing=n_agreeing,
    )


def retirement_decide(consensus: Consensus, *, quorum: int, max_votes: int) -> tuple[bool, int]:
    """(retire?, extra votes wanted beyond the quorum): retire at `quorum` agreeing votes, ask for one more
    vote at a time while they disagree, and give up at `max_votes`."""
    if consensus.n_agreeing >= quorum or consensus.n_votes >= max_votes:
        return True, max(0, consensus.n_votes - quorum)
    if consensus.n_votes >= quorum:
        return False, consensus.n_votes + 1 - quorum
    return False, 0


@dataclass(frozen=True, slots=True)
class Calibration:
    slope: float
    intercept: float
    weight: float
    n_reference: int
    rms: float | None


def calibration_from_sums(
    *,
    n: int,
    sx: float,
    sy: float,
    sxx: float,
    sxy: float,
    syy: float,
    n_categorical: int = 0,
    n_categorical_agree: int = 0,
    prior_strength: float = 10.0,
    min_pairs: int = 5,
) -> Calibration:
    """A volunteer's calibration and weight from sums over (x = their raw inclination, y = reference) pairs.

    The reference is a gold galaxy's known inclination or the consensus. Sums (which the database computes in
    one GROUP BY) suffice for least squares. The slope is shrunk toward 1 as if `prior_strength` votes sat on
    the identity, so a few votes cannot swing it. The weight is 0-4 from the residual scatter (integers, as in
    the original), one lower when the volunteer's face-on/reject calls mostly disagree with the consensus.
    """
    slope, intercept, rms, weight = 1.0, 0.0, None, 1.0
    if n >= min_pairs:
        x_mean, y_mean = sx / n, sy / n
        dxx = max(sxx - n * x_mean * x_mean, 0.0)
        dxy = sxy - n * x_mean * y_mean
        dyy = max(syy - n * y_mean * y_mean, 0.0)
        fitted = dxy / dxx if dxx > 1e-9 else 1.0
        slope = min(1.5, max(0.5, (n * fitted + prior_strength) / (n + prior_strength)))
        intercept = y_mean - slope * x_mean
        # Residuals of y ~ slope * x + intercept, from the centred sums.
        rms = math.sqrt(max(slope * slope * dxx - 2 * slope * dxy + dyy, 0.0) / n)
        weight = 4.0 if rms <= 3 else 3.0 if rms <= 5 else 2.0 if rms <= 7 else 1.0 if rms <= 10 else 0.0
    if n_categorical >= min_pairs and n_categorical_agree < 0.5 * n_categorical:
        weight = max(0.0, weight - 1.0)
    return Calibration(slope=round(slope, 4), intercept=round(intercept, 3), weight=weight, n_reference=n, rms=rms)
