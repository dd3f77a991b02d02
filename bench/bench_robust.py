"""The shipped ensemble on both galaxy sources, side by side: accuracy, bias by bin, sigma, cross-source, robustness.

    .venv/bin/python -m bench.bench_robust                  # ~15 min CPU on 2 shared cores
    .venv/bin/python -m bench.bench_robust --robust 60      # fewer stamps for the robustness table

1. Accuracy on the held-out test sets of inference.shipped (2,000 galaxies per source, 45-90 deg, seeds
   103 and 203, never seen in training): the shipped ensemble (mean of the members over the 8
   rotations/flips), the axial-ratio formula (inference.baseline) on the same prepared images.
2. Mean signed error per 5-deg bin, and sigma coverage (|error| < sigma, < 2 sigma).
3. Cross-source: a member trained on one source only, tested on the other (and on its own). The pair is
   committed in bench/cross_source (`python -m inference.shipped keep-cross-source` after training it).
4. Robustness: freshly rendered stamps of each source, each transformed once (JPEG q=50, inversion,
   stretch change, 90-deg rotation, flip, 3-px shift at the model's scale, white corners), prepared the
   way an upload is (position angle estimated); the median absolute change of the ensemble's answer.
5. The shipped rejection classifier at its default threshold: the share of held-out clean spirals of each
   source it keeps (target >= 95%) and of held-out rendered junk of each kind it rejects (target >= 90%).

    .venv/bin/python -m bench.bench_robust --only rejection   # just table 5 (its sets are small)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from bench.machine import machine

REPO = Path(__file__).resolve().parents[1]


def _baseline(images: np.ndarray) -> np.ndarray:
    from inference import baseline

    out = []
    for image in images:
        try:
            out.append(baseline.predict_inclination(image.astype(np.float32) / 255.0))
        except ValueError:
            out.append(0.0)  # a failed fit counts as a large error, as in bench_baseline
    return np.array(out)


def _row(label: str, s: dict) -> str:
    return (
        f"| {label} | {s['n']} | {s['rms']:.2f} | {s['bias']:+.2f} | {100 * s['frac_gt5']:.1f}% | "
        f"{100 * s['frac_gt10']:.2f}% |"
    )


def _plain_scores(predicted: np.ndarray, true: np.ndarray) -> dict:
    error = predicted - true
    return {
        "n": int(len(true)),
        "rms": float(np.sqrt(np.mean(error**2))),
        "bias": float(error.mean()),
        "frac_gt5": float(np.mean(np.abs(error) > 5)),
        "frac_gt10": float(np.mean(np.abs(error) > 10)),
    }


def _robust_stamps(source: str, n: int, seed: int):
    from acquisition import population
    from inference import training_sets

    for i in range(n):
        rng = np.random.default_rng([seed, i])
        draw = population.draw_population(rng, inclination=float(rng.uniform(45, 90)))
        yield training_sets.render_stamp(source, draw, seed=seed * 1000 + i, look=False)


def _transforms():
    from inference import survey_look as look

    def shift(stamp):
        # 3 px at the model's 128 px = 6 px of a 256 px stamp; the uncovered edge is sky from the far side.
        return np.roll(stamp, (6, -6), axis=(0, 1))

    return {
        "JPEG q=50": lambda s: look.jpeg_roundtrip(s, 50),
        "inversion": look.invert,
        "stretch change (gamma 0.75)": lambda s: look.adjust_gamma(s, 0.75),
        "90-deg rotation": lambda s: np.ascontiguousarray(np.rot90(s)),
        "flip": lambda s: np.ascontiguousarray(s[:, ::-1]),
        "3-px shift": shift,
        "white corners (30-deg turn)": lambda s: look.rotate_with_corners(s, 30.0, white=True),
    }


def _prepare(stamp: np.ndarray) -> np.ndarray:
    from inference import imaging, training_sets

    angle = training_sets.estimate_position_angle(stamp)
    decoded = imaging.DecodedImage(pixels=stamp.astype(np.float32) / 255.0, kind="rgb", format="bench")
    return imaging.prepare_for_model(decoded, size=128, position_angle=angle)


def _rejection_table() -> tuple[list[str], dict]:
    """Table 5: keep-rate per clean source and reject-rate per junk kind, on the held-out rejection sets."""
    from inference import shipped

    entry, model = shipped.load_rejection()
    if entry is None:
        return ["(no rejection classifier shipped)"], {}
    clean, junk = shipped.rejection_data("test")
    probabilities = shipped.rejection_probabilities(model, {**clean, **{f"junk:{k}": v for k, v in junk.items()}})
    figures = shipped.rejection_scores(
        {s: probabilities[s] for s in clean},
        {k: probabilities[f"junk:{k}"] for k in junk},
        threshold=entry["threshold"],
    )
    rows = [
        f"Rejection classifier `{entry['file']}` ({entry['architecture']}, {entry['parameters']:,} params, "
        f"{entry['epochs']} epochs), threshold {entry['threshold']}, 8-fold TTA:\n",
        "| held-out set | n | share kept | share rejected | target | |",
        "|---|---|---|---|---|---|",
    ]
    for source, rate in figures["keep_rate"].items():
        verdict = "met" if rate >= 0.95 else "missed"
        rows.append(
            f"| clean spirals, {source} | {figures['n_clean'][source]} | {100 * rate:.1f}% | "
            f"{100 * (1 - rate):.1f}% | kept >= 95% | {verdict} |"
        )
    for kind, rate in figures["reject_rate"].items():
        verdict = "met" if rate >= 0.90 else "missed"
        rows.append(
            f"| junk: {kind.replace('_', '-')} | {figures['n_junk'][kind]} | {100 * (1 - rate):.1f}% | "
            f"{100 * rate:.1f}% | rejected >= 90% | {verdict} |"
        )
    return rows, figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--robust", type=int, default=100, help="stamps per source for the robustness table")
    parser.add_argument("--out", default=str(REPO / "var" / "bench" / "robust"))
    parser.add_argument("--only", choices=["rejection"], help="run one table only")
    args = parser.parse_args()
    if args.only == "rejection":
        started, cpu_started = time.perf_counter(), time.process_time()
        rows, _ = _rejection_table()
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        load = " / ".join(f"{x:.1f}" for x in __import__("os").getloadavg())
        print("- Command: `.venv/bin/python -m bench.bench_robust --only rejection`")
        print(
            f"- Machine: {machine()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average "
            f"{load}; wall {wall:.0f} s, CPU {cpu:.0f} s\n"
        )
        print("\n".join(rows))
        return

    from inference import plots, shipped
    from inference.ensemble import load_keras_file
    from inference.metrics import fit_calibration

    started, cpu_started = time.perf_counter(), time.process_time()
    manifest, models = shipped.load_members()
    scale, calibrations = manifest["sigma_scale"], shipped.calibrations_of(manifest)
    tests = shipped._sets(shipped.TEST_SETS, ["ours", "galsim"])

    lines = [
        "| predictor | n | RMS (deg) | bias (deg) | > 5 deg off | > 10 deg off |",
        "|---|---|---|---|---|---|",
    ]
    results: dict = {"sigma_scale": scale, "sources": {}}
    pictures: dict[str, bytes] = {}
    bias_rows, coverage_rows, curve_rows = [], [], []
    for source, data in tests.items():
        # finish() stored the answers of these exact files (sha256) on these sets: reuse, CPU is scarce.
        prediction = shipped.cached_test_prediction(manifest, source) or shipped.predict(
            models, data.images, sigma_scale=scale, calibrations=calibrations
        )
        ens = shipped.scores(prediction, data.inclination)
        formula = _baseline(data.images)
        fitted = formula > 0
        base = _plain_scores(formula, data.inclination)
        base_fitted = _plain_scores(formula[fitted], data.inclination[fitted])
        results["sources"][source] = {"ensemble": ens, "baseline": base, "baseline_fitted": base_fitted}
        lines.append(_row(f"**{source}: shipped ensemble ({len(models)} members, 8-fold TTA)**", ens))
        lines.append(_row(f"{source}: axial-ratio formula, same prepared images (a failed fit counts as 0)", base))
        lines.append(
            _row(f"{source}: axial-ratio formula, only the {100 * fitted.mean():.0f}% it could fit", base_fitted)
        )
        pictures[f"predicted-vs-true-{source}.png"] = plots.predicted_vs_true(
            data.inclination,
            prediction.inclination,
            baseline=formula,
            label="shipped ensemble (members' mean, 8-fold TTA)",
            title=f"{source}: ensemble RMS {ens['rms']:.2f} deg, formula {base['rms']:.2f} deg",
        )
        ens_fitted = _plain_scores(prediction.inclination[fitted], data.inclination[fitted])
        lines.append(_row(f"{source}: shipped ensemble on those same fitted images", ens_fitted))
        bias_rows.append(f"| {source} | " + " | ".join(f"{b['bias']:+.2f}" for b in ens["bins"].values()) + " |")
        # The same members without their calibration curves: what the curves buy (bias) and cost (RMS).
        without = shipped.scores(shipped.predict(models, data.images, sigma_scale=scale), data.inclination)
        for label, figures in (("without", without), ("with", ens)):
            worst = max(figures["bins"].items(), key=lambda kv: abs(kv[1]["bias"]))
            curve_rows.append(
                f"| {source} | {label} | {figures['rms']:.2f} | {worst[1]['bias']:+.2f} ({worst[0]}) | "
                f"{100 * figures['within_1_sigma']:.1f}% / {100 * figures['within_2_sigma']:.1f}% |"
            )
        results["sources"][source]["ensemble_without_curves"] = without
        coverage_rows.append(
            f"| {source} | {100 * ens['within_1_sigma']:.1f}% | {100 * ens['within_2_sigma']:.1f}% | "
            f"{ens['median_sigma']:.2f} |"
        )

    cross_rows = []
    for trained in ("ours", "galsim"):
        # The committed pair (`keep-cross-source`), else one trained here and not yet kept.
        name = f"{trained}_only_vgg_a"
        path = shipped.WORK_DIR / name / f"{name}.keras"
        model = shipped.load_cross_source(name)
        if model is None and path.exists():
            model = load_keras_file(str(path))
        if model is None:
            cross_rows.append(f"| {trained} only | (not trained) | |")
            continue
        # Debiased and calibrated like the shipped members, but on its own source's validation galaxies only:
        # nothing of the other source reaches it before the test.
        own = shipped._sets(shipped.VAL_SETS, [trained])[trained]
        own_true = own.inclination.astype(np.float64)
        shipped.debias(model, own.images, own_true)
        curve = [fit_calibration(shipped.predict([model], own.images, clip=False).inclination, own_true)]
        row = []
        for tested in ("ours", "galsim"):
            p = shipped.predict([model], tests[tested].images, calibrations=curve)
            s = _plain_scores(p.inclination, tests[tested].inclination)
            results.setdefault("cross_source", {})[f"{trained}->{tested}"] = s
            row.append(f"{s['rms']:.2f} ({100 * s['frac_gt10']:.1f}% > 10)")
        cross_rows.append(f"| {trained} only (vgg_a, {model.count_params():,} params) | {row[0]} | {row[1]} |")

    transforms = _transforms()
    robust_rows = []
    changes: dict[str, list[float]] = {name: [] for name in transforms}
    for source, seed in (("ours", 9101), ("galsim", 9201)):
        stamps = list(_robust_stamps(source, args.robust, seed))
        base = shipped.predict(models, np.stack([_prepare(s) for s in stamps]), calibrations=calibrations).inclination
        per_source = {}
        for name, transform in transforms.items():
            moved = np.stack([_prepare(transform(s)) for s in stamps])
            moved = shipped.predict(models, moved, calibrations=calibrations).inclination
            delta = np.abs(moved - base)
            changes[name] += list(delta)
            per_source[name] = float(np.median(delta))
        results.setdefault("robustness", {})[source] = per_source
    for name in transforms:
        o, g = results["robustness"]["ours"][name], results["robustness"]["galsim"][name]
        robust_rows.append(f"| {name} | {o:.2f} | {g:.2f} | {'met' if max(o, g) <= 0.5 else 'missed'} |")

    rejection_rows, results["rejection"] = _rejection_table()
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    load = " / ".join(f"{x:.1f}" for x in __import__("os").getloadavg())
    bins = list(next(iter(results["sources"].values()))["ensemble"]["bins"])
    text = "\n".join(
        [
            f"- Command: `.venv/bin/python -m bench.bench_robust --robust {args.robust}`",
            f"- Machine: {machine()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average at the end "
            f"{load} (shared, not quiet); wall {wall / 60:.1f} min, CPU {cpu / 60:.1f} min",
            f"- Shipped ensemble: {', '.join(m['name'] for m in manifest['members'])}; sigma scale {scale}",
            "",
            "Accuracy, held-out galaxies of each source (45-90 deg):\n",
            *lines,
            "",
            "Mean signed error (deg) per 5-deg bin of the true inclination:\n",
            "| source | " + " | ".join(bins) + " |",
            "|---|" + "---|" * len(bins),
            *bias_rows,
            "",
            "Sigma coverage (target 68% +/- 5% within 1 sigma, 95% +/- 3% within 2 sigma):\n",
            "| source | within 1 sigma | within 2 sigma | median sigma (deg) |",
            "|---|---|---|---|",
            *coverage_rows,
            "",
            "The members' calibration curves on and off (same members and galaxies; sigma scale fitted with them):\n",
            "| source | curves | RMS | worst bin bias | within 1 / 2 sigma |",
            "|---|---|---|---|---|",
            *curve_rows,
            "",
            "Cross-source (one member trained on one source only, debiased on that source's validation galaxies; "
            "RMS in deg, share off by > 10 deg):\n",
            "| trained on | tested on ours | tested on galsim |",
            "|---|---|---|",
            *cross_rows,
            "",
            f"Robustness: median |change| of the ensemble's answer (deg), {args.robust} fresh stamps per source:\n",
            "| transform | ours | galsim | <= 0.5 deg |",
            "|---|---|---|---|",
            *robust_rows,
            "",
            *rejection_rows,
        ]
    )
    print("\n" + text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "robust.md").write_text(text + "\n")
    (out / "robust.json").write_text(json.dumps(results, indent=1))
    for name, png in pictures.items():
        (out / name).write_bytes(png)
    print(f"Plots of predicted against true inclination: {', '.join(str(out / name) for name in pictures)}")


if __name__ == "__main__":
    main()
