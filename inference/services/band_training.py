"""A training run's flux members: regression members that read the float g, r, i FITS stamps (imaging "flux"
mode, AsinhScaling first), trained beside the run's colour members on synthetic galaxies rendered once and
prepared from their float bands, plus the consensus-labelled galaxies that have FITS stamps.

They are stored and recorded with the run's other models (inference.services.training_runs) and promoted with
them; in the ensemble they answer the galaxies that have stamps, the colour members every galaxy.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from inference import architectures, imaging, metrics
from inference import keras_training as training
from inference import training_sets as synthetic_data
from inference.models import ModelVersion, TrainingRun
from inference.services.predictions import band_cube, band_stamps_of, image_position_angle
from labeling.models import ConsensusLabel

logger = logging.getLogger(__name__)

# Their own seeds: the colour members' synthetic sets are rendered by another path (and cached apart).
SEED_TRAIN, SEED_VAL, SEED_TEST = 1101, 1202, 1303


def _labelled_flux(run: TrainingRun, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Accepted consensus labels whose galaxies have g, r, i FITS stamps, prepared in flux mode; split by pgc."""
    labels = ConsensusLabel.objects.filter(status=ConsensusLabel.Status.ACCEPTED).select_related("galaxy")
    if run.labels_cutoff is not None:
        labels = labels.filter(created_at__lte=run.labels_cutoff)
    labels = list(labels)
    stamps = band_stamps_of([label.galaxy_id for label in labels])
    arrays, inclination, pgcs = [], [], []
    for label in labels:
        if label.galaxy_id not in stamps:
            continue
        try:
            cube = band_cube(stamps[label.galaxy_id], size=size)
            angle = label.galaxy.position_angle
            if angle is None:
                angle = image_position_angle(cube)
            arrays.append(imaging.prepare_for_model(cube, size=size, mode="flux", position_angle=angle))
        except (imaging.ImageError, OSError) as exc:
            logger.warning("Skipping the stamps of %s in training: %s", label.galaxy, exc)
            continue
        inclination.append(label.inclination)
        pgcs.append(label.galaxy.pgc)
    if not arrays:
        return np.zeros((0, size, size, 3), np.float32), np.zeros(0, np.float32), np.array([], dtype=str)
    return np.stack(arrays), np.array(inclination, np.float32), training.split_by_key(pgcs)


def flux_members_train(*, run: TrainingRun, config: dict, size: int, folder: str, progress=None) -> tuple[list, dict]:
    """Train config["flux_members"] (architectures), store them under `folder`; ([TrainedModel], histories).

    Nothing when the config names none. Each member's metrics are on the flux test set (synthetic, and the
    labelled galaxies with stamps in the test split).
    """
    from inference.services.training import TrainedModel  # the run's result types; imported late (a cycle)

    architectures_wanted = list(config.get("flux_members") or [])
    if not architectures_wanted:
        return [], {}
    cache = Path(settings.DATA_DIR) / "cache" / "synthetic"
    render = {
        "size": size,
        "render_size": int(config["render_size"]),
        "processes": int(config.get("processes") or os.cpu_count() or 1),
    }
    sets = {
        key: synthetic_data.cached_paired_set(cache, int(n), seed=seed, **render)
        for key, n, seed in (
            ("train", config["n_synthetic"], SEED_TRAIN),
            ("val", config["n_val"], SEED_VAL),
            ("test", config["n_test"], SEED_TEST),
        )
    }
    lab_x, lab_y, lab_split = _labelled_flux(run, size)

    def part(key: str) -> tuple[np.ndarray, np.ndarray]:
        mask = lab_split == key
        return (
            np.concatenate([sets[key].flux, lab_x[mask]]),
            np.concatenate([sets[key].color.inclination, lab_y[mask]]),
        )

    (train_x, train_y), (val_x, val_y), (test_x, test_y) = part("train"), part("val"), part("test")
    models, histories = [], {}
    for i, arch in enumerate(architectures_wanted):
        name = f"regression-flux-{arch}-{i}-run{run.pk}"
        model = architectures.build_regression_model(
            arch, input_size=size, input_mode="flux", name=name.replace("-", "_")
        )
        result = training.fit_member(
            model,
            kind="regression",
            train=training.Split(train_x, train_y),
            val=training.Split(val_x, val_y),
            epochs=int(config["epochs"]),
            batch_size=int(config["batch_size"]),
            seed=run.pk * 100 + 50 + i,
            max_seconds=config["minutes_per_member"] * 60 if config["minutes_per_member"] else None,
            input_mode="flux",
            on_epoch=lambda e, n, logs, name=name: (
                progress
                and progress(e / n, f"{name}: epoch {e}/{n}, val RMS {logs.get('val_rms', float('nan')):.2f} deg")
            ),
        )
        predicted = np.clip(training.predict_array(model, test_x), 45, 90)
        softening = model.get_layer("asinh_scaling").get_weights()[0]
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, f"{name}.keras")
            model.save(path)
            with open(path, "rb") as f:
                stored = default_storage.save(f"{folder}/{name}.keras", ContentFile(f.read()))
        histories[name] = result.history
        models.append(
            TrainedModel(
                name=name,
                kind=ModelVersion.Kind.REGRESSION,
                architecture=arch,
                file=stored,
                metrics={
                    **metrics.regression_metrics(predicted, test_y),
                    "input": "float g, r, i FITS stamps (flux)",
                    "test_set": {"synthetic": len(sets["test"]), "labelled": int((lab_split == "test").sum())},
                    "n_labelled_with_stamps": int(len(lab_y)),
                    "learned_softening_sigma": [float(np.log1p(np.exp(w)) + 0.01) for w in softening],
                    "fit": {"epochs": result.epochs, "images_per_second": result.images_per_second},
                    "parameters": int(model.count_params()),
                },
                plots={},
                input_mode="flux",
            )
        )
    return models, histories
