"""Ensemble accuracy on held-out synthetic galaxies, next to the axial-ratio baseline on the same images.

    .venv/bin/python -m bench.bench_accuracy                       # defaults below (~40 min on 2 shared cores)
    .venv/bin/python -m bench.bench_accuracy --train 1500 --test 500 --minutes-per-member 3   # quick look

Trains the three regression members (vgg_a, vgg_b, vgg_c) on synthetic galaxies rendered with one
seed, validates on a second seed, and tests on `--test` galaxies rendered with a third seed
(inclinations uniform over 45-90 deg). Every image goes through inference.imaging.prepare_for_model
(rotated by the known position angle, as stored galaxies are by theirs). The axial-ratio baseline
(inference.baseline.predict_inclination) runs on the same test galaxies: on the prepared 128 px colour
image the CNN sees, and on the full-resolution i band (its best case). Also reports training images
per second per epoch. The trained members are saved to var/bench/models/ for bench_inference.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from bench.machine import machine
from bench.report import metrics_row

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=3000)
    parser.add_argument("--val", type=int, default=300)
    parser.add_argument("--test", type=int, default=2000)
    parser.add_argument("--render-size", type=int, default=256, help="render size of the training images")
    parser.add_argument("--test-render-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--minutes-per-member", type=float, default=7.0)
    parser.add_argument("--members", default="vgg_a,vgg_b,vgg_c")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--cache", default=str(REPO / "var" / "bench" / "synthetic"))
    parser.add_argument("--out", default=str(REPO / "var" / "bench" / "models"))
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--reuse", action="store_true", help="keep members already saved in --out (same seeds)")
    args = parser.parse_args()

    from tqdm import tqdm

    from inference import keras_training as training
    from inference import metrics
    from inference import training_sets as synthetic_data
    from inference.architectures import build_regression_model

    def bar(desc: str, total: int):
        progress = tqdm(total=total, desc=desc, unit="img")
        return progress, lambda done, n: progress.update(done - progress.n)

    started = time.perf_counter()
    sets = {}
    for name, n, seed, rsize, base in (
        ("train", args.train, 101, args.render_size, False),
        ("val", args.val, 202, args.render_size, False),
        ("test", args.test, 303, args.test_render_size, True),
    ):
        progress, cb = bar(f"render {name}", n)
        sets[name] = synthetic_data.cached_set(
            args.cache, n, seed=seed, render_size=rsize, with_baseline=base, processes=args.processes, progress=cb
        )
        progress.close()
    render_s = time.perf_counter() - started
    train, val, test = sets["train"], sets["val"], sets["test"]

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    member_preds, member_rows, fit_rows = {}, [], []
    for arch in args.members.split(","):
        saved = out / f"bench_{arch}.keras"
        if args.reuse and saved.exists():
            import keras

            model = keras.saving.load_model(saved, compile=False)
            pred = np.clip(training.predict_array(model, test.images), 45, 90)
            member_preds[arch] = pred
            member_rows.append(metrics_row(f"member {arch}", metrics.regression_metrics(pred, test.inclination)))
            fit_rows.append(f"| {arch} | {model.count_params():,} | (trained by an earlier run, reused) | | |")
            continue
        model = build_regression_model(arch, input_size=train.images.shape[1], name=f"bench_{arch}")
        progress = tqdm(total=args.epochs, desc=f"train {arch}", unit="epoch")
        result = training.fit_member(
            model,
            kind="regression",
            train=training.Split(train.images, train.inclination),
            val=training.Split(val.images, val.inclination),
            epochs=args.epochs,
            batch_size=args.batch_size,
            patience=6,
            max_seconds=args.minutes_per_member * 60,
            on_epoch=lambda e, n, logs, p=progress: (
                p.update(1),
                p.set_postfix(val_rms=f"{logs.get('val_rms', 0):.2f}"),
            ),
        )
        progress.close()
        model.save(out / f"bench_{arch}.keras")
        pred = np.clip(training.predict_array(model, test.images), 45, 90)
        member_preds[arch] = pred
        member_rows.append(metrics_row(f"member {arch}", metrics.regression_metrics(pred, test.inclination)))
        fit_rows.append(
            f"| {arch} | {model.count_params():,} | {result.epochs} | {result.images_per_second:.0f} | "
            f"{min(result.history.get('val_rms', [float('nan')])):.2f} |"
        )

    stacked = np.stack(list(member_preds.values()))
    median = np.median(stacked, axis=0)
    ens = metrics.regression_metrics(median, test.inclination)
    base_prep = metrics.regression_metrics(test.baseline_prepared, test.inclination)
    base_i = metrics.regression_metrics(test.baseline_i, test.inclination)
    spread = np.std(stacked, axis=0)
    off10 = np.abs(median - test.inclination) > 10
    total_s = time.perf_counter() - started

    lines = [
        f"### Accuracy on {len(test)} held-out synthetic galaxies (45-90 deg)\n",
        f"- Command: `.venv/bin/python -m bench.bench_accuracy --train {args.train} --test {args.test} "
        f"--minutes-per-member {args.minutes_per_member:g} --epochs {args.epochs}`",
        f"- Machine: {machine()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"render {render_s / 60:.1f} min, total {total_s / 60:.1f} min",
        f"- Training {len(train)} galaxies (seed 101, rendered at {args.render_size} px), validation {len(val)} "
        f"(seed 202), test seed 303 rendered at {args.test_render_size} px; all prepared to "
        f"{train.images.shape[1]} px by inference.imaging.prepare_for_model.\n",
        "| predictor | n | RMS (deg) | MAE (deg) | bias (deg) | > 5 deg off | > 10 deg off |",
        "|---|---|---|---|---|---|---|",
        metrics_row(f"**ensemble median ({len(member_preds)} members)**", ens),
        *member_rows,
        metrics_row("axial-ratio baseline, same prepared image", base_prep),
        metrics_row("axial-ratio baseline, full-res i band", base_i),
        "",
        "Ensemble RMS per bin: "
        + ", ".join(f"{k}: {v['rms']:.2f}" for k, v in ens["bins"].items())
        + "; baseline (prepared): "
        + ", ".join(f"{k}: {v['rms']:.2f}" for k, v in base_prep["bins"].items()),
        "",
        f"Ensemble spread > 5 deg on {100 * np.mean(spread > 5):.1f}% of the test galaxies; those are off by "
        f"> 10 deg {100 * np.mean(off10[spread > 5]) if (spread > 5).any() else 0:.1f}%"
        f" of the time vs {100 * np.mean(off10[spread <= 5]):.1f}% for the rest.",
        "",
        "Training throughput (images per second per epoch, incl. augmentation and the validation pass):\n",
        "| member | parameters | epochs | images/s | best val RMS (deg) |",
        "|---|---|---|---|---|",
        *fit_rows,
    ]
    text = "\n".join(lines)
    print("\n" + text)
    (out / "accuracy.md").write_text(text + "\n")
    (out / "accuracy.json").write_text(
        json.dumps({"ensemble": ens, "baseline_prepared": base_prep, "baseline_i": base_i}, indent=1)
    )


if __name__ == "__main__":
    main()
