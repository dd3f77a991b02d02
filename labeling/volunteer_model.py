"""A volunteer model fitted to all votes at once, free of Django so it can be tested and benchmarked alone.

Each numeric vote x of volunteer u on galaxy g is read as

    x = c + a_u + b_u (t_g - c) + sigma_u h(t_g) e,    h(t) = 1 + gamma (90 - t) / 45,    e ~ Student-t(nu)

with c = 67.5 deg, the middle of the 45-90 deg range, so a_u is the volunteer's bias there ("you tend to answer
2 deg high"), b_u how much they stretch the range, sigma_u their scatter near edge-on and gamma (one number for
everybody) how much more everyone scatters toward face-on. The heavy Student-t tail lets a mis-click be an
outlier instead of dragging the answer. Priors: a_u ~ N(0, bias_sd), b_u ~ N(1, scale_sd) and sigma_u shrunk
toward the typical volunteer's by a few pseudo-votes, so that a volunteer with few votes is treated as typical
until the votes say otherwise; t_g ~ N(67.5, 16). Gold galaxies (and standards, if voted on) are
pinned to their known inclination: their votes calibrate volunteers and never form a consensus of their own.
A face-on flag is read as a vote below 45 deg (censored), so galaxies near 45 deg, where some votes turn into
flags, are not pushed up by the votes that remain.

The fit is expectation-maximisation: the galaxy step is iteratively reweighted least squares per galaxy (the
Student-t weights), giving each galaxy a Gaussian posterior (mean, sigma); the volunteer step solves a shrunk
2x2 weighted least-squares problem per volunteer using those posteriors (their variance included, so the
scales are not biased low by noisy galaxies). Every sum is an np.bincount over the vote arrays: no Python loop
over votes, galaxies or volunteers.

Flags are a separate categorical model (one-coin Dawid-Skene): each galaxy is accepted (an inclination),
face-on or rejected; each volunteer calls the right category with an accuracy learnt from agreement with the
others, so the face-on and reject probabilities come from weighted flags.

For one galaxy and fixed volunteer parameters, `galaxy_posterior` is the same computation as the fit's last
galaxy step: what recording a vote has to do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

ACCEPTED, FACE_ON, REJECTED = 0, 1, 2
N_CLASSES = 3
MIN_INCLINATION, MAX_INCLINATION = 45.0, 90.0


@dataclass(frozen=True, slots=True)
class ModelSettings:
    nu: float = 4.0  # Student-t degrees of freedom: a vote 3 sigma off keeps about a third of its weight
    center: float = 67.5
    prior_mean: float = 67.5
    # A uniform 45-90 deg has a spread of 13 deg; wider, because face-on and rejected galaxies' votes count too.
    prior_sd: float = 16.0
    bias_sd: float = 3.0
    scale_sd: float = 0.08
    sigma_typical: float = 4.0  # starting value; the fit replaces it by the median volunteer's
    sigma_votes: float = 5.0  # pseudo-votes pulling sigma_u toward the typical value
    growth: float = 0.5  # starting value of gamma
    accuracy_prior: tuple[float, float] = (8.0, 2.0)  # Beta pseudo-counts (right, wrong) of a flag call
    not_sure_weight: float = 0.5
    iterations: int = 100
    class_iterations: int = 20
    inner_iterations: int = 8
    # deg: stop when 99.9% of galaxies move less in a round (a few bimodal ones among a million creep for long)
    tolerance: float = 0.01
    growth_sample: int = 200_000  # votes used to fit gamma


@dataclass(frozen=True, slots=True)
class Votes:
    """All votes as parallel arrays, galaxies and volunteers numbered from 0.

    value is NaN for a flag-only vote; category is ACCEPTED, FACE_ON or REJECTED (`category_codes`);
    known[g] is the pinned inclination of a gold galaxy or standard, NaN for the others.
    """

    galaxy: np.ndarray
    volunteer: np.ndarray
    value: np.ndarray
    category: np.ndarray
    not_sure: np.ndarray
    known: np.ndarray
    n_volunteers: int

    @property
    def n_galaxies(self) -> int:
        return len(self.known)

    @classmethod
    def build(cls, *, galaxy, volunteer, value, category=None, not_sure=None, known=None, n_galaxies=None,
              n_volunteers=None) -> Votes:  # fmt: skip
        """From any sequences; without `category`, a NaN value is a rejection and any other an inclination."""
        galaxy = np.asarray(galaxy, dtype=np.int64)
        volunteer = np.asarray(volunteer, dtype=np.int64)
        value = np.asarray(value, dtype=np.float64)
        if category is None:
            category = np.where(np.isnan(value), REJECTED, ACCEPTED)
        category = np.asarray(category, dtype=np.int8)
        not_sure = np.zeros(len(galaxy), bool) if not_sure is None else np.asarray(not_sure, dtype=bool)
        n_galaxies = int(galaxy.max()) + 1 if n_galaxies is None else n_galaxies
        n_volunteers = int(volunteer.max()) + 1 if n_volunteers is None else n_volunteers
        known = np.full(n_galaxies, np.nan) if known is None else np.asarray(known, dtype=np.float64)
        return cls(galaxy, volunteer, value, category, not_sure, known, n_volunteers)


@dataclass(frozen=True, slots=True)
class Volunteers:
    """Per-volunteer figures (arrays indexed by volunteer) and the few global ones."""

    bias: np.ndarray
    scale: np.ndarray
    sigma: np.ndarray
    accuracy: np.ndarray
    n_numeric: np.ndarray
    growth: float
    class_prior: np.ndarray
    sigma_typical: float

    @property
    def weight(self) -> np.ndarray:
        """Information one vote carries about an inclination at mid-range (deg^-2): scale^2 / noise^2."""
        return self.scale**2 / (self.sigma * (1 + self.growth / 2)) ** 2


@dataclass(frozen=True, slots=True)
class Galaxies:
    mean: np.ndarray  # posterior mean inclination (deg), clipped to 45-90
    sd: np.ndarray  # posterior sigma (deg); 0 for a pinned galaxy
    n_numeric: np.ndarray
    n_votes: np.ndarray
    p_face_on: np.ndarray
    p_rejected: np.ndarray

    @property
    def status(self) -> np.ndarray:
        """ACCEPTED, FACE_ON or REJECTED: the most probable category."""
        p_accepted = 1.0 - self.p_face_on - self.p_rejected
        return np.argmax(np.stack([p_accepted, self.p_face_on, self.p_rejected], axis=1), axis=1).astype(np.int8)


@dataclass(frozen=True, slots=True)
class Fit:
    volunteers: Volunteers
    galaxies: Galaxies
    iterations: int
    converged: bool


def category_codes(flags: Sequence[str]) -> np.ndarray:
    """ACCEPTED for an inclination (empty flag), FACE_ON for "face_on", REJECTED for any other flag."""
    return np.array([ACCEPTED if not f else FACE_ON if f == "face_on" else REJECTED for f in flags], np.int8)


# ------------------------------------------------------------------------------ galaxy step


def _group_median(group: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    """Plain median of each group's values (NaN for an empty group); rank-based, so exact and order-free."""
    order = np.lexsort((values, group))
    counts = np.bincount(group, minlength=n_groups)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    has = counts > 0
    lo = starts[has] + (counts[has] - 1) // 2
    hi = starts[has] + counts[has] // 2
    sorted_values = values[order]
    median = np.full(n_groups, np.nan)
    median[has] = (sorted_values[lo] + sorted_values[hi]) / 2.0
    return median


def _growth_factor(t: np.ndarray, growth: float) -> np.ndarray:
    return 1.0 + growth * (MAX_INCLINATION - np.clip(t, MIN_INCLINATION, MAX_INCLINATION)) / 45.0


def _t_hazard(alpha: np.ndarray, nu: float) -> np.ndarray:
    """pdf / cdf of the standard Student-t at alpha (the pull of a censored vote)."""
    log_pdf = (
        special.gammaln((nu + 1) / 2) - special.gammaln(nu / 2) - 0.5 * np.log(nu * np.pi)
        - (nu + 1) / 2 * np.log1p(alpha**2 / nu)
    )  # fmt: skip
    return np.exp(log_pdf) / np.maximum(special.stdtr(nu, alpha), 1e-300)


@dataclass(frozen=True, slots=True)
class _VoteTerms:
    """What each vote says about its galaxy's inclination at the current estimate.

    A face-on flag says "below 45 deg": a censored observation (a Tobit model), so that a galaxy near 45 deg,
    whose lower votes turn into flags, is not pulled upward by the votes that remain. (Votes of 90 are taken as
    they are: read as "90 or more" they would let a volunteer who answers 90 to everything look consistent.)
    For the volunteer step every vote becomes a working value with a weight (iteratively reweighted least
    squares).
    """

    score: np.ndarray  # d log-likelihood / d t
    info: np.ndarray  # its information about t (Student-t weights for exact votes)
    work: np.ndarray  # working value of x - c for the volunteer step
    ls_weight: np.ndarray  # its weight there, in units of 1 / sigma_u^2
    t_weight: np.ndarray  # Student-t weight of an exact vote (1 for censored ones)


def _vote_terms(tv, x, censor, a, b, s_u, half, growth, settings: ModelSettings) -> _VoteTerms:
    c, nu = settings.center, settings.nu
    scatter = s_u * _growth_factor(tv, growth)
    mu = c + a + b * (tv - c)
    r = x - mu
    # In place where it is safe: at millions of votes these arrays are the refit's time (memory traffic).
    inverse = np.reciprocal(scatter)
    inverse *= inverse
    z2 = r * r
    z2 *= inverse
    w = (nu + 1.0) / (z2 + nu)
    info_mu = w * inverse
    score_mu = info_mu * r
    censored = np.flatnonzero(censor)
    if len(censored):
        # alpha: how far above the vote's expected value 45 deg lies, in units of the scatter (only a few
        # votes are censored; the Student-t CDF is the costly part).
        sc = scatter[censored]
        alpha = (MIN_INCLINATION - mu[censored]) / sc
        lam = _t_hazard(alpha, nu)
        curvature = lam**2 + lam * (nu + 1) * alpha / (nu + alpha**2)
        # Far on the wrong side the Student-t tail makes the pull fade: a stray flag is an outlier, not a lever.
        curvature = np.maximum(curvature, 0.05 * lam**2)
        w[censored] = 1.0
        score_mu[censored] = -lam / sc
        info_mu[censored] = curvature / sc**2
    # An exact vote's working value is x - c itself (score / info = r); only censored ones differ.
    work = x - c
    if len(censored):
        work[censored] = mu[censored] - c + score_mu[censored] / info_mu[censored]
    half_info = half * info_mu
    return _VoteTerms(
        score=half * b * score_mu,
        info=half_info * b * b,
        work=work,
        ls_weight=half_info * s_u * s_u,
        t_weight=w,
    )


def _numeric_posterior(group, n_groups, x, censor, a, b, s_u, half, growth, settings: ModelSettings, start=None):
    """Posterior mean and variance of each group's inclination, and the final vote terms.

    Starts from the median of the volunteers' corrected votes (robust, and the same however the votes are
    ordered or batched) and runs a fixed number of scoring iterations, so the full fit and a single galaxy give
    the same answer; inside the fit, `start` warm-starts from the previous round instead. The variance counts
    an exact vote's information as the Student-t's expected (nu + 1) / (nu + 3) of its weight: the weights
    alone overstate it by that factor.
    """
    c = settings.center
    if start is None:
        start_x = np.where(censor < 0, MIN_INCLINATION - 1.0, x)
        t = _group_median(group, c + (start_x - c - a) / b, n_groups)
        t[np.isnan(t)] = settings.prior_mean
        iterations = settings.inner_iterations
    else:
        t, iterations = start.copy(), 2
    prior_precision = 1.0 / settings.prior_sd**2
    for _ in range(iterations):
        terms = _vote_terms(t[group], x, censor, a, b, s_u, half, growth, settings)
        score = prior_precision * (settings.prior_mean - t) + np.bincount(group, terms.score, n_groups)
        total = prior_precision + np.bincount(group, terms.info, n_groups)
        t = t + score / total
    terms = _vote_terms(t[group], x, censor, a, b, s_u, half, growth, settings)
    exact_share = np.where(censor == 0, (settings.nu + 1) / (settings.nu + 3), 1.0)
    total = prior_precision + np.bincount(group, terms.info * exact_share, n_groups)
    return t, 1.0 / total, terms


def _class_posterior(group, n_groups, category, half, accuracy, class_prior) -> np.ndarray:
    """(n_groups, 3) probabilities of accepted / face-on / rejected from the weighted calls."""
    right = half * np.log(accuracy)
    wrong = half * np.log((1.0 - accuracy) / (N_CLASSES - 1))
    log_p = np.empty((n_groups, N_CLASSES))
    for k in range(N_CLASSES):
        log_p[:, k] = np.log(class_prior[k]) + np.bincount(
            group, weights=np.where(category == k, right, wrong), minlength=n_groups
        )
    log_p -= log_p.max(axis=1, keepdims=True)
    p = np.exp(log_p)
    return p / p.sum(axis=1, keepdims=True)


# ------------------------------------------------------------------------------ the full fit


def _pinned_classes(known: np.ndarray) -> np.ndarray:
    classes = np.full(len(known), -1, np.int8)
    pinned = ~np.isnan(known)
    classes[pinned] = np.where(known[pinned] >= MIN_INCLINATION, ACCEPTED, FACE_ON)
    return classes


def _fit_growth(expected_sq, weight, t) -> float:
    """The EM step for gamma: with each exact vote's Student-t weight and expected squared residual (in units of
    its volunteer's sigma) fixed, the gamma that maximises the scale-mixture likelihood."""

    def negative_log_likelihood(growth: float) -> float:
        h = _growth_factor(t, growth)
        return float(np.sum(np.log(h) + weight * expected_sq / (2.0 * h * h)))

    return float(optimize.minimize_scalar(negative_log_likelihood, bounds=(0.0, 3.0), method="bounded").x)


def _recentre(a, b, t, g, u, x, exact, precision, pinned, voted, settings: ModelSettings):
    """Move every voted galaxy by delta and every bias by -scale * delta, delta chosen in closed form.

    The votes cannot tell that shift apart (a vote expects c + a + b (t - c) either way): only the priors and
    the gold galaxies can, and plain EM creeps along such a direction by a tiny step per round (parameter
    expansion, as in PX-EM, takes it in one).
    """
    c = settings.center
    gold = exact & pinned[g]
    r = x[gold] - c - a[u[gold]] - b[u[gold]] * (t[g[gold]] - c)
    wb = precision[gold] * b[u[gold]]
    inv_bias, inv_prior = 1.0 / settings.bias_sd**2, 1.0 / settings.prior_sd**2
    numerator = inv_bias * np.sum(a * b) - inv_prior * np.sum(t[voted] - settings.prior_mean) - np.sum(wb * r)
    denominator = inv_bias * np.sum(b * b) + inv_prior * voted.sum() + np.sum(wb * b[u[gold]])
    delta = numerator / denominator
    t = t.copy()
    t[voted] += delta
    return a - b * delta, t


def _numeric_votes(votes: Votes):
    """Mask of the votes that speak about an inclination, and for them (value, censor code: -1 for a face-on
    flag, 0 for an inclination)."""
    face_on = votes.category == FACE_ON
    mask = ((votes.category == ACCEPTED) & ~np.isnan(votes.value)) | face_on
    value = votes.value[mask]
    censor = np.where(face_on[mask], -1, 0).astype(np.int8)
    return mask, np.where(censor == 0, value, 0.0), censor


def fit(
    votes: Votes, settings: ModelSettings | None = None, *, seed: int = 0, initial: Volunteers | None = None
) -> Fit:
    """Fit every volunteer's bias, scale, noise and flag accuracy and every galaxy's posterior to all votes.

    `initial`: the figures to begin from (the last refit's; a NaN sigma or accuracy is a volunteer it has not
    seen), so a nightly refit continues the EM where the last one stopped instead of from scratch.
    """
    settings = settings or ModelSettings()
    rng = np.random.default_rng(seed)
    n_g, n_u = votes.n_galaxies, votes.n_volunteers
    c = settings.center
    half_all = np.where(votes.not_sure, settings.not_sure_weight, 1.0)
    mask, x, censor = _numeric_votes(votes)
    g, u, half = votes.galaxy[mask], votes.volunteer[mask], half_all[mask]
    exact = censor == 0
    # gamma is one number: a fixed sample of the exact votes suffices (the same one every round, or its noise
    # would keep every galaxy moving).
    on = np.flatnonzero(exact)
    if len(on) > settings.growth_sample:
        on = np.sort(rng.choice(on, settings.growth_sample, replace=False))
    pinned = ~np.isnan(votes.known)
    pinned_t = votes.known[pinned]

    a, b = np.zeros(n_u), np.ones(n_u)
    sigma = np.full(n_u, settings.sigma_typical)
    sigma_typical, growth = settings.sigma_typical, settings.growth
    if initial is not None:
        sigma_typical, growth = initial.sigma_typical, initial.growth
        a, b = np.nan_to_num(initial.bias, nan=0.0), np.nan_to_num(initial.scale, nan=1.0)
        sigma = np.where(np.isnan(initial.sigma), sigma_typical, initial.sigma)
    n_exact = np.bincount(u, weights=half * exact, minlength=n_u)
    voted = (np.bincount(g, minlength=n_g) > 0) & ~pinned
    previous = start = None
    converged = False
    iterations = 0
    for iterations in range(1, settings.iterations + 1):  # noqa: B007 (reported after the loop)
        t, var, _ = _numeric_posterior(g, n_g, x, censor, a[u], b[u], sigma[u], half, growth, settings, start=start)
        t[pinned], var[pinned] = pinned_t, 0.0
        if previous is not None and np.quantile(np.abs(t - previous), 0.999) < settings.tolerance:
            converged = True
            break
        previous = t
        # Volunteer step: weighted least squares of (x - c) on (t - c), shrunk toward (a, b) = (0, 1); the
        # galaxies' posterior variance enters E[(t - c)^2] so that noisy galaxies do not flatten the scales.
        tv, vv = t[g], var[g]
        terms = _vote_terms(tv, x, censor, a[u], b[u], sigma[u], half, growth, settings)
        z, y, weight = tv - c, terms.work, terms.ls_weight
        s0 = np.bincount(u, weight, n_u)
        sz = np.bincount(u, weight * z, n_u)
        szz = np.bincount(u, weight * (z * z + vv), n_u)
        sy = np.bincount(u, weight * y, n_u)
        syz = np.bincount(u, weight * y * z, n_u)
        ka = sigma**2 / settings.bias_sd**2
        kb = sigma**2 / settings.scale_sd**2
        m11, m12, m22 = s0 + ka, sz, szz + kb
        r1, r2 = sy, syz + kb
        det = m11 * m22 - m12 * m12
        a = (m22 * r1 - m12 * r2) / det
        b = np.clip((m11 * r2 - m12 * r1) / det, 0.3, 2.0)
        a, start = _recentre(a, b, t, g, u, x, exact, weight / sigma[u] ** 2, pinned, voted, settings)
        z = start[g] - c
        resid = np.where(exact, x - c - a[u] - b[u] * z, 0.0)
        sq = np.bincount(u, np.where(exact, weight * (resid**2 + b[u] ** 2 * vv), 0.0), n_u)
        enough = n_exact >= 20
        if enough.any():
            sigma_typical = float(np.median(np.sqrt(sq[enough] / n_exact[enough])))
        sigma = np.sqrt((sq + settings.sigma_votes * sigma_typical**2) / (n_exact + settings.sigma_votes))
        expected_sq = (resid[on] ** 2 + b[u[on]] ** 2 * vv[on]) / sigma[u[on]] ** 2
        growth = _fit_growth(expected_sq, terms.t_weight[on] * half[on], tv[on])

    accuracy, class_prior = _fit_classes(votes, half_all, settings, initial=initial)
    volunteers = Volunteers(a, b, sigma, accuracy, n_exact, growth, class_prior, sigma_typical)
    galaxies = _galaxies(votes, volunteers, settings)
    return Fit(volunteers, galaxies, iterations, converged)


def _fit_classes(votes: Votes, half: np.ndarray, settings: ModelSettings, initial: Volunteers | None = None):
    n_g, n_u = votes.n_galaxies, votes.n_volunteers
    g, u, cat = votes.galaxy, votes.volunteer, votes.category
    right_prior, wrong_prior = settings.accuracy_prior
    accuracy = np.full(n_u, right_prior / (right_prior + wrong_prior))
    class_prior = np.full(N_CLASSES, 1.0 / N_CLASSES)
    if initial is not None:
        accuracy = np.where(np.isnan(initial.accuracy), accuracy, initial.accuracy)
        class_prior = np.asarray(initial.class_prior, float)
    iterations = settings.class_iterations
    pinned = _pinned_classes(votes.known)
    fixed = pinned >= 0
    calls = np.bincount(u, half, n_u)
    for _ in range(iterations):
        p = _class_posterior(g, n_g, cat, half, accuracy[u], class_prior)
        p[fixed] = np.eye(N_CLASSES)[pinned[fixed]]
        agreed = np.bincount(u, half * p[g, cat], n_u)
        accuracy = np.clip((agreed + right_prior) / (calls + right_prior + wrong_prior), 0.34, 0.999)
        voted = np.bincount(g, minlength=n_g) > 0
        class_prior = np.clip(p[voted & ~fixed].mean(axis=0), 0.01, None) if (voted & ~fixed).any() else class_prior
        class_prior = class_prior / class_prior.sum()
    return accuracy, class_prior


def _galaxies(votes: Votes, volunteers: Volunteers, settings: ModelSettings) -> Galaxies:
    """Every galaxy's posterior for fixed volunteer parameters (the fit's last step)."""
    n_g = votes.n_galaxies
    half = np.where(votes.not_sure, settings.not_sure_weight, 1.0)
    mask, x, censor = _numeric_votes(votes)
    g, u = votes.galaxy[mask], votes.volunteer[mask]
    v = volunteers
    t, var, _ = _numeric_posterior(g, n_g, x, censor, v.bias[u], v.scale[u], v.sigma[u], half[mask], v.growth, settings)
    p = _class_posterior(votes.galaxy, n_g, votes.category, half, v.accuracy[votes.volunteer], v.class_prior)
    pinned = _pinned_classes(votes.known)
    fixed = pinned >= 0
    p[fixed] = np.eye(N_CLASSES)[pinned[fixed]]
    t[fixed], var[fixed] = votes.known[fixed], 0.0
    return Galaxies(
        mean=np.clip(t, MIN_INCLINATION, MAX_INCLINATION),
        sd=np.sqrt(var),
        n_numeric=np.bincount(g[censor == 0], minlength=n_g),
        n_votes=np.bincount(votes.galaxy, minlength=n_g),
        p_face_on=p[:, FACE_ON],
        p_rejected=p[:, REJECTED],
    )


def posteriors(votes: Votes, volunteers: Volunteers, settings: ModelSettings | None = None) -> Galaxies:
    """Every galaxy's posterior from these votes, volunteer parameters fixed (e.g. from last night's fit)."""
    return _galaxies(votes, volunteers, settings or ModelSettings())


# ------------------------------------------------------------------------------ one galaxy, per vote


@dataclass(frozen=True, slots=True)
class RatedVote:
    """One vote with its volunteer's current parameters."""

    value: float | None
    category: int = ACCEPTED
    not_sure: bool = False
    bias: float = 0.0
    scale: float = 1.0
    sigma: float = 4.0
    accuracy: float = 0.8


@dataclass(frozen=True, slots=True)
class Posterior:
    mean: float  # deg, clipped to 45-90 (the prior's 67.5 without a vote that gives an inclination)
    sd: float
    n_numeric: int  # votes with an inclination
    n_votes: int
    p_face_on: float
    p_rejected: float

    @property
    def status(self) -> int:
        p_accepted = 1.0 - self.p_face_on - self.p_rejected
        return int(np.argmax([p_accepted, self.p_face_on, self.p_rejected]))


def galaxy_posterior(
    votes: Sequence[RatedVote],
    *,
    growth: float,
    class_prior: Sequence[float],
    settings: ModelSettings | None = None,
) -> Posterior:
    """One galaxy's posterior from its votes, volunteer parameters fixed: what recording a vote recomputes.

    The same computation as that galaxy's row of `posteriors` (each vote carries its volunteer's figures).
    Pass only the votes that count toward a consensus: a gold galaxy is pinned to its known value instead.
    """
    n = len(votes)
    one = Votes.build(
        galaxy=np.zeros(n, np.int64),
        volunteer=np.arange(n),
        value=[np.nan if v.value is None else v.value for v in votes],
        category=[v.category for v in votes],
        not_sure=[v.not_sure for v in votes],
        n_galaxies=1,
        n_volunteers=n,
    )
    column = {f: np.array([getattr(v, f) for v in votes], float) for f in ("bias", "scale", "sigma", "accuracy")}
    figures = Volunteers(
        **column, n_numeric=np.zeros(n), growth=growth, class_prior=np.asarray(class_prior), sigma_typical=0.0
    )
    row = _galaxies(one, figures, settings or ModelSettings())
    return Posterior(
        mean=float(row.mean[0]),
        sd=float(row.sd[0]),
        n_numeric=int(row.n_numeric[0]),
        n_votes=n,
        p_face_on=float(row.p_face_on[0]),
        p_rejected=float(row.p_rejected[0]),
    )


def retirement_due(
    *, sd, n_votes, p_face_on, p_rejected, target_sd: float = 2.0, max_votes: int = 9, sure: float = 0.95
):
    """Whether a galaxy's answer is known (works on arrays or scalars).

    An inclination is known when its posterior sigma is at or below `target_sd` and the votes say it is one;
    face-on or rejected when that category is `sure`; anything after `max_votes`.
    """
    p_accepted = 1.0 - np.asarray(p_face_on) - np.asarray(p_rejected)
    sd = np.where(np.isnan(np.asarray(sd, float)), np.inf, np.asarray(sd, float))
    known_number = (p_accepted >= 0.5) & (sd <= target_sd)
    known_flag = (np.asarray(p_face_on) >= sure) | (np.asarray(p_rejected) >= sure)
    return known_number | known_flag | (np.asarray(n_votes) >= max_votes)


def label_priority(*, sd: float | None, mean: float | None, model_median: float | None, model_spread: float) -> float:
    """How urgently a galaxy needs votes: the widest posteriors, and those the CNN ensemble disagrees with, first.

    In degrees: the posterior sigma (the prior's 13 deg before any vote), plus how far the ensemble's median is
    from the posterior mean in units of their combined uncertainty (capped), plus the ensemble's own spread.
    """
    sd = ModelSettings().prior_sd if sd is None else sd
    priority = sd + min(model_spread, 20.0)
    if model_median is not None and mean is not None:
        priority += min(abs(model_median - mean) / np.hypot(sd, max(model_spread, 1.0)), 5.0) * 2.0
    return round(float(priority), 3)


def label_priorities(*, sd: np.ndarray, mean: np.ndarray, model_median: np.ndarray) -> np.ndarray:
    """label_priority for many galaxies (model_spread 0): NaN sd and mean for a galaxy without an inclination
    vote, NaN model_median for one without a prediction."""
    sd = np.where(np.isnan(sd), ModelSettings().prior_sd, sd)
    pull = np.minimum(np.abs(model_median - mean) / np.hypot(sd, 1.0), 5.0) * 2.0
    return np.round(sd + np.where(np.isnan(pull), 0.0, pull), 3)


# ------------------------------------------------------------------------------ in words


def describe_volunteer(
    *, bias: float, scale: float, sigma: float, n_numeric: float, sigma_typical: float, growth: float = 0.5
) -> str:
    """A volunteer's figures in plain words, for their profile."""
    if n_numeric < 5:
        return "After a few more votes we can tell you how your answers compare with everyone's."
    words = []
    at_50 = bias + (scale - 1.0) * (50.0 - 67.5)
    at_85 = bias + (scale - 1.0) * (85.0 - 67.5)
    if abs(at_50 - at_85) >= 1.5:
        words.append(f"Near face-on (50 deg) you answer {_offset(at_50)}; near edge-on (85 deg) {_offset(at_85)}.")
    elif abs(bias) >= 1.0:
        words.append(f"You tend to answer {abs(bias):.0f} deg {'high' if bias > 0 else 'low'}.")
    else:
        words.append("Your answers are centred on everyone's (within 1 deg).")
    mid = sigma * (1 + growth / 2)
    ratio = sigma / sigma_typical
    compare = "less than most" if ratio < 0.85 else "more than most" if ratio > 1.2 else "about as much as most"
    words.append(f"A single answer of yours scatters by about {mid:.0f} deg, {compare} volunteers.")
    if n_numeric < 30:
        words.append(f"This is a first impression from {n_numeric:.0f} answers.")
    return " ".join(words)


def _offset(value: float) -> str:
    if abs(value) < 1.0:
        return "about right"
    return f"{abs(value):.0f} deg {'high' if value > 0 else 'low'}"
