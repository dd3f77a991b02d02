"""Fixtures and helpers for the API tests: token clients, images (good, corrupt, bombs), galaxies with images."""

import os
import struct
import tempfile
import zlib
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from inference.models import ModelVersion
from tests.factories import GalaxyImageFactory, ModelVersionFactory, StandardGalaxyFactory


def token_client(user) -> APIClient:
    """An API client authenticated the way scripts are: "Authorization: Token <key>"."""
    token, _ = Token.objects.get_or_create(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def alice_api(alice):
    return token_client(alice)


@pytest.fixture
def bob_api(bob):
    return token_client(bob)


@pytest.fixture
def charlie_api(charlie):
    return token_client(charlie)


def assert_error(response, status: int, code: str | None = None) -> dict:
    """The one error contract: the status, and {"error": {"code", "message", "details"}} as JSON."""
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    error = response.json()["error"]
    assert set(error) >= {"code", "message", "details"}
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["details"], dict)
    if code is not None:
        assert error["code"] == code, error
    return error


# ------------------------------------------------------------------------------ images


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb(width: int = 50_000, height: int = 50_000) -> bytes:
    """A few hundred bytes claiming billions of pixels: a decompression bomb's header."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024, 9)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def upload(name: str, data: bytes, content_type: str = "image/jpeg"):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data, content_type=content_type)


# ------------------------------------------------------------------------------ galaxies


def standards_grid(degrees=range(45, 91)):
    """One standard per degree with a colour image, as the volunteers' comparison grid."""
    standards = []
    for degree in degrees:
        # Retired: the standards themselves are not in the labeling queue.
        standard = StandardGalaxyFactory(inclination=float(degree), galaxy__retired_at=timezone.now())
        GalaxyImageFactory(galaxy=standard.galaxy, seed=degree)
        standards.append(standard)
    return standards


# ------------------------------------------------------------------------------ models


def tiny_model_file(kind: str, *, seed: int) -> bytes:
    """A tiny Keras model (untrained, a few thousand weights) saved as .keras bytes."""
    import keras

    from inference.architectures import build_regression_model, build_rejection_model

    path = MODEL_CACHE / f"tiny-{kind}-{seed}.keras"
    if not path.exists():
        keras.utils.set_random_seed(seed)
        build = build_regression_model if kind == "regression" else build_rejection_model
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.stem}.{os.getpid()}.keras")  # other test runs may share the cache
        build("tiny", input_size=128).save(partial)  # named after the architecture, as trained ones are
        os.replace(partial, path)
    return path.read_bytes()


MODEL_CACHE = Path(tempfile.gettempdir()) / "giz-api-test-models"


def ensemble_upload(client, *, members: int = 3, rejection: bool = True) -> list[dict]:
    """Upload and activate a tiny ensemble through the staff API; returns the model versions."""
    versions = []
    plan = [("regression", seed) for seed in range(members)] + ([("rejection", 100)] if rejection else [])
    for kind, seed in plan:
        response = client.post(
            "/api/models/",
            {"file": upload(f"{kind}{seed}.keras", tiny_model_file(kind, seed=seed), "application/octet-stream"),
             "name": f"tiny-{kind}-{seed}", "kind": kind},
            format="multipart",
        )  # fmt: skip
        assert response.status_code == 201, response.content[:1000]
        version = response.json()
        response = client.post(f"/api/models/{version['id']}/activate/")
        assert response.status_code == 200, response.content[:1000]
        versions.append(response.json())
    return versions


@pytest.fixture
def fresh_ensemble():
    """Each process caches its active ensemble; a test must not see the previous test's models."""
    from inference import ensemble as ensemble_holder

    ensemble_holder.reset()
    yield
    ensemble_holder.reset()


def ensemble_store(*, members: int = 3, rejection: bool = True) -> list[ModelVersion]:
    """Active tiny model versions written straight to storage: the upload checks are tested once elsewhere
    (test_api_models_alarms, the schemathesis run), so the many tests that only need models skip them."""
    plan = [("regression", seed) for seed in range(members)] + ([("rejection", 100)] if rejection else [])
    versions = []
    for kind, seed in plan:
        stored = default_storage.save(
            f"models/test/tiny-{kind}-{seed}.keras", ContentFile(tiny_model_file(kind, seed=seed))
        )
        versions.append(
            ModelVersionFactory(
                name=f"tiny-{kind}-{seed}",
                kind=kind,
                architecture=f"{kind}_tiny",
                file=stored,
                input_size=128,
                activated_at=timezone.now(),
            )
        )
    return versions


@pytest.fixture
def ensemble(fresh_ensemble):
    """A tiny active ensemble: three regression members and one rejection classifier."""
    return ensemble_store()
