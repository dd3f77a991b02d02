"""The shipped ensemble: files match their manifest, tampering is refused, and it still scores as recorded."""

import io
import shutil

import numpy as np
import pytest
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from PIL import Image, ImageDraw

from acquisition import population
from inference import ensemble as ensemble_holder
from inference import shipped, training_sets
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
    for curve in shipped.calibrations_of(manifest):  # fitted by `finish`, monotone
        assert curve and np.all(np.diff(curve["answer"]) > 0) and np.all(np.diff(curve["true"]) > 0)
    assert manifest["sigma_scale"] > 0 and manifest["command"]


def test_the_rejection_classifier_is_checksummed_and_scored_per_source_and_junk_kind():
    entry, model = shipped.load_rejection()
    assert entry["sha256"] == shipped.sha256_of(shipped.SHIPPED_DIR / entry["file"])
    assert entry["parameters"] == model.count_params() < 100_000 and model.output_shape == (None, 1)
    figures = entry["metrics"]
    assert set(figures["keep_rate"]) == {"ours", "galsim"}
    assert set(figures["reject_rate"]) == set(training_sets.JUNK_KINDS)
    assert figures["threshold"] == entry["threshold"] in shipped.REJECTION_THRESHOLDS
    choice = entry["threshold_choice"]
    assert choice["validation"]["threshold"] == entry["threshold"] and choice["met"]
    # Chosen on the validation sets: the lowest candidate keeping the share of clean spirals of every source.
    assert min(choice["validation"]["keep_rate"].values()) >= shipped.REJECTION_KEEP
    assert choice["validation"]["n_clean"] == {
        s: n for s, (n, _) in shipped.REJECTION_SETS["validation"]["clean"].items()
    }
    assert entry["command"] and entry["data"]["test"]["clean"]["galsim"]["n"] > 0


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
    shutil.copy(shipped.SHIPPED_DIR / first, copy / first)
    shipped.verify(copy)
    (copy / shipped.REJECTION_FILE).write_bytes(b"another classifier")
    with pytest.raises(shipped.ManifestError, match=f"{shipped.REJECTION_FILE}: sha256 .* does not match"):
        shipped.load_rejection(copy)


def test_one_sigma_scale_serves_sources_whose_error_tails_differ():
    rng = np.random.default_rng(5)
    learned = np.ones((4000, 1))  # one member, learned sigma 1 deg: its spread adds nothing

    def group(error):
        return error, np.zeros((len(error), 1)), learned

    gaussian = group(2.0 * rng.standard_normal(4000))
    assert shipped.calibrate_sigma_scale([gaussian]) == pytest.approx(2.0, rel=0.04)
    # A source with heavy tails needs a wider sigma for its 2-sigma share: the scale moves toward it
    # as far as the other source's targets allow.
    heavy = group(1.6 * rng.standard_t(3, 4000))
    scale = shipped.calibrate_sigma_scale([gaussian, heavy])
    assert shipped.calibrate_sigma_scale([heavy]) >= scale > 2.0

    def share(group_, n_sigma):
        return np.mean(np.abs(group_[0]) < n_sigma * scale)

    assert share(heavy, 1) >= 0.63 and share(heavy, 2) >= 0.92 and share(gaussian, 1) <= 0.73


def test_the_cross_source_pair_is_committed_checksummed_and_saw_one_source_each(tmp_path):
    # bench_robust's cross-source figure needs them; without the files it could not be rerun.
    kept = shipped.load_manifest(shipped.CROSS_SOURCE_DIR)
    assert [m["name"] for m in kept["members"]] == list(shipped.CROSS_SOURCE_MEMBERS)
    for entry in kept["members"]:
        model = shipped.load_cross_source(entry["name"])
        assert model.output_shape == (None, 2) and len(entry["sources"]) == 1
        assert entry["sources"] == shipped.MEMBERS[entry["name"]][1] and entry["epochs"] > 0
    copy = tmp_path / "cross"
    shutil.copytree(shipped.CROSS_SOURCE_DIR, copy)
    name = kept["members"][0]["name"]
    data = bytearray((copy / f"{name}.keras").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / f"{name}.keras").write_bytes(bytes(data))
    with pytest.raises(shipped.ManifestError, match="does not match the manifest"):
        shipped.load_cross_source(name, directory=copy)


@pytest.mark.parametrize("source", ["ours", "galsim"])
def test_shipped_ensemble_scores_within_half_a_degree_of_its_manifest(loaded, source):
    manifest, models = loaded
    data = shipped.check_set(source)
    prediction = shipped.predict(
        models, data.images, sigma_scale=manifest["sigma_scale"], calibrations=shipped.calibrations_of(manifest)
    )
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


def test_activate_shipped_replaces_the_members_and_the_rejection_classifier(previous_ensemble):
    old_regression, old_rejection = previous_ensemble
    call_command("activate_shipped", stdout=io.StringIO())
    active = ModelVersion.objects.filter(status="active", kind="regression")
    manifest = shipped.load_manifest()
    assert sorted(v.name.rsplit("-", 1)[0] for v in active) == sorted(
        f"shipped-{m['name']}" for m in manifest["members"]
    )
    rejection = ModelVersion.objects.get(status="active", kind="rejection")
    assert rejection.name == f"shipped-shipped_rejection-{manifest['rejection']['sha256'][:8]}"
    assert rejection.metrics["threshold"] == manifest["rejection"]["threshold"]
    old_regression.refresh_from_db()
    old_rejection.refresh_from_db()
    assert old_regression.status == "retired" and old_rejection.status == "retired"
    assert all(default_storage.exists(v.file.name) for v in [*active, rejection])
    call_command("activate_shipped", stdout=io.StringIO())  # again: the same versions, no duplicates
    assert ModelVersion.objects.filter(name__startswith="shipped-").count() == len(manifest["members"]) + 1
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


def _jpeg(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(out, format="JPEG", quality=90)
    return out.getvalue()


def not_galaxies(size: int = 512) -> dict[str, bytes]:
    """Made here by hand, not by the generator the classifier was trained on."""
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:size, 0:size]
    stars = rng.normal(12, 3, (size, size, 3))
    centres, peaks, widths = rng.uniform(0, size, (40, 2)), rng.uniform(40, 255, 40), rng.uniform(1.5, 4, 40)
    for (cx, cy), peak, width in zip(centres, peaks, widths, strict=True):
        stars += (peak * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * width**2)))[..., None]
    cartoon = Image.new("RGB", (size, size), "white")
    pen = ImageDraw.Draw(cartoon)
    pen.polygon([(100, 300), (250, 120), (400, 300)], fill=(200, 30, 30))
    pen.rectangle([130, 300, 370, 460], fill=(240, 200, 60), outline="black", width=4)
    pen.ellipse([380, 40, 480, 140], fill=(250, 220, 0))
    return {
        "blank": _jpeg(np.zeros((size, size, 3))),
        "noise": _jpeg(rng.uniform(0, 255, (size, size, 3))),
        "star field": _jpeg(stars),
        "cartoon": _jpeg(np.asarray(cartoon)),
    }


def a_galaxy(size: int = 512) -> bytes:
    draw = population.draw_population(np.random.default_rng(11), inclination=70.0)
    return _jpeg(training_sets.render_stamp("galsim", draw, seed=11, render_size=size, look=False))


@pytest.mark.django_db
@pytest.mark.usefixtures("fresh_ensemble")
def test_an_image_that_is_not_a_galaxy_gets_a_high_rejection_likelihood_and_a_wide_sigma(alice):
    call_command("activate_shipped", stdout=io.StringIO())
    client = token_client(alice)
    threshold = shipped.load_manifest()["rejection"]["threshold"]

    galaxy = client.post("/api/inference/upload/", {"file": upload("g.jpg", a_galaxy())}, format="multipart").json()
    assert galaxy["rejection_likelihood"] < threshold and galaxy["sigma"] < 6

    for kind, data in not_galaxies().items():
        body = client.post("/api/inference/upload/", {"file": upload("x.jpg", data)}, format="multipart").json()
        assert body["rejection_likelihood"] >= threshold, kind
        # Never a confident inclination: the sigma says "anywhere in 45-90" (13 deg for certain junk).
        assert body["sigma"] >= 9, kind
        original = client.post("/api/file", {"file": upload("x.jpg", data)}, format="multipart").json()
        assert original["rejection_likelihood"]["summary"]["mean"] >= 100 * threshold, kind
        assert original["inclinations"]["summary"]["sigma"] >= 9, kind


@pytest.mark.django_db
@pytest.mark.usefixtures("ensemble")
def test_a_members_calibration_curve_moves_its_answer_on_the_site(alice):
    """The curve a member carries (the manifest's, copied to its version) is applied to its answer in the API."""
    call_command("activate_shipped", stdout=io.StringIO())
    regression = ModelVersion.objects.filter(status="active", kind="regression").order_by("name")
    assert [v.metrics.get("calibration") for v in regression] == shipped.calibrations_of(shipped.load_manifest())
    client = token_client(alice)
    version = regression.first()

    def answers_with(curve):
        version.metrics = {**version.metrics, "calibration": curve}
        version.save(update_fields=["metrics"])
        ensemble_holder.invalidate()
        response = client.post("/api/inference/upload/", {"file": upload("g.jpg", stamp)}, format="multipart")
        assert response.status_code == 200, response.content
        return response.json()

    # A rendered spiral the rejection classifier keeps, so its sigma is the models' own, not widened as junk's.
    draw = population.draw_population(np.random.default_rng(3), inclination=62.0)
    out = io.BytesIO()
    Image.fromarray(training_sets.render_stamp("ours", draw, seed=3, look=False)).save(out, "JPEG", quality=90)
    stamp = out.getvalue()
    raw = answers_with(None)
    assert raw["rejection_likelihood"] < 0.25
    # The identity plus 3 deg, then a curve twice as steep: the answer moves 3 deg, then its sigma doubles.
    shifted = answers_with({"answer": [45.0, 90.0], "true": [48.0, 93.0]})
    assert shifted["members"][version.name] == pytest.approx(min(raw["members"][version.name] + 3.0, 90.0), abs=1e-3)
    others = {k: v for k, v in raw["members"].items() if k != version.name}
    assert {k: v for k, v in shifted["members"].items() if k != version.name} == pytest.approx(others, abs=1e-6)
    # Twice as steep around the raw answer: the answer stays, the member's learned sigma doubles.
    answer = raw["members"][version.name]
    steep = answers_with({"answer": [answer - 1.0, answer + 1.0], "true": [answer - 2.0, answer + 2.0]})
    assert steep["members"] == pytest.approx(raw["members"], abs=1e-3)
    assert steep["spread"] == pytest.approx(raw["spread"], abs=1e-3) and steep["sigma"] > raw["sigma"] + 0.1
