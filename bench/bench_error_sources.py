"""Where the shipped ensemble's error lies, and what combining the members differently would change.

    .venv/bin/python -m bench.bench_error_sources          # ~2 min CPU once the test answers are stored

1. RMS on the held-out test sets of inference.shipped, split by what kind of galaxy each image was: the
   population draw behind every test image is drawn again from its seed (`training_sets.source_draw`), so
   the split uses the truth (type, intrinsic thickness q0, surface brightness, bulge share), not the picture.
2. Each member alone against the ensemble: if the members' errors were independent, the ensemble would be
   much better than its best member; if they are shared, more members of the same kind buy little.
3. Ways of combining the members on the validation and test sets: the mean of the members through their
   curves (what ships), the same weighted by each member's learned sigma, and one curve on the members'
   mean instead of one per member (fitted on the validation galaxies of both sources).
4. Forms of sigma with a second free factor besides the shipped scale on the learned sigma (the members' spread
   scaled too, a floor, a scale growing with the answer), each fitted as `shipped.calibrate_sigma_scale` fits
   the scale (the worst coverage deviation over sources, in units of the tolerance) on the validation and
   SIGMA_SETS galaxies, then scored on the test sets: does one sigma form serve both sources' error tails?
   One more form adds the spread of each member's answers over the 8 rotations/flips (the views the site
   averages), a sign of an image the members cannot read the same way round.
5. Test-time shifts: each member's answer averaged over the 8 rotations/flips of the image moved by 2 px each way
   as well (5 positions, 40 views) instead of the 8 views the site averages. A 3-px shift moves the answer by
   0.25-0.34 deg (bench_robust), so averaging positions might remove part of the error, at 5 times the cost.
"""

from __future__ import annotations

import os
import time

import numpy as np

from bench.machine import machine


def _rms(error: np.ndarray) -> float:
    return float(np.sqrt(np.mean(error**2)))


def _quartile_rows(label: str, values: dict[str, np.ndarray], errors: dict[str, np.ndarray]) -> list[str]:
    rows = []
    for q in range(4):
        cells = []
        for source, value in values.items():
            edges = np.quantile(value, [0.25 * q, 0.25 * (q + 1)])
            mask = (value >= edges[0]) & (value <= edges[1])
            cells.append(f"{edges[0]:.2f}-{edges[1]:.2f}: {_rms(errors[source][mask]):.2f}")
        rows.append(f"| {label}, quarter {q + 1} | " + " | ".join(cells) + " |")
    return rows


# The scales `shipped.calibrate_sigma_scale` tries (its grid, over the range that matters), so the first form's
# row is the shipped fit.
A_GRID = [a for a in np.geomspace(0.05, 20.0, 1200) if 0.3 <= a <= 2.0]
# name: (sigma from (learned, spread, answer, views' spread, a, b), the grid of b); a is the scale on the learned
# sigma.
SIGMA_FORMS = {
    "learned x a, with the spread (shipped)": (lambda L, S, P, V, a, b: np.hypot(a * L, S), [0.0]),
    "learned x a, spread x b": (lambda L, S, P, V, a, b: np.hypot(a * L, b * S), np.linspace(0.0, 4.0, 21)),
    "learned x a, spread, a floor of b deg": (
        lambda L, S, P, V, a, b: np.sqrt((a * L) ** 2 + S**2 + b**2),
        np.linspace(0.0, 1.5, 16),
    ),
    "learned x a (1 + b (answer - 67.5) / 22.5), spread": (
        lambda L, S, P, V, a, b: np.hypot(a * L * (1 + b * (P - 67.5) / 22.5), S),
        np.linspace(-0.5, 0.8, 14),
    ),
    "learned x a, spread, the views' spread x b": (
        lambda L, S, P, V, a, b: np.sqrt((a * L) ** 2 + S**2 + (b * V) ** 2),
        np.linspace(0.0, 4.0, 17),
    ),
}
# Test-time positions of section 5 (rows, columns in px), the site's own first.
SHIFTS = ((0, 0), (2, 0), (-2, 0), (0, 2), (0, -2))


def _coverage(error: np.ndarray, sigma: np.ndarray) -> list[float]:
    return [float(np.mean(np.abs(error) < k * sigma)) for k in (1, 2)]


def _worst(groups: list[tuple], form, a: float, b: float) -> float:
    from inference.shipped import coverage_deviation

    return max(coverage_deviation(error, form(*inputs, a, b)) for error, *inputs in groups)


def sigma_form_rows(fitted: dict, test: dict) -> list[str]:
    """fitted / test: source -> (error, learned sigma rms, spread, answer, views' spread) of the ensemble as it
    answers."""
    rows = [
        "| form | a | b | worst deviation where fitted (tolerances) | fitted ours 1/2 sigma | fitted galsim "
        "| test ours | test galsim |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, (form, b_grid) in SIGMA_FORMS.items():
        best = min((_worst(list(fitted.values()), form, a, b), a, b) for a in A_GRID for b in b_grid)
        worst, a, b = best
        cells = []
        for table in (fitted, test):
            for error, *inputs in table.values():
                one, two = _coverage(error, form(*inputs, a, b))
                cells.append(f"{100 * one:.1f}% / {100 * two:.1f}%")
        rows.append(f"| {name} | {a:.3f} | {b:.2f} | {worst:.2f} | " + " | ".join(cells) + " |")
    return rows


def view_answers(models: list, images: np.ndarray, shifts=((0, 0),)) -> np.ndarray:
    """V x N x M x 2: each member's raw (answer, learned sigma) on every view, the 8 rotations/flips of each shifted
    copy of the images (V = 8 x len(shifts)); their mean over the first 8 is what the site answers before curves."""
    import tensorflow as tf

    from inference.ensemble import compile_group

    function = compile_group(models, images.shape[1], test_time_augmentation=False)
    views = []
    for shift in shifts:
        moved = np.roll(images, shift, axis=(1, 2)) if shift != (0, 0) else images
        for turned in (moved, moved.transpose(0, 2, 1, 3)):
            for flipped in (turned, turned[:, :, ::-1], turned[:, ::-1], turned[:, ::-1, ::-1]):
                out = [
                    function(tf.constant(flipped[i : i + 256].astype(np.float32) / 255.0)).numpy()
                    for i in range(0, len(flipped), 256)
                ]
                views.append(np.concatenate(out).astype(np.float64))
    return np.stack(views)


def main() -> None:
    from inference import shipped, training_sets
    from inference.metrics import apply_calibration, fit_calibration

    started = time.perf_counter()
    manifest, models = shipped.load_members()
    curves = shipped.calibrations_of(manifest)
    sources = ("ours", "galsim")
    tests = shipped._sets(shipped.TEST_SETS, list(sources))
    vals = shipped._sets(shipped.VAL_SETS, list(sources))
    sigma_sets = shipped._sets(shipped.SIGMA_SETS, list(sources))
    # Raw answers (no curve, no clip), from which every combination below is built: the members' mean over the 8
    # views as the site computes it, their learned sigma (root mean square over the views), the truth, and the
    # spread of each member's answer over the views. The test sets are seen at every SHIFTS position too.
    raw, shifted = {}, {}
    for part, sets in (("test", tests), ("val", vals), ("sigma", sigma_sets)):
        for source, data in sets.items():
            views = view_answers(models, data.images, SHIFTS if part == "test" else ((0, 0),))
            site = views[:8]
            raw[part, source] = (
                site[..., 0].mean(axis=0),
                np.sqrt(np.mean(site[..., 1] ** 2, axis=0)),
                data.inclination.astype(np.float64),
                site[..., 0].std(axis=0),
            )
            shifted[part, source] = views[..., 0].mean(axis=0)

    def through_curves(members, sigma):
        out, out_sigma = np.array(members), np.array(sigma)
        for j, curve in enumerate(curves):
            out[:, j], out_sigma[:, j] = apply_calibration(members[:, j], sigma[:, j], curve)
        return np.clip(out, 45.0, 90.0), out_sigma

    def shipped_answer(members, sigma):
        return through_curves(members, sigma)[0]

    def sigma_inputs(parts, source):
        """(error, learned sigma rms, spread, answer) of the ensemble as it answers, over several sets."""
        members, sigma, true, view_spread = (np.concatenate([raw[p, source][k] for p in parts]) for k in range(4))
        answers, member_sigma = through_curves(members, sigma)
        view_spread = through_curves(members, view_spread)[1]  # stretched by the curve's slope, as sigma is
        mean = answers.mean(axis=1)
        views = np.sqrt(np.mean(view_spread**2, axis=1))
        return mean - true, np.sqrt(np.mean(member_sigma**2, axis=1)), answers.std(axis=1), mean, views

    errors, draws = {}, {}
    for source in sources:
        members, sigma, true, _ = raw["test", source]
        errors[source] = shipped_answer(members, sigma).mean(axis=1) - true
        seed = shipped.TEST_SETS[source][1]
        draws[source] = [training_sets.source_draw(seed, i)[1] for i in range(len(true))]

    lines = ["| galaxies (test sets) | " + " | ".join(sources) + " |", "|---|---|---|"]
    lines.append("| all | " + " | ".join(f"{_rms(errors[s]):.2f} (n {len(errors[s])})" for s in sources) + " |")
    for morphology in ("Sa", "Sb", "Sc", "Sd"):
        cells = []
        for s in sources:
            mask = np.array([d.morphology == morphology for d in draws[s]])
            cells.append(f"{_rms(errors[s][mask]):.2f} (n {mask.sum()})")
        lines.append(f"| type {morphology} | " + " | ".join(cells) + " |")
    for label, inside in (("45-80", lambda t: t < 80.0), ("80-90", lambda t: t >= 80.0)):
        cells = []
        for s in sources:
            mask = inside(raw["test", s][2])
            cells.append(f"{_rms(errors[s][mask]):.2f} (n {mask.sum()})")
        lines.append(f"| true inclination {label} deg | " + " | ".join(cells) + " |")
    fields = (
        ("q0", "intrinsic thickness q0"),
        ("mu0_r", "disk surface brightness mu0_r"),
        ("bulge_fraction", "bulge fraction"),
    )
    for field, label in fields:
        values = {s: np.array([getattr(d, field) for d in draws[s]], dtype=np.float64) for s in sources}
        lines += _quartile_rows(label, values, errors)

    member_rows = ["| source | " + " | ".join(m["name"] for m in manifest["members"]) + " | ensemble |"]
    member_rows.append("|---|" + "---|" * (len(models) + 1))
    for s in sources:
        members, sigma, true, _ = raw["test", s]
        answers = shipped_answer(members, sigma)
        alone = [f"{_rms(answers[:, j] - true):.2f}" for j in range(len(models))]
        member_rows.append(f"| {s} | " + " | ".join(alone) + f" | {_rms(errors[s]):.2f} |")

    val_members = np.concatenate([raw["val", s][0] for s in sources])
    val_true = np.concatenate([raw["val", s][2] for s in sources])
    mean_curve = fit_calibration(val_members.mean(axis=1), val_true)

    def combinations(members, sigma):
        answers = shipped_answer(members, sigma)
        weights = 1.0 / sigma**2
        one_curve = apply_calibration(members.mean(axis=1), sigma[:, 0], mean_curve)[0]
        return {
            "mean of the members through their curves (shipped)": answers.mean(axis=1),
            "weighted by each member's learned sigma": (answers * weights).sum(axis=1) / weights.sum(axis=1),
            "one curve on the members' mean": np.clip(one_curve, 45.0, 90.0),
        }

    combo = {(part, s): combinations(*raw[part, s][:2]) for part in ("val", "test") for s in sources}
    combo_rows = ["| combination | val ours | val galsim | test ours | test galsim |", "|---|---|---|---|---|"]
    for name in combo["val", "ours"]:
        cells = [f"{_rms(combo[part, s][name] - raw[part, s][2]):.3f}" for part in ("val", "test") for s in sources]
        combo_rows.append(f"| {name} | " + " | ".join(cells) + " |")

    form_rows = sigma_form_rows(
        {s: sigma_inputs(("val", "sigma"), s) for s in sources}, {s: sigma_inputs(("test",), s) for s in sources}
    )

    shift_rows = ["| test-time views | ours | galsim |", "|---|---|---|"]
    for label, answers_of in (
        ("8 rotations/flips (shipped)", lambda s: raw["test", s][0]),
        (f"8 rotations/flips x {len(SHIFTS)} positions (+/- 2 px)", lambda s: shifted["test", s]),
    ):
        cells = [
            f"{_rms(shipped_answer(answers_of(s), raw['test', s][1]).mean(axis=1) - raw['test', s][2]):.3f}"
            for s in sources
        ]
        shift_rows.append(f"| {label} | " + " | ".join(cells) + " |")

    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    print("- Command: `.venv/bin/python -m bench.bench_error_sources`")
    print(
        f"- Machine: {machine()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average at the end "
        f"{load}; wall {time.perf_counter() - started:.0f} s"
    )
    print(f"- Shipped ensemble: {', '.join(m['name'] for m in manifest['members'])}\n")
    print("RMS (deg) of the shipped ensemble by what the galaxy was (quarters: the value range, then the RMS):\n")
    print("\n".join(lines))
    print("\nEach member alone (through its curve, clipped) against the ensemble, RMS (deg) on the test sets:\n")
    print("\n".join(member_rows))
    print("\nCombining the members, RMS (deg):\n")
    print("\n".join(combo_rows))
    print(
        f"\nForms of sigma, fitted on the validation and SIGMA_SETS galaxies ({manifest['sigma_scale']} is the shipped "
        "scale a), coverage within 1 / 2 sigma (targets 68% +/- 5, 95% +/- 3):\n"
    )
    print("\n".join(form_rows))
    print("\nTest-time shifts, RMS (deg) on the test sets, each member through its curve, clipped, then the mean:\n")
    print("\n".join(shift_rows))


if __name__ == "__main__":
    main()
