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
        metrics={"sigma_scale": 0.8},
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
