"""The model registry: upload (.keras and .h5), refusals of bad files, activate/retire/compare, system check."""

import keras
import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse

from giz_site.exceptions import ApplicationError
from inference import ensemble, services
from inference.models import ModelVersion
from tests import inference_fixtures
from tests.factories import galaxy_jpeg
from tests.inference_fixtures import (
    constant_regression_model,
    make_ensemble,
    model_bytes,
)

active_ensemble = inference_fixtures.active_ensemble
tiny_inference_settings = inference_fixtures.tiny_inference_settings

pytestmark = pytest.mark.django_db
UPLOAD = reverse("admin:inference_modelversion_upload")


def upload(client, data: bytes, *, name: str, filename: str = "model.keras", kind: str = "regression"):
    return client.post(
        UPLOAD,
        {"file": SimpleUploadedFile(filename, data), "name": name, "kind": kind, "output": "degrees", "notes": ""},
    )


def wrong_output_model() -> keras.Model:
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    return keras.Model(inputs, keras.layers.Dense(3)(x))


class TestUpload:
    def test_staff_upload_a_keras_model_as_a_candidate_without_touching_the_active_ensemble(
        self, bob_client, active_ensemble
    ):
        before = ensemble.current()
        response = upload(bob_client, model_bytes(constant_regression_model(75.0)), name="uploaded-75")
        version = ModelVersion.objects.get(name="uploaded-75")
        assert response.status_code == 302 and response["Location"].endswith(f"/{version.pk}/change/")
        assert (version.status, version.format, version.input_size) == ("candidate", "keras", 32)
        assert version.file.name.endswith(".keras")
        assert ensemble.current() is before

    def test_h5_files_from_the_seed_are_accepted(self, bob_client, db):
        response = upload(bob_client, model_bytes(constant_regression_model(70.0), ".h5"), name="seed", filename="m.h5")
        assert response.status_code == 302
        version = ModelVersion.objects.get(name="seed")
        assert version.format == "h5" and version.file.name.endswith(".h5")
        services.model_version_activate(model_version=version)
        assert services.predict_image_bytes(data=galaxy_jpeg()).median == pytest.approx(70.0, abs=1e-3)

    @pytest.mark.parametrize(
        ("make", "message"),
        [
            (lambda: b"just some text, not a model\n" * 10, "This is not a Keras model file"),
            (lambda: b"\x89HDF\r\n\x1a\n" + b"\x00corrupt" * 100, "could not be loaded as a Keras model"),
            (lambda: b"PK\x03\x04" + b"broken zip" * 50, "could not be loaded as a Keras model"),
            (lambda: model_bytes(constant_regression_model(60.0, size=64)), "this site feeds one 32 x 32 x 3"),
            (lambda: model_bytes(wrong_output_model()), "must give one number per image"),
        ],
        ids=["text", "corrupt-h5", "corrupt-keras", "wrong-input-shape", "wrong-output"],
    )
    def test_bad_files_are_refused_with_a_clear_message(self, bob_client, make, message):
        make_ensemble((60.0,), rejection=None)
        before = ensemble.current()
        response = upload(bob_client, make(), name="bad")
        assert response.status_code == 200
        assert message in response.content.decode()
        assert not ModelVersion.objects.filter(name="bad").exists()
        assert ensemble.current() is before
        assert ModelVersion.objects.filter(status="active").count() == 1

    def test_a_regression_model_as_rejection_classifier_is_refused(self, bob):
        with pytest.raises(ApplicationError) as excinfo:
            services.model_version_upload(
                file=ContentFile(model_bytes(constant_regression_model(60.0))), name="x", kind="rejection", user=bob
            )
        assert excinfo.value.code == "wrong_output_range"

    def test_duplicate_names_are_refused(self, bob, active_ensemble):
        with pytest.raises(ApplicationError) as excinfo:
            services.model_version_upload(
                file=ContentFile(model_bytes(constant_regression_model(60.0))),
                name="reg-0-50",
                kind="regression",
                user=bob,
            )
        assert excinfo.value.code == "name_taken"


class TestAdminRegistry:
    def test_activate_retire_and_compare_from_the_list(self, bob_client, active_ensemble):
        changelist = reverse("admin:inference_modelversion_changelist")
        candidate = ModelVersion.objects.create(
            name="cand",
            kind="regression",
            architecture="tiny",
            file=active_ensemble[0].file.name,
            input_size=32,
            metrics={"rms": 2.5, "mae": 1.9, "bins": {"45-55": {"rms": 2.1, "mae": 1.5, "n": 10}}},
        )
        bob_client.post(changelist, {"action": "activate", "_selected_action": [candidate.pk]})
        candidate.refresh_from_db()
        assert candidate.status == "active" and candidate.activated_at is not None
        assert "cand" in ensemble.current().model_versions

        bob_client.post(changelist, {"action": "retire", "_selected_action": [active_ensemble[0].pk]})
        active_ensemble[0].refresh_from_db()
        assert active_ensemble[0].status == "retired"
        assert "reg-0-50" not in ensemble.current().model_versions

        response = bob_client.post(
            changelist, {"action": "compare", "_selected_action": [candidate.pk, active_ensemble[1].pk]}
        )
        html = bob_client.get(response["Location"]).content.decode()
        assert "cand" in html and "reg-1-60" in html and "2.500" in html and "RMS 45-55" in html

    def test_the_last_regression_model_cannot_be_retired(self, db):
        (only,) = make_ensemble((60.0,), rejection=None)
        with pytest.raises(ApplicationError) as excinfo:
            services.model_version_retire(model_version=only)
        assert excinfo.value.code == "last_model"


def test_missing_active_model_file_is_a_system_check_error(active_ensemble):
    call_command("check")  # all files present: passes
    version = active_ensemble[1]
    version.file.storage.delete(version.file.name)
    with pytest.raises(Exception) as excinfo:
        call_command("check")
    assert "giz.E010" in str(excinfo.value) and "reg-1-60" in str(excinfo.value)
