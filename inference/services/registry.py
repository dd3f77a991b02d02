"""The model registry: uploaded and trained model versions, and which of them make the active ensemble."""

from __future__ import annotations

import logging
import os
import tempfile

import numpy as np
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from giz_site.exceptions import ApplicationError
from inference import ensemble as ensemble_holder
from inference.models import (
    ModelVersion,
)

logger = logging.getLogger(__name__)


H5_MAGIC = b"\x89HDF\r\n\x1a\n"
ZIP_MAGIC = b"PK\x03\x04"


def model_file_check(*, path: str, kind: str) -> dict:
    """Load a model file and check it fits this site; ApplicationError with the reason otherwise."""
    size = settings.GIZ_MODEL_INPUT_SIZE
    try:
        model = ensemble_holder.load_keras_file(path)
    except Exception as exc:
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise ApplicationError(
            f"The file could not be loaded as a Keras model ({reason}).", code="invalid_model_file"
        ) from exc
    inputs = getattr(model, "inputs", None) or []
    if len(inputs) != 1 or tuple(inputs[0].shape[1:]) != (size, size, 3):
        shapes = [tuple(i.shape) for i in inputs]
        raise ApplicationError(
            f"The model's input is {shapes}; this site feeds one {size} x {size} x 3 image batch "
            f"(None, {size}, {size}, 3).",
            code="wrong_input_shape",
            details={"input_shapes": [list(s) for s in shapes], "expected": [None, size, size, 3]},
        )
    outputs = getattr(model, "outputs", None) or []
    # A regression member may also give its own sigma as a second column (inclination, sigma in deg).
    allowed = ((1,), (), (2,)) if kind == ModelVersion.Kind.REGRESSION else ((1,), ())
    if len(outputs) != 1 or tuple(outputs[0].shape[1:]) not in allowed:
        shapes = [tuple(o.shape) for o in outputs]
        raise ApplicationError(
            f"The model's output is {shapes}; a {kind} model must give one number per image (None, 1)"
            + (", or an inclination and its sigma (None, 2)." if kind == ModelVersion.Kind.REGRESSION else "."),
            code="wrong_output_shape",
            details={"output_shapes": [list(s) for s in shapes]},
        )
    try:
        probe = np.asarray(model(np.full((2, size, size, 3), 0.1, np.float32), training=False)).reshape(-1)
    except Exception as exc:
        raise ApplicationError(f"The model fails on a test image: {exc}", code="invalid_model_file") from exc
    if not np.all(np.isfinite(probe)):
        raise ApplicationError("The model gives non-finite outputs on a test image.", code="invalid_model_file")
    if kind == ModelVersion.Kind.REJECTION and not np.all((probe >= 0) & (probe <= 1)):
        raise ApplicationError(
            "A rejection model must output a probability in [0, 1] (a sigmoid output).", code="wrong_output_range"
        )
    return {"architecture": model.name[:64], "parameters": int(model.count_params())}


def model_version_upload(
    *, file, name: str, kind: str, user, output: str = ModelVersion.Output.DEGREES, notes: str = ""
) -> ModelVersion:
    """Store an uploaded .keras/.h5 model as a candidate version after checking it loads and fits."""
    name = (name or "").strip()
    if not name:
        raise ApplicationError("Give the model version a name.", code="invalid_name")
    if kind not in ModelVersion.Kind.values:
        raise ApplicationError(f"kind must be one of {ModelVersion.Kind.values}.", code="invalid_kind")
    if ModelVersion.objects.filter(name=name).exists():
        raise ApplicationError(f"A model version named {name!r} exists already.", code="name_taken", status_code=409)
    data = file.read()
    head = data[:8]
    if head.startswith(H5_MAGIC):
        fmt, suffix = ModelVersion.Format.H5, ".h5"
    elif head.startswith(ZIP_MAGIC):
        fmt, suffix = ModelVersion.Format.KERAS, ".keras"
    else:
        raise ApplicationError(
            "This is not a Keras model file: expected a .keras (zip) or .h5 (HDF5) file.", code="invalid_model_file"
        )
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, f"upload{suffix}")
        with open(path, "wb") as f:
            f.write(data)
        info = model_file_check(path=path, kind=kind)
    stored = default_storage.save(
        f"{settings.GIZ_MODELS_DIR}/uploads/{slugify(name) or 'model'}{suffix}", ContentFile(data)
    )
    try:
        return ModelVersion.objects.create(
            name=name,
            kind=kind,
            architecture=info["architecture"],
            file=stored,
            format=fmt,
            input_size=settings.GIZ_MODEL_INPUT_SIZE,
            input_mode="color",
            output=output,
            uploaded_by=user,
            notes=notes,
            metrics={"parameters": info["parameters"]},
        )
    except IntegrityError as exc:
        default_storage.delete(stored)
        raise ApplicationError(
            f"A model version named {name!r} exists already.", code="name_taken", status_code=409
        ) from exc


def model_version_activate(*, model_version: ModelVersion, user=None) -> ModelVersion:
    """Make a version part of the active ensemble (each process swaps its ensemble as a whole)."""
    if model_version.status == ModelVersion.Status.ACTIVE:
        return model_version
    if not default_storage.exists(model_version.file.name):
        raise ApplicationError(f"The file of {model_version.name} is missing from storage.", code="model_file_missing")
    ModelVersion.objects.filter(pk=model_version.pk).update(
        status=ModelVersion.Status.ACTIVE, activated_at=timezone.now()
    )
    model_version.refresh_from_db()
    transaction.on_commit(ensemble_holder.invalidate)
    logger.info("%s activated %s", user, model_version.name)
    return model_version


def model_version_retire(*, model_version: ModelVersion, user=None) -> ModelVersion:
    """Take a version out of the active ensemble (kept for comparison)."""
    if model_version.status == ModelVersion.Status.ACTIVE:
        regression_left = (
            ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE, kind=ModelVersion.Kind.REGRESSION)
            .exclude(pk=model_version.pk)
            .exists()
        )
        if model_version.kind == ModelVersion.Kind.REGRESSION and not regression_left:
            raise ApplicationError(
                "This is the last active regression model; activate another before retiring it.", code="last_model"
            )
    ModelVersion.objects.filter(pk=model_version.pk).update(status=ModelVersion.Status.RETIRED)
    model_version.refresh_from_db()
    transaction.on_commit(ensemble_holder.invalidate)
    return model_version


def ensemble_replace(*, new_versions: list[ModelVersion]) -> None:
    """Activate a trained set and retire the previous active set in one transaction."""
    now = timezone.now()
    with transaction.atomic():
        ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).exclude(
            pk__in=[v.pk for v in new_versions]
        ).update(status=ModelVersion.Status.RETIRED)
        ModelVersion.objects.filter(pk__in=[v.pk for v in new_versions]).update(
            status=ModelVersion.Status.ACTIVE, activated_at=now
        )
        transaction.on_commit(ensemble_holder.invalidate)
