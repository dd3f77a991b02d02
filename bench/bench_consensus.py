"""Consensus methods side by side on the same simulated votes; the volunteer model's refit at full scale.

    .venv/bin/python -m bench.bench_consensus                    # accuracy + retirement + adversaries + 5M refit
    .venv/bin/python -m bench.bench_consensus --skip-scale       # without the 5M-vote refit (about 1 min)

A simulated population (bench/volunteer_sim.py) votes on "history" galaxies (5 votes each, 2% gold), from which
each method learns its per-volunteer figures, as the nightly refit would; then on "test" galaxies, 9 votes each
in arrival order, that no method has seen. Compared on the first k test votes:
1. plain median of the numeric votes;
2. the original GIZ procedure: each volunteer fitted linearly against the median of everyone's, the median
   recomputed from corrected votes until stable, integer weights 0-4 from the residual RMS, weighted median;
3. today's code: labeling.consensus.calibration_from_sums and consensus_compute, as labeling/services.py calls
   them (calibrations against gold and the consensus, two label passes);
4. the volunteer model (labeling.volunteer_model): fit on history, posteriors with volunteer figures fixed.
Then retirement (today's 3 agreeing votes vs the posterior sigma <= target), coverage of +/-1 sigma, careless
volunteers found, adversaries, and the refit of 5,000,000 votes on 1,000,000 galaxies (wall and CPU time).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from bench import volunteer_sim as sim  # noqa: E402
from bench.machine import machine  # noqa: E402
from labeling import consensus as today  # noqa: E402
from labeling import volunteer_model as vm  # noqa: E402

FLAG_OF = {vm.ACCEPTED: "", vm.FACE_ON: "face_on", vm.REJECTED: "not_spiral"}
STATUS_CODE = {today.ACCEPTED: vm.ACCEPTED, today.FACE_ON: vm.FACE_ON, today.REJECTED: vm.REJECTED}
K_MAX = 9


# ------------------------------------------------------------------------------ helpers


def model_votes(b: sim.Ballots, n_galaxies: int, n_volunteers: int, known=None) -> vm.Votes:
    return vm.Votes.build(
        galaxy=b.galaxy,
        volunteer=b.volunteer,
        value=b.value,
        category=b.category,
        not_sure=b.not_sure,
        known=known if known is not None else np.full(n_galaxies, np.nan),
        n_galaxies=n_galaxies,
        n_volunteers=n_volunteers,
    )


def group_weighted_median(group, values, weights, n):
    """Weighted median per group (NaN for a group without weight)."""
    order = np.lexsort((values, group))
    g, v, w = group[order], values[order], weights[order]
    total = np.bincount(g, w, n)
    before = np.concatenate(([0.0], np.cumsum(total)))[:-1]
    within = np.cumsum(w) - before[g]
    idx = np.flatnonzero(within >= total[g] / 2 - 1e-9)[::-1]
    first = np.full(n, -1)
    first[g[idx]] = idx
    out = np.full(n, np.nan)
    out[first >= 0] = v[first[first >= 0]]
    out[total <= 0] = np.nan
    return out


def majority(group, category, weights, n):
    counts = np.stack([np.bincount(group[category == k], weights[category == k], n) for k in range(3)], axis=1)
    # Ties go to an inclination, as in today's code.
    return np.argmax(counts + np.array([1e-9, 0.0, -1e-9]), axis=1)


# ------------------------------------------------------------------------------ the methods


def plain_median(b: sim.Ballots, n: int):
    numeric = b.category == vm.ACCEPTED
    est = group_weighted_median(b.galaxy[numeric], b.value[numeric], np.ones(numeric.sum()), n)
    return est, majority(b.galaxy, b.category, np.ones(len(b)), n)


def giz_original_fit(b: sim.Ballots, sk: sim.Sky, n_volunteers: int, rounds: int = 6):
    """Per-volunteer (slope, intercept, weight) of the original procedure, from the history votes: each
    volunteer's votes fitted as a line of the median of everyone's (vote = p + q * median), corrected votes
    (vote - p) / q, the median recomputed from them until stable; integer weights 0-4 from the residual RMS."""
    n = len(sk)
    numeric = b.category == vm.ACCEPTED
    g, u, x = b.galaxy[numeric], b.volunteer[numeric], b.value[numeric]
    slope, intercept, weight = np.ones(n_volunteers), np.zeros(n_volunteers), np.ones(n_volunteers)
    for _ in range(rounds):
        corrected = np.clip(slope[u] * x + intercept[u], 45, 90)
        reference = group_weighted_median(g, corrected, np.maximum(weight[u], 0.05), n)
        reference = np.where(sk.gold, np.maximum(sk.truth, 45.0), reference)[g]
        cnt = np.bincount(u, minlength=n_volunteers).astype(float)
        sr, sx = np.bincount(u, reference, n_volunteers), np.bincount(u, x, n_volunteers)
        srr, srx = np.bincount(u, reference * reference, n_volunteers), np.bincount(u, x * reference, n_volunteers)
        with np.errstate(invalid="ignore", divide="ignore"):
            drr = srr - sr * sr / cnt
            q = (srx - sr * sx / cnt) / drr
            ok = (cnt >= 5) & (drr > 1e-9)
            q = np.where(ok, np.clip(q, 0.67, 1.5), 1.0)
            p = np.where(ok, (sx - q * sr) / cnt, 0.0)
        slope, intercept = 1.0 / q, -p / q
        rms = np.sqrt(np.bincount(u, (slope[u] * x + intercept[u] - reference) ** 2, n_volunteers) / np.maximum(cnt, 1))
        bands = np.select([rms <= 3, rms <= 5, rms <= 7, rms <= 10], [4.0, 3.0, 2.0, 1.0], 0.0)
        weight = np.where(cnt >= 5, bands, 1.0)
    return slope, intercept, weight


def giz_original(b: sim.Ballots, n: int, fitted):
    slope, intercept, weight = fitted
    w = np.maximum(weight[b.volunteer], 0.05)
    numeric = b.category == vm.ACCEPTED
    corrected = np.clip(slope[b.volunteer] * b.value + intercept[b.volunteer], 45, 90)
    est = group_weighted_median(b.galaxy[numeric], corrected[numeric], w[numeric], n)
    return est, majority(b.galaxy, b.category, w, n)


def _vote_in(value, category, not_sure, calibration) -> today.VoteIn:
    slope, intercept, weight = calibration
    return today.VoteIn(
        None if np.isnan(value) else float(value), FLAG_OF[int(category)], bool(not_sure), weight, slope, intercept
    )


def _by_galaxy(b: sim.Ballots, calibrations, n: int) -> list[list[today.VoteIn]]:
    groups: list[list[today.VoteIn]] = [[] for _ in range(n)]
    order = np.lexsort((b.position, b.galaxy))
    for k in order:
        groups[b.galaxy[k]].append(_vote_in(b.value[k], b.category[k], b.not_sure[k], calibrations[b.volunteer[k]]))
    return groups


def today_fit(b: sim.Ballots, sk: sim.Sky, n_volunteers: int):
    """Per-volunteer (slope, intercept, weight) as labeling/services.py computes them: a label pass with the
    current (default) calibrations, calibration_from_sums against gold and the consensus, and again."""
    n = len(sk)
    calibrations = [(1.0, 0.0, 1.0)] * n_volunteers
    not_gold = ~sk.gold[b.galaxy]
    for _ in range(2):
        labels = [today.consensus_compute(v) for v in _by_galaxy(b.take(not_gold), calibrations, n)]
        status = np.array([vm.REJECTED + 1 if lab is None else STATUS_CODE[lab.status] for lab in labels])
        label_t = np.array([np.nan if lab is None or lab.inclination is None else lab.inclination for lab in labels])
        reference = np.where(sk.gold & (sk.truth >= 45), sk.truth, label_t)[b.galaxy]
        numeric = (b.category == vm.ACCEPTED) & ~np.isnan(reference)
        u, x, y = b.volunteer[numeric], b.value[numeric], reference[numeric]
        sums = {
            "n": np.bincount(u, minlength=n_volunteers),
            "sx": np.bincount(u, x, n_volunteers),
            "sy": np.bincount(u, y, n_volunteers),
            "sxx": np.bincount(u, x * x, n_volunteers),
            "sxy": np.bincount(u, x * y, n_volunteers),
            "syy": np.bincount(u, y * y, n_volunteers),
        }
        has_label = status[b.galaxy] <= vm.REJECTED
        agree = has_label & (status[b.galaxy] == b.category)
        n_cat = np.bincount(b.volunteer[has_label], minlength=n_volunteers)
        n_agree = np.bincount(b.volunteer[agree], minlength=n_volunteers)
        calibrations = []
        for k in range(n_volunteers):
            fit = today.calibration_from_sums(
                **{key: (int(v[k]) if key == "n" else float(v[k])) for key, v in sums.items()},
                n_categorical=int(n_cat[k]),
                n_categorical_agree=int(n_agree[k]),
            )
            calibrations.append((fit.slope, fit.intercept, fit.weight))
    return calibrations


def today_labels(groups: list[list[today.VoteIn]], k: int):
    est, status, results = [], [], []
    for votes in groups:
        result = today.consensus_compute(votes[:k])
        results.append(result)
        est.append(np.nan if result is None or result.inclination is None else result.inclination)
        status.append(vm.REJECTED if result is None else STATUS_CODE[result.status])
    return np.array(est), np.array(status), results


# ------------------------------------------------------------------------------ measurements


def rms_row(est, truth, accepted):
    have = accepted & ~np.isnan(est)
    err = est[have] - truth[have]
    return float(np.sqrt(np.mean(err**2))), int(have.sum())


def accuracy_section(args, out: list[str]) -> dict:
    rng = np.random.default_rng(args.seed)
    pop = sim.population(args.volunteers, rng)
    n_u = len(pop) + 2  # two adversaries at the end
    history_sky = sim.sky(args.history, rng, gold=0.02)
    history = sim.ballots(pop, history_sky, 5, rng)
    test_sky = sim.sky(args.test, rng)
    test = sim.ballots(pop, test_sky, K_MAX, rng)
    accepted = (test_sky.kind == vm.ACCEPTED) & (test_sky.truth >= 45)
    n_t = len(test_sky)

    pairs = test.value.reshape(-1, K_MAX)[:, :2]
    both = ~np.isnan(pairs).any(axis=1) & accepted
    diff = pairs[both, 0] - pairs[both, 1]
    out.append(
        f"Simulation: {len(pop):,} volunteers ({int(pop.careless.sum())} careless), {len(history_sky):,} history "
        f"galaxies x 5 votes ({int(history_sky.gold.sum())} gold), {n_t:,} test galaxies x {K_MAX} votes; "
        f"a single vote scatters {1.4826 * np.median(np.abs(diff)) / np.sqrt(2):.2f} deg (robust; GIZ: 3.75), "
        f"{100 * np.mean(np.abs(diff) > 10):.1f}% of pairs of votes differ by > 10 deg (GIZ: 5.7%; the issue's 5% "
        "mis-clicks make our tail heavier)."
    )

    t0 = time.process_time()
    fitted = vm.fit(model_votes(history, len(history_sky), n_u, history_sky.known))
    fit_cpu = time.process_time() - t0
    giz = giz_original_fit(history, history_sky, n_u)
    cal = today_fit(history, history_sky, n_u)
    test_groups = _by_galaxy(test, cal, n_t)
    out.append(
        f"Volunteer model fit on the history ({len(history):,} votes): {fit_cpu:.1f} s CPU, {fitted.iterations} "
        f"iterations, converged: {fitted.converged}; fitted growth toward face-on {fitted.volunteers.growth:.2f} "
        f"(simulated {pop.growth}), typical sigma {fitted.volunteers.sigma_typical:.2f} deg."
    )

    # RMS against the truth by votes per galaxy.
    out += [
        "",
        "| votes per galaxy | plain median | original GIZ | today's code | volunteer model | model coverage +/-1 sd |",
    ]
    out.append("|---|---|---|---|---|---|")
    posts = {}
    today_results = {}
    for k in range(1, K_MAX + 1):
        first = test.take(test.position < k)
        pm, _ = plain_median(first, n_t)
        go, _ = giz_original(first, n_t, giz)
        td, _, today_results[k] = today_labels(test_groups, k)
        post = vm.posteriors(model_votes(first, n_t, n_u), fitted.volunteers)
        posts[k] = post
        model_est = np.where(post.n_numeric > 0, post.mean, np.nan)
        cover = np.mean(np.abs(post.mean - test_sky.truth)[accepted & (post.n_numeric > 0)] <= post.sd[
            accepted & (post.n_numeric > 0)])  # fmt: skip
        cells = [rms_row(e, test_sky.truth, accepted) for e in (pm, go, td, model_est)]
        out.append(f"| {k} | " + " | ".join(f"{r:.2f}" for r, _ in cells) + f" | {100 * cover:.1f}% |")
    out.append("")
    out.append(
        "RMS in deg over the test galaxies that are truly inclined (45-90 deg) and for which the method gives an "
        "inclination (today's code gives none when its majority says face-on or rejected)."
    )

    # Retirement.
    results = {}
    # Today: retire at 3 agreeing votes or 9 votes (GIZ_VOTES_TO_RETIRE, GIZ_VOTES_MAX).
    used = np.full(n_t, K_MAX)
    est = np.full(n_t, np.nan)
    for k in range(K_MAX, 0, -1):
        for gal, result in enumerate(today_results[k]):
            if result is not None and k >= 3 and today.retirement_decide(result, quorum=3, max_votes=K_MAX)[0]:
                used[gal] = k
                est[gal] = np.nan if result.inclination is None else result.inclination
    final = today_results[K_MAX]
    never = used == K_MAX
    est[never] = [np.nan if r is None or r.inclination is None else r.inclination for r in np.array(final)[never]]
    results["today"] = (float(used.mean()), *rms_row(est, test_sky.truth, accepted), None)

    def adaptive(target_sd: float):
        used = np.full(n_t, K_MAX)
        done = np.zeros(n_t, bool)
        mean = np.full(n_t, np.nan)
        sd = np.full(n_t, np.nan)
        for k in range(1, K_MAX + 1):
            p = posts[k]
            due = vm.retirement_due(
                sd=np.where(p.n_numeric > 0, p.sd, np.nan),
                n_votes=p.n_votes,
                p_face_on=p.p_face_on,
                p_rejected=p.p_rejected,
                target_sd=target_sd,
                max_votes=K_MAX,
            )
            new = due & ~done
            used[new], mean[new], sd[new] = k, np.where(p.n_numeric > 0, p.mean, np.nan)[new], p.sd[new]
            done |= due
        have = accepted & ~np.isnan(mean)
        cover = float(np.mean(np.abs(mean - test_sky.truth)[have] <= sd[have]))
        return float(used.mean()), *rms_row(mean, test_sky.truth, accepted), cover

    out += ["", "| retirement rule | mean votes per galaxy | RMS (deg) | galaxies scored | coverage +/-1 sigma |"]
    out.append("|---|---|---|---|---|")
    m, r, n, _ = results["today"]
    out.append(f"| today: 3 agreeing votes (max {K_MAX}) | {m:.2f} | {r:.2f} | {n} | – |")
    sweep = {}
    for target in (1.25, 1.5, 1.75, 2.0, 2.1, 2.2, 2.3, 2.5, 3.0):
        sweep[target] = adaptive(target)
        m, r, n, c = sweep[target]
        bold = "**" if target == 2.0 else ""
        out.append(
            f"| {bold}model: sigma <= {target} deg (max {K_MAX}){bold} | {bold}{m:.2f}{bold} | {bold}{r:.2f}{bold} |"
            f" {n} | {100 * c:.1f}% |"
        )
    # Votes the model needs for today's RMS: interpolate along the sweep.
    today_rms, today_votes = results["today"][1], results["today"][0]
    points = sorted((v[1], v[0]) for v in sweep.values())
    rms_values, vote_values = zip(*points, strict=True)
    needed = float(np.interp(today_rms, rms_values, vote_values))
    saving = 1 - needed / today_votes
    out.append("")
    out.append(
        f"For today's RMS of {today_rms:.2f} deg the model needs {needed:.2f} votes per galaxy against today's "
        f"{today_votes:.2f}: **{100 * saving:.0f}% fewer votes** (interpolated along the sweep above)."
    )

    # Careless volunteers.
    v = fitted.volunteers
    seen = np.bincount(history.volunteer, minlength=n_u)[: len(pop)]
    veteran = seen >= 30
    weights = v.weight[: len(pop)]
    typical = np.median(weights[veteran & ~pop.careless])
    careless = veteran & pop.careless
    found = v.weight[: len(pop)][careless] < typical / 10
    out.append("")
    out.append(
        f"Careless volunteers with >= 30 history votes: {int(careless.sum())}; weight below a tenth of the typical "
        f"volunteer's: **{int(found.sum())} ({100 * found.mean():.0f}%)**; their weights relative to typical: "
        f"{', '.join(f'{w:.3f}' for w in np.sort(v.weight[: len(pop)][careless] / typical))}. "
        f"Careful volunteers below a tenth: {int((weights[veteran & ~pop.careless] < typical / 10).sum())}."
    )
    recovered = veteran & ~pop.careless
    out.append(
        f"Recovered figures of careful volunteers with >= 30 votes ({int(recovered.sum())}): bias error "
        f"{np.sqrt(np.mean((v.bias[: len(pop)] - pop.bias)[recovered] ** 2)):.2f} deg RMS (simulated spread "
        f"{pop.bias[recovered].std():.2f}), scale error "
        f"{np.sqrt(np.mean((v.scale[: len(pop)] - pop.scale)[recovered] ** 2)):.3f}"
        f" (spread {pop.scale[recovered].std():.3f}), correlation of fitted and simulated noise "
        f"{np.corrcoef(v.sigma[: len(pop)][recovered], pop.noise[recovered])[0, 1]:.2f}."
    )

    adversary_section(out, rng, pop, history, history_sky, test, test_sky, fitted, giz, cal, n_u)
    return {"today_votes": today_votes, "needed": needed}


def adversary_section(out, rng, pop, history, history_sky, test, test_sky, fitted, giz, cal, n_u) -> None:
    """A volunteer answering the same value everywhere; one voting only on gold galaxies."""
    n_t = len(test_sky)
    constant_id, gold_id = len(pop), len(pop) + 1
    first3 = test.take(test.position < 3)
    # Galaxies with an inclination after 3 ordinary votes (at least 2 of them give one): a consensus to move.
    numeric3 = np.bincount(first3.galaxy[first3.category == vm.ACCEPTED], minlength=n_t)
    targets = rng.choice(np.flatnonzero(numeric3 >= 2), 300, replace=False)
    plain = history_sky.gold == 0
    out += [
        "",
        "| adversary | method | galaxies it voted on | mean shift (deg) | 95th percentile | max shift (deg) |",
        "|---|---|---|---|---|---|",
    ]
    for value in (90.0, 67.5):
        on_history = rng.choice(np.flatnonzero(plain), 300, replace=False)
        extra = sim.constant_voter(constant_id, on_history, value, 5)
        refit = vm.fit(model_votes(history + extra, len(history_sky), n_u, history_sky.known))
        attack = first3 + sim.constant_voter(constant_id, targets, value, 3)
        before = vm.posteriors(model_votes(first3, n_t, n_u), refit.volunteers).mean[targets]
        after = vm.posteriors(model_votes(attack, n_t, n_u), refit.volunteers).mean[targets]
        shift = np.abs(after - before)
        weight = refit.volunteers.weight[constant_id] / np.median(refit.volunteers.weight[: len(pop)])
        out.append(
            f"| same value {value:g} everywhere (300 history votes; weight {weight:.3f} of typical) | volunteer model |"
            f" 300, as their 4th vote | {shift.mean():.2f} | {np.percentile(shift, 95):.2f} | {shift.max():.2f} |"
        )
        pm_before, _ = plain_median(first3, n_t)
        pm_after, _ = plain_median(attack, n_t)
        pm_shift = np.abs(pm_after - pm_before)[targets]
        out.append(
            f"| same value {value:g} | plain median | 300 | {np.nanmean(pm_shift):.2f} | "
            f"{np.nanpercentile(pm_shift, 95):.2f} | {np.nanmax(pm_shift):.2f} |"
        )
        cal_attack = today_fit(history + extra, history_sky, n_u)
        td_before, _, _ = today_labels(_by_galaxy(first3, cal_attack, n_t), 3)
        td_after, _, _ = today_labels(_by_galaxy(attack, cal_attack, n_t), 4)
        td_shift = np.abs(td_after - td_before)[targets]
        out.append(
            f"| same value {value:g} | today's code (its calibration and weight from the history) | 300 | "
            f"{np.nanmean(td_shift):.2f} | {np.nanpercentile(td_shift, 95):.2f} | {np.nanmax(td_shift):.2f} |"
        )
    # Gold only: random answers on every gold galaxy of the history; every test posterior before and after.
    gold = np.flatnonzero(history_sky.gold)
    gold_votes = sim.Ballots(
        galaxy=gold,
        volunteer=np.full(len(gold), gold_id),
        value=np.round(rng.uniform(45, 90, len(gold)) * 2) / 2,
        category=np.zeros(len(gold), np.int8),
        not_sure=np.zeros(len(gold), bool),
        position=np.full(len(gold), 5),
    )
    refit = vm.fit(model_votes(history + gold_votes, len(history_sky), n_u, history_sky.known))
    five = test.take(test.position < 5)
    before = vm.posteriors(model_votes(five, n_t, n_u), fitted.volunteers).mean
    after = vm.posteriors(model_votes(five, n_t, n_u), refit.volunteers).mean
    hist_shift = np.abs(refit.galaxies.mean - fitted.galaxies.mean)[~history_sky.gold]
    out.append(
        f"| random answers on all {len(gold)} gold galaxies only | volunteer model, refit | 0 (gold never enters a "
        f"consensus) | {np.abs(after - before).mean():.3f} on {n_t:,} test galaxies, {hist_shift.mean():.3f} on "
        f"history | – | {max(np.abs(after - before).max(), hist_shift.max()):.3f} |"
    )
    out.append("")
    out.append(
        "Shifts compare the consensus after 3 ordinary votes (at least 2 of them inclinations) with and without the "
        "adversary's vote. The gold-only "
        "volunteer changes consensus only through the global figures of the refit (the typical noise, the growth "
        "toward face-on)."
    )


def scale_section(args, out: list[str]) -> None:
    rng = np.random.default_rng(args.seed + 1)
    t0 = time.perf_counter()
    pop = sim.population(args.scale_volunteers, rng)
    sk = sim.sky(args.scale_galaxies, rng, gold=0.002)
    ballots = sim.ballots(pop, sk, args.scale_votes, rng)
    votes = model_votes(ballots, len(sk), len(pop), sk.known)
    del ballots
    simulate_s = time.perf_counter() - t0
    load = os.getloadavg()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    fitted = vm.fit(votes)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    load_after = os.getloadavg()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    # One galaxy at a time with the fitted figures, as recording a vote would; it must equal the full pass.
    v = fitted.volunteers
    order = np.argsort(votes.galaxy, kind="stable")
    starts = np.searchsorted(votes.galaxy[order], np.arange(len(sk) + 1))
    picks = rng.choice(np.flatnonzero(~sk.gold), args.samples, replace=False)
    times, worst = [], 0.0
    for gal in picks:
        rows = order[starts[gal] : starts[gal + 1]]
        rated = [
            vm.RatedVote(
                value=None if np.isnan(votes.value[k]) else float(votes.value[k]),
                category=int(votes.category[k]),
                not_sure=bool(votes.not_sure[k]),
                bias=float(v.bias[votes.volunteer[k]]),
                scale=float(v.scale[votes.volunteer[k]]),
                sigma=float(v.sigma[votes.volunteer[k]]),
                accuracy=float(v.accuracy[votes.volunteer[k]]),
            )
            for k in rows
        ]
        start = time.perf_counter()
        post = vm.galaxy_posterior(rated, growth=v.growth, class_prior=v.class_prior)
        times.append(1000 * (time.perf_counter() - start))
        worst = max(worst, abs(post.mean - fitted.galaxies.mean[gal]), abs(post.sd - fitted.galaxies.sd[gal]))
    times = np.array(times)
    out += [
        "",
        "| refit at scale | value |",
        "|---|---|",
        f"| votes / galaxies / volunteers | {len(votes.galaxy):,} / {len(sk):,} / {len(pop):,} |",
        f"| simulate the votes (not part of the refit) | {simulate_s:.0f} s |",
        f"| **refit wall time** | **{wall:.0f} s** ({fitted.iterations} iterations, converged: {fitted.converged}) |",
        f"| refit CPU time (one thread) | {cpu:.0f} s |",
        f"| peak memory of the process | {peak_mb:,.0f} MB |",
        f"| load average before / after (1 min) | {load[0]:.1f} / {load_after[0]:.1f} |",
        f"| one galaxy's posterior (galaxy_posterior, {args.samples} galaxies) p50 / p95 | "
        f"{np.percentile(times, 50):.2f} / {np.percentile(times, 95):.2f} ms |",
        f"| largest difference from the full pass (mean or sigma) | {worst:.1e} deg |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--volunteers", type=int, default=2000)
    parser.add_argument("--history", type=int, default=30000, help="galaxies the figures are learnt from")
    parser.add_argument("--test", type=int, default=10000, help="galaxies scored, 9 votes each")
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--scale-galaxies", type=int, default=1_000_000)
    parser.add_argument("--scale-votes", type=int, default=5, help="votes per galaxy at scale")
    parser.add_argument("--scale-volunteers", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=1000, help="single-galaxy posteriors timed")
    parser.add_argument("--out", default=str(REPO / "var" / "bench" / "consensus.md"))
    args = parser.parse_args()

    out = [
        f"- Command: `{' '.join(['.venv/bin/python -m bench.bench_consensus', *sys.argv[1:]])}`",
        f"- Machine: {machine()}, NumPy {np.__version__}, threads pinned to 1; "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; load average {os.getloadavg()[0]:.1f} at the start",
        "",
    ]
    t0 = time.perf_counter()
    accuracy_section(args, out)
    out.append(f"\nAccuracy, retirement and adversaries: {time.perf_counter() - t0:.0f} s wall.")
    if not args.skip_scale:
        scale_section(args, out)
    text = "\n".join(out)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
