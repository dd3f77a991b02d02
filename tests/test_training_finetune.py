"""Retraining fine-tunes the active members' weights; scratch only when no active member fits, and the run says so."""

from io import StringIO

import numpy as np
import pytest
from django.core.management import call_command
from django.urls import reverse

from inference.architectures import build_sigma_regression_model
from inference.ensemble import load_from_storage
from inference.models import ModelVersion, TrainingRun
from tests import inference_fixtures
from tests.factories import ModelVersionFactory

tiny_inference_settings = inference_fixtures.tiny_inference_settings


CURVE = {"answer": [45.0, 60.0, 90.0], "true": [45.0, 62.0, 90.0]}


def first_kernel(version: ModelVersion) -> np.ndarray:
    return load_from_storage(version.file.name).get_layer("block0_conv0").get_weights()[0]


def train(*args) -> TrainingRun:
    call_command("train", "--profile", "tiny", *args, stdout=StringIO(), stderr=StringIO())
    return TrainingRun.objects.latest("pk")


@pytest.mark.django_db
def test_a_retrain_starts_from_the_active_weights_and_falls_back_to_scratch_only_without_a_match(
    bob_client, api_client
):
    sources = inference_fixtures.make_ensemble(inclinations=(55.0, 65.0), rejection=0.1)
    # A member with a learned sigma, as the shipped ones: fine-tuned with its own loss and calibration.
    with_sigma = ModelVersionFactory(
        name="reg-sigma",
        keras_model=build_sigma_regression_model("tiny", input_size=inference_fixtures.SIZE),
        metrics={"sigma_scale": 0.8, "calibration": CURVE},
    )
    sources.append(with_sigma)
    by_pk = {v.pk: v for v in sources}

    run = train()

    assert run.status == "succeeded"
    assert "fine-tuned from the active members" in run.message
    new = list(ModelVersion.objects.filter(training_run=run).select_related("initialized_from"))
    # Every new member (3 regression + the rejection classifier) started from its own active version.
    assert {v.initialized_from_id for v in new} == set(by_pk)
    assert all(v.initialized_from.kind == v.kind for v in new)
    initialization = run.metrics["initialization"]
    assert {i["from_id"] for i in initialization.values()} == set(by_pk)
    assert all(i["reason"] == "fine-tuned from the active member" for i in initialization.values())
    for version in new:
        tuned = first_kernel(version)
        source = first_kernel(version.initialized_from)
        # One epoch at the fine-tuning rate moves a weight by about 1e-3; a fresh init differs by ~0.3.
        assert np.abs(tuned - source).max() < 0.02
        if version.kind == "regression":
            assert not np.array_equal(tuned, source)  # trained, not copied
    regression = next(v for v in new if v.kind == "regression" and v.initialized_from_id != with_sigma.pk)
    assert regression.metrics["fit"]["learning_rate"] == pytest.approx(3e-4)
    tuned_sigma = next(v for v in new if v.initialized_from_id == with_sigma.pk)
    assert load_from_storage(tuned_sigma.file.name).output_shape == (None, 2)
    assert tuned_sigma.metrics["sigma_scale"] == 0.8 and "sigma_scale" not in regression.metrics
    # The tiny run's few validation galaxies cannot draw a curve of its own: the member keeps the one it started
    # from; one that started from a member without a curve answers as it is.
    assert tuned_sigma.metrics["calibration"] == CURVE
    assert tuned_sigma.metrics["calibration_from"] == "kept from reg-sigma"
    assert "calibration" not in regression.metrics and "calibration_from" not in regression.metrics

    body = api_client.get(f"/api/models/{regression.pk}/").json()
    assert body["initialized_from"]["id"] == regression.initialized_from_id
    assert body["initialized_from"]["name"] == regression.initialized_from.name
    assert body["initialized_from"]["url"] == f"/api/models/{regression.initialized_from_id}/"
    html = bob_client.get(reverse("admin:inference_modelversion_change", args=[regression.pk])).content.decode()
    assert regression.initialized_from.name in html

    # No active member of the architecture the run trains: scratch, said on the run and on each version.
    ModelVersion.objects.filter(status="active").update(architecture="vgg_b")
    scratch = train()

    assert scratch.status == "succeeded"
    assert "from scratch (no compatible active member)" in scratch.message
    assert all(i["from_id"] is None for i in scratch.metrics["initialization"].values())
    assert "no active regression member of architecture tiny with 32 px color input" in str(
        scratch.metrics["initialization"]
    )
    fresh = list(ModelVersion.objects.filter(training_run=scratch))
    assert fresh and all(v.initialized_from_id is None for v in fresh)
    member = next(v for v in fresh if v.kind == "regression")
    assert np.abs(first_kernel(member) - first_kernel(sources[0])).max() > 0.1
    assert api_client.get(f"/api/models/{member.pk}/").json()["initialized_from"] is None


def brightness_model(size: int):
    """A member whose answer is a known function of the image: uniform grey p answers 49.5 + 36 p deg, which on
    galaxies of 45 + 45 p deg is 0.8 of the way from the middle of the range (67.5) to the truth."""
    import keras

    inputs = keras.Input((size, size, 3))
    mean = keras.layers.GlobalAveragePooling2D()(inputs)
    answer = keras.layers.Dense(1, kernel_initializer=keras.initializers.Constant(12.0), bias_initializer="zeros")(mean)
    model = keras.Model(inputs, keras.layers.Rescaling(1.0, offset=49.5)(answer))
    return model


def test_a_fine_tuned_member_gets_its_own_curve_from_enough_validation_galaxies():
    """curves.fitted_curves maps each member's answers back to the truth, bin by bin, when every 5-deg bin holds
    CURVE_MIN_PER_BIN validation galaxies, and draws none from fewer: a part-range curve would go on with its end
    slopes over the bins it never saw."""
    from inference.metrics import apply_calibration
    from inference.services import curves

    size = inference_fixtures.SIZE
    truth = np.repeat(np.arange(45.5, 90.0, 1.0), 7)  # 35 per 5-deg bin
    grey = np.round((truth - 45.0) / 45.0 * 255.0).astype(np.uint8)
    images = np.broadcast_to(grey[:, None, None, None], (len(truth), size, size, 3)).copy()
    model = brightness_model(size)
    raw = curves.member_answers(curves.predictor([model], size), images)[:, 0]
    assert np.abs(raw - (67.5 + 0.8 * (truth - 67.5))).max() < 0.2  # pulled toward the middle

    (curve,) = curves.fitted_curves([model], size, images, truth)
    calibrated = apply_calibration(raw, np.zeros(len(raw)), curve)[0]
    assert np.abs(calibrated - truth).max() < 0.2
    assert np.abs(raw - truth).max() > 4.0

    few = np.concatenate([np.flatnonzero(truth < 85.0), np.flatnonzero(truth >= 85.0)[: curves.CURVE_MIN_PER_BIN - 1]])
    assert curves.fitted_curves([model], size, images[few], truth[few]) == [None]


@pytest.mark.django_db
def test_a_retrained_member_gets_the_curve_fitted_for_it_and_the_run_judges_it_through_that_curve(monkeypatch):
    """Where the run's validation galaxies fill every bin, each new member gets its own curve, and the run's test
    figures are its answers through that curve. The fit is replaced by a curve that sends every answer 1,000 deg
    down, so the members answer the 45-deg floor whatever their weights; without the curve they answer near 60."""
    from inference.services import curves

    down = {"answer": [0.0, 1000.0], "true": [-1000.0, 0.0]}
    fitted = []
    monkeypatch.setattr(
        curves, "fitted_curves", lambda models, size, images, truth: fitted.append(len(truth)) or [down] * len(models)
    )
    inference_fixtures.make_ensemble(inclinations=(55.0, 65.0), rejection=0.1)

    run = train()

    assert run.status == "succeeded" and fitted
    regression = list(ModelVersion.objects.filter(training_run=run, kind="regression"))
    assert regression
    for version in regression:
        assert version.metrics["calibration"] == down
        assert version.metrics["calibration_from"] == f"fitted on {fitted[0]} validation galaxies"
        assert version.metrics["bias"] == pytest.approx(-version.metrics["mae"])  # every answer at 45 deg
    ensemble = run.metrics["ensemble"]
    assert ensemble["bias"] == pytest.approx(-ensemble["mae"])


@pytest.mark.django_db
def test_a_site_whose_active_members_predate_the_haar_stem_fine_tunes_them_rebuilt_rather_than_from_scratch(
    monkeypatch,
):
    """The profiles train Haar-stem members; an active pooled member of the twin architecture is rebuilt with the
    stem (answering as it did) and fine-tuned, so an upgraded site keeps what its members learned."""
    from inference.architectures import build_regression_model
    from inference.services import training

    monkeypatch.setitem(training.PROFILES["tiny"], "members", ["vgg_a_haar"])
    pooled = ModelVersionFactory(
        name="pooled", architecture="vgg_a", keras_model=build_regression_model("vgg_a", input_size=32)
    )
    ModelVersionFactory(name="rej", kind="rejection", answer=0.1)

    run = train()

    assert run.status == "succeeded"
    (member,) = ModelVersion.objects.filter(training_run=run, kind="regression")
    assert member.architecture == "vgg_a_haar" and member.initialized_from_id == pooled.pk
    assert run.metrics["initialization"][member.name]["reason"] == (
        "fine-tuned from the active member, rebuilt with the Haar stem"
    )
    model = load_from_storage(member.file.name)
    assert model.get_layer("stem_haar").kernel.shape == (2, 2, 3, 12)
    # The pooled member's first kernel, moved by one epoch at the fine-tuning rate, reads the average channels.
    assert np.abs(first_kernel(member)[:, :, :3] - first_kernel(pooled)).max() < 0.02
