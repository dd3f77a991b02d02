"""Fixtures for the inference tests: tiny models with known outputs, stored galaxies, a clean ensemble.

Models are 32 x 32 input (GIZ_MODEL_INPUT_SIZE is overridden) so everything runs in seconds.
"""

import io
import tempfile
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from inference import ensemble
from inference.architectures import build_regression_model, build_rejection_model
from inference.models import ModelVersion
from tests.factories import ModelVersionFactory

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


def make_ensemble(inclinations=(50.0, 60.0, 70.0), rejection: float | None = 0.2) -> list[ModelVersion]:
    versions = [ModelVersionFactory(name=f"reg-{i}-{value:g}", answer=value) for i, value in enumerate(inclinations)]
    if rejection is not None:
        versions.append(ModelVersionFactory(name="rej-0", kind="rejection", answer=rejection))
    return versions


def png_bytes(size: int = 40) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((size, size, 3), 30, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def active_ensemble(db):
    """Three regression members answering 50, 60 and 70 deg (spread 8.2) and a rejection member (0.2)."""
    return make_ensemble()
