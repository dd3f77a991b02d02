"""One training run's work (the Django orchestration): data, members, evaluation on the fixed test set, and
the decision to promote. The Keras fitting is inference.keras_training; the run's life (one live at a time,
claimed, re-queued) and what it writes (model versions, the ensemble swap) are inference.services.training_runs.

`execute` stores the model files and plots under models/run-<id>/ and returns a TrainingResult; nothing
reaches the registry until the caller records that result in one transaction. A run killed half way leaves
at most files in that folder, which the retry (or the failure handler) deletes first (`discard_partial`).
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from acquisition.models import GalaxyImage
from inference import architectures, baseline, imaging, metrics, plots
from inference import ensemble as ensemble_holder
from inference import keras_training as training
from inference import training_sets as synthetic_data
from inference.architectures import POOLED_TWIN, with_haar_stem
from inference.models import ModelVersion, TrainingRun
from inference.services import band_training, curves
from inference.services.predictions import model_input
from labeling.models import ConsensusLabel

logger = logging.getLogger(__name__)

PROFILES = {
    # Retraining on labels plus synthetic galaxies (about half an hour on 2 cores).
    "standard": {
        # The shipped members' architectures, so a retraining fine-tunes them.
        "members": ["vgg_a_haar", "vgg_b_haar", "vgg_c_haar"],
        # The shipped classifier's architecture, so a retraining fine-tunes it.
        "rejection": "vgg_s",
        "n_synthetic": 2500,
        # 450: every 5-deg bin then holds the 30 galaxies (curves.CURVE_MIN_PER_BIN) a member's own curve needs.
        "n_val": 450,
        "n_test": 400,
        "n_face_on": 600,
        "epochs": 30,
        "minutes_per_member": 7.0,
        # Starting from the active members' weights: a smaller step and fewer epochs keep what they know.
        "finetune_epochs": 10,
        "finetune_learning_rate": 3e-4,
        "batch_size": 32,
        "render_size": 256,
        "subset": 0.9,
        # Beside the colour members: members reading the float g, r, i FITS stamps (band_training).
        "flux_members": ["vgg_a"],
    },
    # A fresh site's first ensemble in a few minutes (manage.py pretrain_ensemble).
    "quick": {
        # The shipped members' architectures, so a retraining fine-tunes them.
        "members": ["vgg_a_haar", "vgg_b_haar", "vgg_c_haar"],
        "rejection": "vgg_s",
        "n_synthetic": 1000,
        "n_val": 150,
        "n_test": 150,
        "n_face_on": 200,
        "epochs": 12,
        "minutes_per_member": 2.0,
        "finetune_epochs": 4,
        "finetune_learning_rate": 3e-4,
        # Small batches: more updates in the few minutes there are (the members are far from converged).
        "batch_size": 16,
        "render_size": 256,
        "subset": 0.9,
    },
    # Tests: a handful of tiny images, one epoch.
    "tiny": {
        "members": ["tiny", "tiny", "tiny"],
        "rejection": "tiny",
        "n_synthetic": 16,
        "n_val": 6,
        "n_test": 6,
        "n_face_on": 6,
        "epochs": 1,
        "minutes_per_member": None,
        "finetune_epochs": 1,
        "finetune_learning_rate": 3e-4,
        "batch_size": 8,
        "render_size": 64,
        "subset": 0.9,
        "processes": 1,
    },
}
SEED_TRAIN, SEED_VAL, SEED_TEST, SEED_FACE_ON = 101, 202, 303, 404


def config_for(run: TrainingRun) -> dict:
    profile = run.config.get("profile") or settings.GIZ_TRAINING_PROFILE
    config = {**PROFILES[profile], **run.config, "profile": profile}
    config.setdefault("input_size", settings.GIZ_MODEL_INPUT_SIZE)
    return config


def run_folder(run: TrainingRun) -> str:
    return f"{settings.GIZ_MODELS_DIR}/run-{run.pk}"


def discard_partial(run: TrainingRun) -> None:
    """Delete what an interrupted attempt of this run left: files, and candidate rows (never active ones)."""
    ModelVersion.objects.filter(training_run=run, status=ModelVersion.Status.CANDIDATE).exclude(
        training_run__status=TrainingRun.Status.SUCCEEDED
    ).delete()
    folder = run_folder(run)
    try:
        _, files = default_storage.listdir(folder)
    except (FileNotFoundError, NotImplementedError):
        return
    for name in files:
        default_storage.delete(f"{folder}/{name}")


@dataclass(frozen=True)
class TrainedModel:
    """One stored member of a finished run, as the registry will record it."""

    name: str
    kind: str  # a ModelVersion.Kind value
    architecture: str
    file: str  # its path in storage
    metrics: dict
    plots: dict
    input_mode: str = ""  # "" = the run's (TrainingResult.input_mode); "flux" for the FITS-stamp members
    initialized_from: int | None = None  # the model version whose weights training started from


@dataclass(frozen=True)
class StartingPoint:
    """Where one new member's training starts: an active version's weights, or scratch (and why)."""

    version: ModelVersion | None
    reason: str
    # The Haar architecture a pooled version is rebuilt as before fine-tuning (architectures.with_haar_stem).
    rebuild_as: str | None = None

    def describe(self) -> dict:
        if self.version is None:
            return {"from": None, "from_id": None, "reason": self.reason}
        return {"from": self.version.name, "from_id": self.version.pk, "reason": self.reason}


def starting_points(*, kind: str, architectures: list[str], size: int, mode: str, scratch: bool) -> list[StartingPoint]:
    """For each new member (by architecture), the active version of the same kind, architecture, output and
    input it fine-tunes, else scratch with the reason. Repeated architectures take their active versions in
    turn (by name), so three "tiny" members start from three different active ones when there are three."""
    if scratch:
        return [StartingPoint(None, "from scratch: the run asked for it")] * len(architectures)
    active = ModelVersion.objects.filter(
        status=ModelVersion.Status.ACTIVE,
        kind=kind,
        format=ModelVersion.Format.KERAS,
        output=ModelVersion.Output.DEGREES,
        input_size=size,
        input_mode=mode,
    ).order_by("name")
    by_arch: dict[str, list[ModelVersion]] = {}
    for version in active:
        by_arch.setdefault(version.architecture, []).append(version)
    seen: dict[str, int] = {}
    out = []
    for arch in architectures:
        candidates = by_arch.get(arch, [])
        k = seen.get(arch, 0)
        seen[arch] = k + 1
        # A site whose active members predate the Haar stem: their pooled twins, rebuilt, rather than scratch.
        twins = by_arch.get(POOLED_TWIN.get(arch, ""), []) if not candidates else []
        if candidates:
            out.append(StartingPoint(candidates[k % len(candidates)], "fine-tuned from the active member"))
        elif twins:
            reason = "fine-tuned from the active member, rebuilt with the Haar stem"
            out.append(StartingPoint(twins[k % len(twins)], reason, rebuild_as=arch))
        else:
            out.append(
                StartingPoint(
                    None, f"from scratch: no active {kind} member of architecture {arch} with {size} px {mode} input"
                )
            )
    return out


def _initial_model(start: StartingPoint, build, *, size: int):
    """The start's weights loaded (a copy of the active file), else a fresh model from `build()`.

    A file that cannot be loaded or takes another input shape falls back to scratch, said in the reason.
    """
    if start.version is None:
        return build(), start
    try:
        model = ensemble_holder.load_from_storage(start.version.file.name)
    except (OSError, ValueError) as exc:
        return build(), StartingPoint(None, f"from scratch: {start.version.name} could not be loaded ({exc})")
    if tuple(model.input_shape[1:]) != (size, size, 3):
        return build(), StartingPoint(None, f"from scratch: {start.version.name} takes another input shape")
    if start.rebuild_as:
        model = with_haar_stem(model, start.rebuild_as)
    return model, start


@dataclass(frozen=True)
class TrainingResult:
    """What a run produced: stored models and plots, figures, and whether they beat the active ensemble."""

    models: list[TrainedModel]
    input_size: int
    input_mode: str
    promote: bool
    message: str
    history: dict
    metrics: dict
    plots: dict
    n_labels: int
    n_synthetic: int
    # Active versions that stay in the ensemble beside the new ones when it is promoted (an adaptation keeps the
    # members it did not fine-tune: the rejection classifier, band members).
    kept_version_ids: tuple[int, ...] = ()


class _Progress:
    """Maps stage progress to one overall fraction for `callback(fraction, message)`."""

    def __init__(self, callback, stages: list[tuple[str, float]]):
        self.callback = callback
        total = sum(w for _, w in stages)
        self.starts, acc = {}, 0.0
        for name, weight in stages:
            self.starts[name] = (acc / total, weight / total)
            acc += weight

    def __call__(self, stage: str, fraction: float, message: str) -> None:
        start, width = self.starts[stage]
        value = start + width * min(max(fraction, 0.0), 1.0)
        if self.callback:
            self.callback(value, message)


def _labelled(run: TrainingRun, size: int, mode: str, *, survey=None, limit: int | None = None):
    """Consensus-labelled galaxies with a stored colour image, prepared; split by galaxy (pgc hash).

    With `survey`, only that survey's galaxies and images (an adaptation, or the figures per survey); `limit`
    takes at most that many labels (by galaxy id, so the same ones each time).
    """
    labels = ConsensusLabel.objects.select_related("galaxy").order_by("galaxy_id")
    if run.labels_cutoff is not None:
        labels = labels.filter(created_at__lte=run.labels_cutoff)
    images = GalaxyImage.objects.filter(band=GalaxyImage.Band.COLOR)
    if survey is not None:
        labels = labels.filter(galaxy__survey=survey)
        images = images.filter(survey=survey)
    if limit is not None:
        labels = labels[:limit]
    images = {
        i.galaxy_id: i for i in images.filter(galaxy_id__in=labels.values("galaxy_id")).only("id", "galaxy_id", "file")
    }
    arrays, inclination, rejected, pgcs = [], [], [], []
    for label in labels if limit is not None else labels.iterator(chunk_size=500):
        image = images.get(label.galaxy_id)
        if image is None:
            continue
        try:
            with image.file.open("rb") as f:
                decoded, angle = model_input(f.read(), size=size, position_angle=label.galaxy.position_angle)
            prepared = imaging.prepare_for_model(decoded, size=size, mode=mode, position_angle=angle)
        except (imaging.ImageError, OSError) as exc:
            logger.warning("Skipping %s in training: %s", label.galaxy, exc)
            continue
        arrays.append(np.round(prepared * 255).astype(np.uint8))
        accepted = label.status == ConsensusLabel.Status.ACCEPTED
        inclination.append(label.inclination if accepted else np.nan)
        rejected.append(0.0 if accepted else 1.0)
        pgcs.append(label.galaxy.pgc)
    if not arrays:
        empty = np.zeros((0, size, size, 3), np.uint8)
        return empty, np.zeros(0, np.float32), np.zeros(0, np.float32), np.array([], dtype=str)
    split = training.split_by_key(pgcs)
    return np.stack(arrays), np.array(inclination, np.float32), np.array(rejected, np.float32), split


def execute(run: TrainingRun, *, progress_callback=None) -> TrainingResult:
    """Train, evaluate and store the files; promote (in the result) if no worse than the active ensemble."""
    if run.trigger == TrainingRun.Trigger.ADAPTATION:
        # Imported here: the adaptation builds on this module's pieces (data, folders, results).
        from inference.services.adaptation import execute_adaptation

        return execute_adaptation(run, progress_callback=progress_callback)
    config = config_for(run)
    size, mode = int(config["input_size"]), "color"
    members = list(config["members"])
    flux_members = list(config.get("flux_members") or [])
    stages = (
        [("data", 2.0)]
        + [(f"member{i}", 3.0) for i in range(len(members))]
        + [("rejection", 2.0), ("flux", 3.0 * len(flux_members) or 0.01), ("evaluate", 1.0)]
    )
    progress = _Progress(progress_callback, stages)
    discard_partial(run)  # a retried run starts clean
    cache = Path(settings.DATA_DIR) / "cache" / "synthetic"
    processes = int(config.get("processes") or os.cpu_count() or 1)
    render = {"size": size, "render_size": int(config["render_size"]), "processes": processes}

    synth = {}
    for i, (key, n, seed, inc) in enumerate(
        [
            ("train", config["n_synthetic"], SEED_TRAIN, (45.0, 90.0)),
            ("val", config["n_val"], SEED_VAL, (45.0, 90.0)),
            ("test", config["n_test"], SEED_TEST, (45.0, 90.0)),
            ("face_on", config["n_face_on"], SEED_FACE_ON, (5.0, 44.0)),
        ]
    ):
        synth[key] = synthetic_data.cached_set(
            cache,
            int(n),
            seed=seed,
            inclination_range=inc,
            with_baseline=(key == "test"),
            progress=lambda d, t, k=key, i=i: progress("data", (i + d / max(t, 1)) / 4, f"Rendering {k}: {d}/{t}"),
            **render,
        )
    lab_x, lab_inc, lab_rej, lab_split = _labelled(run, size, mode)
    progress("data", 1.0, f"{len(lab_inc)} labelled galaxies, {config['n_synthetic']} synthetic")

    accepted = ~np.isnan(lab_inc)
    reg_train_mask = (lab_split == "train") & accepted
    reg_val_mask = (lab_split == "val") & accepted
    reg_test_mask = (lab_split == "test") & accepted
    train_x = np.concatenate([synth["train"].images, lab_x[reg_train_mask]])
    train_y = np.concatenate([synth["train"].inclination, lab_inc[reg_train_mask]])
    val_x = np.concatenate([synth["val"].images, lab_x[reg_val_mask]])
    val_y = np.concatenate([synth["val"].inclination, lab_inc[reg_val_mask]])
    test_x = np.concatenate([synth["test"].images, lab_x[reg_test_mask]])
    test_y = np.concatenate([synth["test"].inclination, lab_inc[reg_test_mask]])
    test_is_label = np.concatenate([np.zeros(len(synth["test"]), bool), np.ones(int(reg_test_mask.sum()), bool)])

    # Retraining continues from the active members' weights (fine-tuning), scratch only where none fits.
    scratch = bool(config.get("from_scratch"))
    starts = starting_points(
        kind=ModelVersion.Kind.REGRESSION, architectures=members, size=size, mode=mode, scratch=scratch
    )
    rej_start = starting_points(
        kind=ModelVersion.Kind.REJECTION, architectures=[config["rejection"]], size=size, mode=mode, scratch=scratch
    )[0]

    def schedule(start: StartingPoint) -> dict:
        if start.version is None:
            return {"epochs": int(config["epochs"]), "learning_rate": 2e-3}
        return {"epochs": int(config["finetune_epochs"]), "learning_rate": float(config["finetune_learning_rate"])}

    rng = np.random.default_rng(run.pk)
    trained, histories, fits, initialization = [], {}, {}, {}
    for i, arch in enumerate(members):
        # Each member sees its own random subset of the training galaxies (and its own seed).
        keep = rng.random(len(train_y)) < float(config["subset"]) if len(members) > 1 else np.ones(len(train_y), bool)
        name = f"regression-{arch}-{i}-run{run.pk}"
        model, start = _initial_model(
            starts[i],
            lambda arch=arch, name=name: architectures.build_regression_model(
                arch, input_size=size, name=name.replace("-", "_")
            ),
            size=size,
        )
        result = training.fit_member(
            model,
            kind="regression",
            train=training.Split(train_x[keep], train_y[keep]),
            val=training.Split(val_x, val_y),
            batch_size=int(config["batch_size"]),
            seed=run.pk * 100 + i,
            max_seconds=config["minutes_per_member"] * 60 if config["minutes_per_member"] else None,
            on_epoch=lambda e, n, logs, i=i, name=name: progress(
                f"member{i}", e / n, f"{name}: epoch {e}/{n}, val loss {logs.get('val_loss', float('nan')):.2f}"
            ),
            **schedule(start),
        )
        progress(f"member{i}", 1.0, f"{name}: done ({result.epochs} epochs)")
        trained.append((name, arch, model, start))
        histories[name] = result.history
        fits[name] = {"epochs": result.epochs, "images_per_second": result.images_per_second, **schedule(start)}
        initialization[name] = start.describe()

    # The rejection classifier: accepted galaxies against face-on ones and junk (+ labelled rejections).
    rej_x, rej_y = synthetic_data.rejection_set(synth["train"], synth["face_on"], seed=run.pk)
    rej_x = np.concatenate([rej_x, lab_x[lab_split != "test"]])
    rej_y = np.concatenate([rej_y, lab_rej[lab_split != "test"]])
    cut = max(1, len(rej_y) // 10)
    rej_name = f"rejection-{config['rejection']}-run{run.pk}"
    rej_model, rej_start = _initial_model(
        rej_start,
        lambda: architectures.build_rejection_model(
            config["rejection"], input_size=size, name=rej_name.replace("-", "_")
        ),
        size=size,
    )
    rej_schedule = schedule(rej_start)
    if rej_start.version is None:
        rej_schedule["epochs"] = max(1, rej_schedule["epochs"] // 2)
    initialization[rej_name] = rej_start.describe()
    rej_fit = training.fit_member(
        rej_model,
        kind="rejection",
        train=training.Split(rej_x[cut:], rej_y[cut:]),
        val=training.Split(rej_x[:cut], rej_y[:cut]),
        **rej_schedule,
        batch_size=int(config["batch_size"]),
        seed=run.pk * 100 + 99,
        max_seconds=config["minutes_per_member"] * 60 / 2 if config["minutes_per_member"] else None,
        on_epoch=lambda e, n, logs: progress("rejection", e / n, f"{rej_name}: epoch {e}/{n}"),
    )
    histories[rej_name] = rej_fit.history

    flux_trained, flux_histories = band_training.flux_members_train(
        run=run,
        config=config,
        size=size,
        folder=run_folder(run),
        progress=lambda fraction, message: progress("flux", fraction, message),
    )
    histories.update(flux_histories)

    # Evaluation on the fixed test set (synthetic seed 303 + the labelled test split).
    progress("evaluate", 0.1, "Evaluating on the fixed test set")
    # Judged as the site answers: 8 rotations/flips, through the curve each member now has.
    member_curves = _retrained_curves(trained, size, val_x, val_y)
    answers = curves.member_answers(
        curves.predictor([m for _, _, m, _ in trained], size),
        test_x,
        [member_curves[name]["calibration"] for name, _, _, _ in trained],
    )
    member_preds = {name: answers[:, j] for j, (name, _, _, _) in enumerate(trained)}
    median = np.median(np.stack(list(member_preds.values())), axis=0)
    ensemble_metrics = metrics.regression_metrics(median, test_y)
    baseline = np.concatenate([synth["test"].baseline_prepared, [_baseline(x) for x in lab_x[reg_test_mask]]]).astype(
        np.float64
    )
    baseline_metrics = metrics.regression_metrics(baseline, test_y)
    rej_test_x = np.concatenate([synth["test"].images[: len(synth["face_on"])], synth["face_on"].images])
    rej_test_y = np.concatenate(
        [np.zeros(min(len(synth["test"]), len(synth["face_on"]))), np.ones(len(synth["face_on"]))]
    )
    rejection_metrics = metrics.classification_metrics(training.predict_array(rej_model, rej_test_x), rej_test_y)

    active_rms, comparable = _active_rms(test_x, test_y, size, mode)
    promote = active_rms is None or (comparable and ensemble_metrics["rms"] <= active_rms + 1e-9)
    summary = {
        "test_set": {
            "synthetic": len(synth["test"]),
            "labelled": int(reg_test_mask.sum()),
            "seed": SEED_TEST,
        },
        "ensemble": ensemble_metrics,
        "baseline": baseline_metrics,
        "rejection": rejection_metrics,
        "active_ensemble_rms": active_rms,
        "comparable_with_active": comparable,
        "promoted": promote,
        # Per new member: the active version it was fine-tuned from, or why it started from scratch.
        "initialization": initialization,
        "labelled_only": metrics.regression_metrics(median[test_is_label], test_y[test_is_label])
        if test_is_label.any()
        else None,
        "flux_members": {m.name: m.metrics["rms"] for m in flux_trained},
    }

    # Files first (under the run's folder), rows last and all at once.
    folder = run_folder(run)
    plot_files = {
        "predicted_vs_true": plots.predicted_vs_true(
            test_y, median, title=f"Run {run.pk}: test set", baseline=baseline
        ),
        "residuals": plots.residuals(test_y, median, title=f"Run {run.pk}: ensemble residuals"),
        "learning_curves": plots.learning_curves(histories, title=f"Run {run.pk}: learning curves"),
    }
    stored_plots = {k: default_storage.save(f"{folder}/{k}.png", ContentFile(v)) for k, v in plot_files.items()}
    stored_models = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, _, model, _ in [*trained, (rej_name, config["rejection"], rej_model, rej_start)]:
            path = os.path.join(tmp, f"{name}.keras")
            model.save(path)
            with open(path, "rb") as f:
                stored_models[name] = default_storage.save(f"{folder}/{name}.keras", ContentFile(f.read()))

    n_labels = int(len(lab_inc) - (lab_split == "test").sum())
    models = [
        TrainedModel(
            name=name,
            kind=ModelVersion.Kind.REGRESSION,
            architecture=arch,
            file=stored_models[name],
            metrics={
                **metrics.regression_metrics(member_preds[name], test_y),
                "ensemble": ensemble_metrics,
                "baseline": baseline_metrics,
                "fit": fits[name],
                "parameters": int(model.count_params()),
                # A fine-tuned member with a learned sigma keeps the calibration of the one it started from.
                **_inherited_sigma_scale(start),
                **{k: v for k, v in member_curves[name].items() if v is not None},
            },
            plots=stored_plots,
            initialized_from=start.version.pk if start.version else None,
        )
        for name, arch, model, start in trained
    ]
    models.append(
        TrainedModel(
            name=rej_name,
            kind=ModelVersion.Kind.REJECTION,
            architecture=config["rejection"],
            file=stored_models[rej_name],
            metrics={**rejection_metrics, "parameters": int(rej_model.count_params())},
            plots={"learning_curves": stored_plots["learning_curves"]},
            initialized_from=rej_start.version.pk if rej_start.version else None,
        )
    )
    models.extend(replace(m, plots={"learning_curves": stored_plots["learning_curves"]}) for m in flux_trained)
    verdict = "activated" if promote else f"kept as candidates (active ensemble RMS {active_rms:.2f} deg is better)"
    tuned = sum(1 for m in models if m.initialized_from is not None)
    if tuned == len(models):
        origin = "fine-tuned from the active members"
    elif tuned:
        origin = f"{tuned} of {len(models)} fine-tuned from active members, the rest from scratch"
    else:
        origin = "from scratch (no compatible active member)"
    return TrainingResult(
        models=models,
        input_size=size,
        input_mode=mode,
        promote=promote,
        message=(
            f"Test RMS {ensemble_metrics['rms']:.2f} deg (baseline {baseline_metrics['rms']:.2f}); {origin}; {verdict}"
        ),
        history=histories,
        metrics=summary,
        plots=stored_plots,
        n_labels=n_labels,
        n_synthetic=int(config["n_synthetic"]),
    )


def _retrained_curves(trained: list[tuple], size: int, val_x: np.ndarray, val_y: np.ndarray) -> dict[str, dict]:
    """name -> {"calibration": the curve the new member answers through, "calibration_from": where it came from}.

    Each member gets its own curve, fitted on the run's validation galaxies (`curves.fitted_curves`); where those
    are too few, a fine-tuned member keeps the curve of the version it started from, and one trained from scratch
    answers as it is.
    """
    fitted = curves.fitted_curves([m for _, _, m, _ in trained], size, val_x, val_y)
    out = {}
    for (name, _, _, start), curve in zip(trained, fitted, strict=True):
        if curve is not None:
            out[name] = {"calibration": curve, "calibration_from": f"fitted on {len(val_y)} validation galaxies"}
            continue
        kept = (start.version.metrics or {}).get("calibration") if start.version else None
        out[name] = {"calibration": kept, "calibration_from": f"kept from {start.version.name}" if kept else None}
    return out


def _inherited_sigma_scale(start: StartingPoint) -> dict:
    if start.version is None or "sigma_scale" not in (start.version.metrics or {}):
        return {}
    return {"sigma_scale": start.version.metrics["sigma_scale"]}


def _baseline(image: np.ndarray) -> float:
    try:
        return baseline.predict_inclination(image.astype(np.float32) / 255.0)
    except ValueError:
        return 0.0


def _active_rms(test_x, test_y, size: int, mode: str) -> tuple[float | None, bool]:
    """The active ensemble's RMS on the same test images (None if nothing is active)."""
    active = ensemble_holder.current(max_age=0)
    if active is None:
        return None, True
    group = next((g for g in active.groups if (g.input_size, g.input_mode) == (size, mode)), None)
    if group is None:
        return float("nan"), False  # a different input: not comparable on these arrays
    # Like for like: the active members that read this input (its flux members answer the stamps, not these).
    regression = [m.name for m in group.members if m.kind == "regression"]
    if not regression:
        return float("nan"), False
    outputs = {}
    for start in range(0, len(test_x), 256):
        chunk = test_x[start : start + 256].astype(np.float32) / 255.0
        for name, values in active.run({(size, mode): chunk}, n=len(chunk)).items():
            outputs.setdefault(name, []).append(values)
    preds = np.stack([np.clip(np.concatenate(outputs[n]), 45, 90) for n in regression])
    return metrics.regression_metrics(np.median(preds, axis=0), test_y)["rms"], True
