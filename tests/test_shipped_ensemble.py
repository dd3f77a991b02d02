"""The shipped ensemble: files match their manifest, tampering is refused, and it still scores as recorded."""

import io
import shutil

import numpy as np
import pytest
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command

from inference import shipped
from inference.models import ModelVersion
from tests.api_fixtures import ensemble, fresh_ensemble, token_client, upload  # noqa: F401
from tests.factories import galaxy_jpeg


@pytest.fixture(scope="module")
def loaded():
    return shipped.load_members()


def test_manifest_lists_checksummed_members_with_their_provenance(loaded):
    manifest, models = loaded
    assert len(models) == len(manifest["members"]) >= 3
    for member, model in zip(manifest["members"], models, strict=True):
        assert member["sha256"] == shipped.sha256_of(shipped.SHIPPED_DIR / member["file"])
        assert member["parameters"] == model.count_params() < 400_000  # small enough to commit
        assert model.output_shape == (None, 2)  # inclination and its sigma
        assert set(member["sources"]) == {"ours", "galsim"}
    assert set(manifest["metrics"]) == {"ours", "galsim"}
    assert all(len(m["bins"]) == 9 for m in manifest["metrics"].values())  # 5-deg bins over 45-90
    assert manifest["sigma_scale"] > 0 and manifest["command"]


def test_an_altered_or_missing_file_is_refused(tmp_path):
    copy = tmp_path / "shipped"
    shutil.copytree(shipped.SHIPPED_DIR, copy)
    first = shipped.load_manifest(copy)["members"][0]["file"]
    data = bytearray((copy / first).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / first).write_bytes(bytes(data))
    with pytest.raises(shipped.ManifestError, match="does not match the manifest"):
        shipped.verify(copy)
    (copy / first).unlink()
    with pytest.raises(shipped.ManifestError, match="missing"):
        shipped.verify(copy)


@pytest.mark.parametrize("source", ["ours", "galsim"])
def test_shipped_ensemble_scores_within_half_a_degree_of_its_manifest(loaded, source):
    manifest, models = loaded
    data = shipped.check_set(source)
    prediction = shipped.predict(models, data.images, sigma_scale=manifest["sigma_scale"])
    rms = float(np.sqrt(np.mean((prediction.inclination - data.inclination) ** 2)))
    assert abs(rms - manifest["check"][source]["rms"]) <= 0.5
    assert (prediction.sigma > 0).all()


@pytest.fixture
def previous_ensemble(db):
    def version(name, kind):
        return ModelVersion.objects.create(
            name=name, kind=kind, architecture="tiny", file=f"models/test/{name}.keras", status="active"
        )

    return version("old-regression", "regression"), version("old-rejection", "rejection")


def test_activate_shipped_replaces_the_regression_members_only(previous_ensemble):
    old_regression, old_rejection = previous_ensemble
    call_command("activate_shipped", stdout=io.StringIO())
    active = ModelVersion.objects.filter(status="active", kind="regression")
    manifest = shipped.load_manifest()
    assert sorted(v.name.rsplit("-", 1)[0] for v in active) == sorted(
        f"shipped-{m['name']}" for m in manifest["members"]
    )
    old_regression.refresh_from_db()
    old_rejection.refresh_from_db()
    assert old_regression.status == "retired" and old_rejection.status == "active"
    assert all(default_storage.exists(v.file.name) for v in active)
    call_command("activate_shipped", stdout=io.StringIO())  # again: the same versions, no duplicates
    assert ModelVersion.objects.filter(name__startswith="shipped-").count() == len(manifest["members"])
    out = io.StringIO()
    call_command("activate_shipped", "--if-empty", stdout=out)
    assert "nothing to do" in out.getvalue()


def test_activate_shipped_refuses_altered_files_and_keeps_the_active_ensemble(previous_ensemble, tmp_path, monkeypatch):
    copy = tmp_path / "shipped"
    shutil.copytree(shipped.SHIPPED_DIR, copy)
    first = shipped.load_manifest(copy)["members"][0]["file"]
    (copy / first).write_bytes(b"not the shipped weights")
    monkeypatch.setattr(shipped, "SHIPPED_DIR", copy)
    with pytest.raises(CommandError, match="Refused the shipped ensemble.*does not match"):
        call_command("activate_shipped", stdout=io.StringIO())
    assert set(ModelVersion.objects.filter(status="active").values_list("name", flat=True)) == {
        "old-regression",
        "old-rejection",
    }
    assert not ModelVersion.objects.filter(name__startswith="shipped-").exists()


@pytest.mark.django_db
@pytest.mark.usefixtures("ensemble")
def test_an_upload_to_the_shipped_ensemble_carries_a_calibrated_sigma(alice):
    """The learned per-image sigma reaches the API, scaled as the manifest says, and never below the spread."""
    call_command("activate_shipped", stdout=io.StringIO())
    assert all(v.metrics.get("sigma_scale") for v in ModelVersion.objects.filter(status="active", kind="regression"))
    response = token_client(alice).post(
        "/api/inference/upload/", {"file": upload("g.jpg", galaxy_jpeg(inclination=70.0, size=128))}, format="multipart"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert len(body["members"]) == len(shipped.load_manifest()["members"])
    # A galaxy the members agree on still has the learned part of its sigma (a few degrees, not zero).
    assert body["sigma"] > body["spread"] and 0.5 < body["sigma"] < 20
