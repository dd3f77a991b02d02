"""An adaptation run's work: fine-tune the active colour members, from their weights, to one survey.

The members go on training on that survey's consensus labels mixed with synthetic galaxies rendered in its look
(inference.services.surveys.survey_look) and, as GIZ_SURVEY_ADAPT_REPLAY_FRACTION of the mix, replay of the
reference survey (its train-split labels, topped up with synthetic SDSS-look galaxies of the sources in
GIZ_SURVEY_ADAPT_REPLAY_SOURCES), at GIZ_SURVEY_ADAPT_LEARNING_RATE. Each member keeps the epoch best on the
survey's validation images among those that cost at most GIZ_SURVEY_ADAPT_GUARD_DEG on reference validation images
(its starting weights included): the first run forgot 0.54 deg of SDSS while gaining 8 on the survey, and the
gate refused it. Promotion is judged set by set (inference.survey_metrics.promotion_decision): better on the
survey's held-out labels, and no worse than GIZ_SURVEY_ADAPT_TOLERANCE_DEG on every other survey with enough labels
and on synthetic SDSS-like galaxies. The decision and its numbers go into the run's metrics ("promotion").

Called by inference.services.training.execute for runs with the adaptation trigger; like it, it stores files
under the run's folder and returns a TrainingResult that training_runs records in one transaction.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from inference import ensemble as ensemble_holder
from inference import keras_training, metrics, plots, survey_metrics
from inference import training_sets as synthetic_data
from inference.models import ModelVersion, TrainingRun
from inference.services.curves import calibrations_of, fitted_curves, median_answers, predictor
from inference.services.surveys import survey_look
from inference.services.training import (
    SEED_TEST,
    SEED_TRAIN,
    SEED_VAL,
    TrainedModel,
    TrainingResult,
    _labelled,
    _Progress,
    discard_partial,
    run_folder,
)
from labeling.models import Survey
from labeling.selectors import survey_labels
from labeling.services import reference_survey

PROFILES = {
    # A few minutes per member on two cores: the members are trained already, they only move.
    "standard": {
        "n_synthetic": 1500,
        "n_val_synthetic": 150,
        "n_val_reference": 300,
        "n_reference": 400,
        "n_other": 500,
        "epochs": 8,
        "patience": 3,
        "minutes_per_member": 5.0,
        "batch_size": 32,
        "render_size": 256,
        "look_strength": 0.5,
    },
    "quick": {
        "n_synthetic": 600,
        "n_val_synthetic": 100,
        "n_val_reference": 150,
        "n_reference": 200,
        "n_other": 300,
        "epochs": 5,
        "patience": 2,
        "minutes_per_member": 2.0,
        "batch_size": 32,
        "render_size": 256,
        "look_strength": 0.5,
    },
    "tiny": {
        "n_synthetic": 8,
        "n_val_synthetic": 4,
        "n_val_reference": 4,
        "n_reference": 6,
        "n_other": 20,
        "epochs": 2,
        "patience": 2,
        "minutes_per_member": None,
        "batch_size": 8,
        "render_size": 64,
        "look_strength": 0.0,
        "processes": 1,
    },
}
SEED_LOOK = 505  # synthetic galaxies in the survey's look (train; validation uses SEED_VAL + this)
REFERENCE_SET = "synthetic SDSS-like"


def config_for(run: TrainingRun) -> dict:
    """The profile's sizes, the adaptation settings, then the run's own config over both."""
    profile = run.config.get("profile") or settings.GIZ_TRAINING_PROFILE
    return {
        **PROFILES[profile],
        "replay_fraction": settings.GIZ_SURVEY_ADAPT_REPLAY_FRACTION,
        "replay_sources": list(settings.GIZ_SURVEY_ADAPT_REPLAY_SOURCES),
        "learning_rate": settings.GIZ_SURVEY_ADAPT_LEARNING_RATE,
        "guard_deg": settings.GIZ_SURVEY_ADAPT_GUARD_DEG,
        **run.config,
        "profile": profile,
    }


def _shares(n: int, k: int) -> list[int]:
    """n split as evenly as can be into k whole parts."""
    return [n // k + (i < n % k) for i in range(k)]


@dataclass
class AdaptationData:
    """What an adaptation trains, selects and judges on (also what the benchmark's from-scratch ensemble uses)."""

    train: keras_training.Split
    val: keras_training.Split  # the adapted survey: its val-split labels and synthetic galaxies in its look
    guard: keras_training.Split  # the reference survey: its val-split labels and synthetic SDSS-look galaxies
    judged: dict[str, tuple]  # set name -> (images, degrees) the promotion gate compares before and after
    mix: dict  # how many of what, for the run's metrics
    n_labels: int


def adaptation_data(run: TrainingRun, survey: Survey, size: int, config: dict, progress=None) -> AdaptationData:
    """Render (cached) and assemble an adaptation's data: the survey's labels and look, and the reference replay.

    The replay is `replay_fraction` of the training images: the reference survey's accepted train-split labels
    first, then synthetic SDSS-look galaxies split evenly over `replay_sources`. The reference survey's train-split
    labels are then left out of the set the gate judges it on (val and test only).
    """
    progress = progress or (lambda fraction, message: None)
    cache = Path(settings.DATA_DIR) / "cache" / "synthetic"
    render = {
        "size": size,
        "render_size": int(config["render_size"]),
        "look_strength": float(config["look_strength"]),
        "processes": int(config.get("processes") or os.cpu_count() or 1),
    }
    look = survey_look(survey)
    lab_x, lab_inc, _, split = _labelled(run, size, "color", survey=survey)
    accepted = ~np.isnan(lab_inc)
    train_mask, val_mask, test_mask = ((split == part) & accepted for part in ("train", "val", "test"))
    progress(0.05, f"{int(accepted.sum())} accepted labels of {survey.name}")
    reference = reference_survey()
    ref_x, ref_inc, _, ref_split = (
        _labelled(run, size, "color", survey=reference)
        if reference.pk != survey.pk
        else (lab_x[:0], lab_inc[:0], None, split[:0])
    )
    ref_ok = ~np.isnan(ref_inc)
    ref_train, ref_val = ((ref_split == part) & ref_ok for part in ("train", "val"))

    fraction = min(max(float(config["replay_fraction"]), 0.0), 0.9)
    n_look = int(config["n_synthetic"])
    n_replay = round(fraction / (1.0 - fraction) * (int(train_mask.sum()) + n_look))
    n_replay_synthetic = max(n_replay - int(ref_train.sum()), 0)
    sources = list(config["replay_sources"]) or ["ours"]
    jobs = [
        ("look", "ours", n_look, SEED_LOOK, {"survey": look}),
        ("look_val", "ours", int(config["n_val_synthetic"]), SEED_LOOK + SEED_VAL, {"survey": look}),
    ]
    for key, n, seed in (
        ("replay", n_replay_synthetic, SEED_TRAIN),
        ("guard", int(config["n_val_reference"]), SEED_VAL),
        ("reference", int(config["n_reference"]), SEED_TEST),
    ):
        shares = zip(sources, _shares(n, len(sources)), strict=True)
        jobs += [(f"{key}:{source}", source, share, seed, {}) for source, share in shares if share]
    sets = {}
    for i, (key, source, n, seed, kwargs) in enumerate(jobs):
        sets[key] = synthetic_data.cached_source_set(
            cache,
            source,
            n,
            seed=seed,
            progress=lambda d, t, k=key, i=i: progress(0.1 + 0.8 * (i + d / max(t, 1)) / len(jobs), f"Rendering {k}"),
            **render,
            **kwargs,
        )

    def joined(prefix: str, *extra: tuple) -> tuple[np.ndarray, np.ndarray]:
        parts = [*extra, *((sets[k].images, sets[k].inclination) for k in sets if k.split(":")[0] == prefix)]
        parts = [(x, y) for x, y in parts if len(y)]
        if not parts:
            return np.zeros((0, size, size, 3), np.uint8), np.zeros(0, np.float32)
        return np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts]).astype(np.float32)

    replay_x, replay_y = joined("replay", (ref_x[ref_train], ref_inc[ref_train]))
    guard_x, guard_y = joined("guard", (ref_x[ref_val], ref_inc[ref_val]))
    reference_x, reference_y = joined("reference")
    train = keras_training.Split(
        np.concatenate([lab_x[train_mask], sets["look"].images, replay_x]),
        np.concatenate([lab_inc[train_mask], sets["look"].inclination, replay_y]).astype(np.float32),
    )
    val = keras_training.Split(
        np.concatenate([lab_x[val_mask], sets["look_val"].images]),
        np.concatenate([lab_inc[val_mask], sets["look_val"].inclination]).astype(np.float32),
    )
    others = _other_surveys(run, survey, size, int(config["n_other"]), reference=reference)
    progress(1.0, f"{len(sets['look'])} synthetic galaxies in {survey.name}'s look, {len(replay_y)} replayed")
    return AdaptationData(
        train=train,
        val=val,
        guard=keras_training.Split(guard_x, guard_y),
        judged={
            survey.slug: (lab_x[test_mask], lab_inc[test_mask]),
            **others,
            REFERENCE_SET: (reference_x, reference_y),
        },
        mix={
            "labels": int(train_mask.sum()),
            "synthetic_look": len(sets["look"]),
            "replay": len(replay_y),
            "replay_fraction": round(len(replay_y) / max(len(train.target), 1), 3),
            "replay_reference_labels": int(ref_train.sum()),
            "replay_synthetic": {k.split(":")[1]: len(v) for k, v in sets.items() if k.startswith("replay:")},
            "guard": len(guard_y),
            "guard_reference_labels": int(ref_val.sum()),
            "val": len(val.target),
        },
        n_labels=int(train_mask.sum() + val_mask.sum()),
    )


def _members() -> tuple[list[ModelVersion], list[int]]:
    """(the active members adaptation fine-tunes, the ids of the active ones it keeps as they are)."""
    active = list(ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).order_by("name"))
    tuned = [
        v
        for v in active
        if v.kind == ModelVersion.Kind.REGRESSION and v.input_mode == "color" and v.output != ModelVersion.Output.SCALED
    ]
    return tuned, [v.pk for v in active if v not in tuned]


def adapted_curves(tuned: list[tuple], fits: dict, size: int, *held_out: keras_training.Split):
    """name -> {"calibration": the curve the adapted member answers through, "calibration_from": where it came from}.

    A member given back with its starting weights keeps its curve, so it answers exactly as before. The others get
    their own, fitted on the `held_out` validation images (`fitted_curves`), or keep the curve they started from
    where those are too few.
    """
    x, y = np.concatenate([h.images for h in held_out]), np.concatenate([h.target for h in held_out])
    changed = [(name, model) for name, _, model in tuned if (fits[name].get("selection") or {}).get("epoch") != 0]
    fitted = {}
    if changed:
        curves = fitted_curves([m for _, m in changed], size, x, y)
        fitted = {name: curve for (name, _), curve in zip(changed, curves, strict=True)}
    out = {}
    for name, version, _ in tuned:
        if fitted.get(name) is not None:
            out[name] = {"calibration": fitted[name], "calibration_from": f"fitted on {len(y)} validation galaxies"}
        else:
            kept = (version.metrics or {}).get("calibration")
            out[name] = {"calibration": kept, "calibration_from": f"kept from {version.name}" if kept else None}
    return out


def _other_surveys(run: TrainingRun, survey: Survey, size: int, limit: int, *, reference: Survey) -> dict[str, tuple]:
    """Accepted labels of every other survey with GIZ_SURVEY_EVAL_MIN_LABELS of them: name -> (images, degrees).
    The reference survey's train split is replayed in training, so it is judged on the rest only."""
    out = {}
    for other in Survey.objects.exclude(pk=survey.pk).order_by("slug"):
        needed = settings.GIZ_SURVEY_EVAL_MIN_LABELS
        if survey_labels(survey=other).order_by()[:needed].count() < needed:
            continue
        x, inc, _, split = _labelled(run, size, "color", survey=other, limit=limit)
        keep = ~np.isnan(inc)
        if keep.sum() < min(needed, limit):
            continue
        if other.pk == reference.pk:
            keep &= split != "train"
        if keep.any():
            out[other.slug] = (x[keep], inc[keep])
    return out


def execute_adaptation(run: TrainingRun, *, progress_callback=None) -> TrainingResult:
    """Fine-tune, judge survey by survey, store the files; promote (in the result) only if the decision says so."""
    config = config_for(run)
    survey = run.survey
    look = survey_look(survey)
    originals, kept = _members()
    if not originals:
        raise RuntimeError("No active colour regression member to fine-tune.")
    size = originals[0].input_size
    kept += [v.pk for v in originals if v.input_size != size]  # one input size per run; others stay as they are
    originals = [v for v in originals if v.input_size == size]
    stages = [("data", 2.0), ("before", 1.0)] + [(f"member{i}", 3.0) for i in range(len(originals))] + [("after", 1.0)]
    progress = _Progress(progress_callback, stages)
    discard_partial(run)
    data = adaptation_data(run, survey, size, config, progress=lambda f, m: progress("data", f, m))
    train, val, guard, judged = data.train, data.val, data.guard, data.judged

    models = [ensemble_holder.load_from_storage(v.file.name) for v in originals]
    before_pred, before = {}, predictor(models, size)
    for j, (name, (x, _)) in enumerate(judged.items()):
        before_pred[name] = median_answers(before, x, calibrations_of(originals))
        progress("before", (j + 1) / len(judged), f"Active ensemble on {name}")

    tuned, histories, fits = [], {}, {}
    for i, version in enumerate(originals):
        name = f"{version.name}-{survey.slug}-run{run.pk}"[-100:]
        model = models[i]  # fine-tuned in place: the "before" answers are computed already
        fit = keras_training.fine_tune_member(
            model,
            train=train,
            val=val,
            epochs=int(config["epochs"]),
            batch_size=int(config["batch_size"]),
            learning_rate=float(config["learning_rate"]),
            patience=int(config["patience"]),
            # Selected on the survey, guarded on the reference: without reference images, early stopping only.
            guard=guard if len(guard.target) else None,
            guard_tolerance=float(config["guard_deg"]),
            seed=run.pk * 100 + i,
            max_seconds=config["minutes_per_member"] * 60 if config["minutes_per_member"] else None,
            on_epoch=lambda e, n, logs, i=i, name=name: progress(
                f"member{i}", e / n, f"{name}: epoch {e}/{n}, val loss {logs.get('val_loss', float('nan')):.2f}"
            ),
        )
        tuned.append((name, version, model))
        histories[name] = fit.history
        fits[name] = {
            "epochs": fit.epochs,
            "images_per_second": fit.images_per_second,
            "seconds": fit.seconds,
            "selection": fit.selection,
        }

    # The reference survey's val labels lead the guard set; the gate judges that survey on them, so the curves are
    # fitted on the rest of the guard (synthetic SDSS-look galaxies) beside the adapted survey's own val set.
    synthetic_guard = slice(data.mix["guard_reference_labels"], None)
    curves = adapted_curves(
        tuned, fits, size, keras_training.Split(guard.images[synthetic_guard], guard.target[synthetic_guard]), val
    )
    after_pred, after = {}, predictor([m for _, _, m in tuned], size)
    for j, (name, (x, _)) in enumerate(judged.items()):
        after_pred[name] = median_answers(after, x, [curves[name]["calibration"] for name, _, _ in tuned])
        progress("after", (j + 1) / len(judged), f"Adapted members on {name}")
    figures = {
        name: {
            "before": metrics.regression_metrics(before_pred[name], y) if len(y) else {"n": 0},
            "after": metrics.regression_metrics(after_pred[name], y) if len(y) else {"n": 0},
        }
        for name, (_, y) in judged.items()
    }
    decision = survey_metrics.promotion_decision(
        adapted=survey.slug,
        before={name: f["before"].get("rms") for name, f in figures.items()},
        after={name: f["after"].get("rms") for name, f in figures.items()},
        tolerance=settings.GIZ_SURVEY_ADAPT_TOLERANCE_DEG,
    )

    folder = run_folder(run)
    test_y = judged[survey.slug][1]
    stored_plots = {
        "before_after": default_storage.save(
            f"{folder}/before_after.png",
            ContentFile(
                plots.before_after(
                    test_y,
                    before_pred[survey.slug],
                    after_pred[survey.slug],
                    title=f"Run {run.pk}: held-out labels of {survey.name}",
                )
            ),
        ),
        "learning_curves": default_storage.save(
            f"{folder}/learning_curves.png",
            ContentFile(plots.learning_curves(histories, title=f"Run {run.pk}: fine-tuning")),
        ),
    }
    stored_models = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, _, model in tuned:
            path = os.path.join(tmp, f"{name}.keras")
            model.save(path)
            with open(path, "rb") as f:
                stored_models[name] = default_storage.save(f"{folder}/{name}.keras", ContentFile(f.read()))
    n_labels = data.n_labels
    n_synthetic = data.mix["synthetic_look"] + sum(data.mix["replay_synthetic"].values())
    trained = [
        TrainedModel(
            name=name,
            kind=ModelVersion.Kind.REGRESSION,
            architecture=version.architecture,
            file=stored_models[name],
            metrics={
                # The learned sigma keeps the calibration of the member it grew from.
                **({"sigma_scale": version.metrics["sigma_scale"]} if "sigma_scale" in (version.metrics or {}) else {}),
                "adapted_from": {"id": version.pk, "name": version.name},
                **{k: v for k, v in curves[name].items() if v is not None},
                "survey": survey.slug,
                "fit": fits[name],
                "per_set": {k: f["after"].get("rms") for k, f in figures.items()},
                "parameters": int(model.count_params()),
            },
            plots=stored_plots,
        )
        for name, version, model in tuned
    ]
    summary = {
        "survey": survey.slug,
        "look": {k: getattr(look, k) for k in look.__dataclass_fields__},
        "sets": {name: int(len(y)) for name, (_, y) in judged.items()},
        "train": data.mix,
        "fine_tuning": {
            "learning_rate": float(config["learning_rate"]),
            "guard_deg": float(config["guard_deg"]),
            "epochs_kept": {name: (fit.get("selection") or {}).get("epoch") for name, fit in fits.items()},
        },
        "per_set": figures,
        "promotion": {"promote": decision.value, "reason": decision.reason, "numbers": decision.numbers},
        "promoted": decision.value,
        "adapted_from": [{"id": v.pk, "name": v.name} for v in originals],
        "kept": kept,
    }
    return TrainingResult(
        models=trained,
        input_size=size,
        input_mode="color",
        promote=decision.value,
        message=decision.reason[:255],
        history=histories,
        metrics=summary,
        plots=stored_plots,
        n_labels=n_labels,
        n_synthetic=n_synthetic,
        kept_version_ids=tuple(kept),
    )
