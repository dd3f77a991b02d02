"""Fixtures for the inference tests: tiny models with known outputs, stored galaxies, a clean ensemble.

Models are 32 x 32 input (GIZ_MODEL_INPUT_SIZE is overridden) so everything runs in seconds.
"""

import io
import tempfile
from pathlib import Path

import keras
import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image

from acquisition import renderer as synthetic
from acquisition.models import GalaxyImage
from inference import ensemble
from inference.architectures import build_regression_model, build_rejection_model
from inference.models import ModelVersion
from tests.factories import GalaxyFactory

SIZE = 32


@pytest.fixture(autouse=True)
def tiny_inference_settings(settings):
    settings.GIZ_MODEL_INPUT_SIZE = SIZE
    settings.GIZ_TRAINING_PROFILE = "tiny"
    settings.GIZ_ENSEMBLE_CHECK_S = 0.0
    settings.GIZ_ALARM_SPREAD_DEG = 5.0
    settings.GIZ_ALARM_HUMAN_DIFF_DEG = 8.0
    ensemble.reset()
    yield settings
    ensemble.reset()


def constant_regression_model(inclination: float, *, size: int = SIZE) -> keras.Model:
    """A real (tiny) regression network whose answer is `inclination` for every image."""
    model = build_regression_model("tiny", input_size=size)
    layer = model.get_layer("scaled_inclination")
    kernel, _ = layer.get_weights()
    layer.set_weights([np.zeros_like(kernel), np.array([(inclination - 67.5) / 22.5], np.float32)])
    return model


def constant_rejection_model(probability: float, *, size: int = SIZE) -> keras.Model:
    model = build_rejection_model("tiny", input_size=size)
    layer = model.get_layer("rejection")
    kernel, _ = layer.get_weights()
    logit = float(np.log(probability / (1 - probability)))
    layer.set_weights([np.zeros_like(kernel), np.array([logit], np.float32)])
    return model


def model_bytes(model: keras.Model, suffix: str = ".keras") -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"model{suffix}"
        model.save(path)
        return path.read_bytes()


def store_version(model: keras.Model, *, name: str, kind: str = "regression", status: str = "active", **fields):
    stored = default_storage.save(f"models/test/{name}.keras", ContentFile(model_bytes(model)))
    return ModelVersion.objects.create(
        name=name,
        kind=kind,
        architecture="tiny",
        file=stored,
        input_size=SIZE,
        status=status,
        **fields,
    )


def make_ensemble(inclinations=(50.0, 60.0, 70.0), rejection: float | None = 0.2) -> list[ModelVersion]:
    versions = [
        store_version(constant_regression_model(value), name=f"reg-{i}-{value:g}")
        for i, value in enumerate(inclinations)
    ]
    if rejection is not None:
        versions.append(store_version(constant_rejection_model(rejection), name="rej-0", kind="rejection"))
    return versions


def galaxy_jpeg(seed: int = 1, inclination: float = 70.0) -> bytes:
    params = synthetic.draw_params(np.random.default_rng(seed), inclination=inclination)
    return synthetic.to_color_jpeg(synthetic.render_galaxy(params, size=64, seed=seed))


def galaxy_with_image(seed: int = 1, **fields):
    galaxy = GalaxyFactory(**fields)
    data = galaxy_jpeg(seed)
    stored = default_storage.save(f"images/test/{galaxy.pgc}/color.jpg", ContentFile(data))
    image = GalaxyImage.objects.create(
        galaxy=galaxy,
        band="color",
        format="jpeg",
        file=stored,
        source="synthetic",
        width=64,
        height=64,
        checksum="0" * 64,
    )
    return galaxy, image


def png_bytes(size: int = 40) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((size, size, 3), 30, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def active_ensemble(db):
    """Three regression members answering 50, 60 and 70 deg (spread 8.2) and a rejection member (0.2)."""
    return make_ensemble()
