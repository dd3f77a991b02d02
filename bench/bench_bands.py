"""Colour-only, bands-only and combined members on the same held-out synthetic galaxies (issue 13, item 4).

    nice -n 19 .venv/bin/python -m bench.bench_bands                     # defaults below (<= 30 min, 1 thread)
    nice -n 19 .venv/bin/python -m bench.bench_bands --train 600 --test 200 --minutes-per-member 2   # quick look

Every galaxy is rendered once (acquisition.renderer, SDSS-like, seeds 111/222/333 for train/val/test) and
prepared two ways by inference.imaging.prepare_for_model, both rotated by the known position angle:
- colour: the SDSS-like composite saved as a quality-90 JPEG and decoded (8 bits, the stretch fixed by the
  composite), as volunteers and the colour members see it;
- bands: the float g, r, i planes ("flux" mode: sky-subtracted, in units of the sky noise, not clipped), read
  by a member whose first layer is a learnable-softening asinh (inference.architectures.AsinhScaling).
The same architecture is trained once per input with the same budget, seeds and augmentation (except the
colour augmentation's clip to [0, 1]); "combined" is the mean of the two members' answers, as the ensemble's
median of two members is. Threads are pinned to 1 (OMP and TensorFlow) so the run shares the machine politely.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"):
    os.environ[_var] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.machine import machine  # noqa: E402
from bench.report import metrics_row  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=1200)
    parser.add_argument("--val", type=int, default=150)
    parser.add_argument("--test", type=int, default=500)
    parser.add_argument("--size", type=int, default=64, help="model input (px); the platform's members use 128")
    parser.add_argument("--render-size", type=int, default=128)
    parser.add_argument("--architecture", default="vgg_a")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--minutes-per-member", type=float, default=8.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--patience", type=int, default=10, help="early-stopping patience (epochs without a better val loss)"
    )
    parser.add_argument(
        "--reuse-color",
        action="store_true",
        help="load the colour member a previous run saved in --out (same data and seeds) instead of training it",
    )
    parser.add_argument("--cache", default=str(REPO / "var" / "bench" / "synthetic"))
    parser.add_argument("--out", default=str(REPO / "var" / "bench" / "bands"))
    args = parser.parse_args()

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)

    from inference import keras_training as training
    from inference import metrics
    from inference import training_sets as synthetic_data
    from inference.architectures import build_regression_model

    started = time.perf_counter()
    render = {"size": args.size, "render_size": args.render_size, "processes": 1}
    sets = {}
    for key, n, seed in (("train", args.train, 111), ("val", args.val, 222), ("test", args.test, 333)):
        t0 = time.perf_counter()
        sets[key] = synthetic_data.cached_paired_set(args.cache, n, seed=seed, **render)
        print(f"{key}: {n} galaxies rendered/prepared in {time.perf_counter() - t0:.0f} s", flush=True)
    render_s = time.perf_counter() - started

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    predictions, fits = {}, {}
    for mode in ("color", "flux"):

        def arrays(key, mode=mode):
            return sets[key].color.images if mode == "color" else sets[key].flux

        saved = out / f"{mode}.keras"
        if mode == "color" and args.reuse_color and saved.exists():
            import keras

            model = keras.saving.load_model(saved, compile=False)
            fits[mode] = {"reused": str(saved.relative_to(REPO)) if saved.is_relative_to(REPO) else str(saved)}
            predictions[mode] = np.clip(training.predict_array(model, arrays("test")), 45, 90)
            continue

        model = build_regression_model(
            args.architecture, input_size=args.size, input_mode=mode, name=f"bands_bench_{mode}"
        )
        t0 = time.perf_counter()
        result = training.fit_member(
            model,
            kind="regression",
            train=training.Split(arrays("train"), sets["train"].color.inclination),
            val=training.Split(arrays("val"), sets["val"].color.inclination),
            epochs=args.epochs,
            batch_size=args.batch_size,
            seed=7,
            patience=args.patience,
            max_seconds=args.minutes_per_member * 60,
            input_mode=mode,
            on_epoch=lambda e, n, logs, mode=mode: print(
                f"  {mode} epoch {e}: val RMS {logs.get('val_rms', float('nan')):.2f} deg", flush=True
            ),
        )
        fits[mode] = {"epochs": result.epochs, "seconds": round(time.perf_counter() - t0, 1)}
        test = arrays("test")
        predictions[mode] = np.clip(
            training.predict_array(model, test.astype(np.float32) if mode == "flux" else test), 45, 90
        )
        model.save(out / f"{mode}.keras")
        if mode == "flux":
            softening = model.get_layer("asinh_scaling").get_weights()[0]
            fits[mode]["learned_softening_sigma"] = [round(float(np.log1p(np.exp(w)) + 0.01), 2) for w in softening]

    truth = sets["test"].color.inclination
    rows = {
        "colour only (8-bit JPEG composite)": metrics.regression_metrics(predictions["color"], truth),
        "bands only (float g, r, i, learned asinh)": metrics.regression_metrics(predictions["flux"], truth),
        "combined (mean of the two)": metrics.regression_metrics(
            (predictions["color"] + predictions["flux"]) / 2, truth
        ),
    }
    colour_rms, bands_rms = (
        rows["colour only (8-bit JPEG composite)"]["rms"],
        rows["bands only (float g, r, i, learned asinh)"]["rms"],
    )
    gain = 1 - bands_rms / colour_rms
    total = time.perf_counter() - started
    load = os.getloadavg()

    lines = [
        f"Machine: {machine()}, load average {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f} at the end; "
        f"{total / 60:.1f} min wall in total (rendering {render_s / 60:.1f} min).",
        f"Data: {args.train} train / {args.val} val / {args.test} test galaxies, rendered at {args.render_size} px, "
        f"prepared to {args.size} px; member {args.architecture}, at most {args.minutes_per_member:g} min each.",
        "",
        "| input | n | RMS (deg) | MAE (deg) | bias (deg) | > 5 deg off | > 10 deg off |",
        "|---|---|---|---|---|---|---|",
        *[metrics_row(label, m) for label, m in rows.items()],
        "",
        f"Bands vs colour: RMS {bands_rms:.2f} vs {colour_rms:.2f} deg, {100 * gain:+.1f}% "
        f"({'target >= 10% met' if gain >= 0.10 else 'target >= 10% NOT met'}).",
        f"Fits: {json.dumps(fits)}",
    ]
    for label, pred in (("colour", predictions["color"]), ("bands", predictions["flux"])):
        per_bin = metrics.regression_metrics(pred, truth)["bins"]
        lines.append(f"{label} RMS per bin: " + ", ".join(f"{k}: {v['rms']:.2f}" for k, v in per_bin.items()))
    report = "\n".join(lines)
    (out / "bands.md").write_text(report + "\n")
    print("\n" + report)


if __name__ == "__main__":
    main()
