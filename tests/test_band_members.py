"""Members that read the float g, r, i FITS stamps beside the colour members: the ensemble combines whatever
inputs a galaxy has, and a galaxy with only a JPEG still gets an answer."""

import io

import numpy as np
import pytest
from astropy.io import fits
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile

from acquisition import renderer
from giz_site.exceptions import ApplicationError
from inference import imaging, services
from inference.architectures import AsinhScaling, build_regression_model
from inference.models import EnsemblePrediction
from tests import inference_fixtures
from tests.factories import GalaxyFactory, GalaxyImageFactory, ModelVersionFactory
from tests.inference_fixtures import SIZE, make_ensemble

tiny_inference_settings = inference_fixtures.tiny_inference_settings

pytestmark = pytest.mark.django_db


def constant_flux_model(inclination: float):
    """A real flux member (AsinhScaling first) answering `inclination` for every image."""
    model = build_regression_model("tiny", input_size=SIZE, input_mode="flux")
    layer = model.get_layer("scaled_inclination")
    kernel, _ = layer.get_weights()
    layer.set_weights([np.zeros_like(kernel), np.array([(inclination - 67.5) / 22.5], np.float32)])
    return model


def rendered_bands(seed: int = 1, size: int = 64) -> np.ndarray:
    params = renderer.draw_params(np.random.default_rng(seed), inclination=70.0)
    return renderer.render_galaxy(params, size=size, seed=seed).bands


def fits_bytes(plane: np.ndarray, **header) -> bytes:
    hdu = fits.PrimaryHDU(np.asarray(plane, np.float32))
    for key, value in header.items():
        hdu.header[key] = value
    buffer = io.BytesIO()
    hdu.writeto(buffer)
    return buffer.getvalue()


def with_stamps(galaxy, *, broken: str = "") -> None:
    bands = rendered_bands(seed=galaxy.pk)
    for k, band in enumerate("gri"):
        data = b"not a fits file" if band == broken else fits_bytes(bands[..., k], BAND=band)
        GalaxyImageFactory(
            galaxy=galaxy, band=band, format="fits", width=64, height=64, file=ContentFile(data, name=f"{band}.fits")
        )


@pytest.fixture
def flux_member(db):
    return ModelVersionFactory(name="flux-80", input_mode="flux", keras_model=constant_flux_model(80.0))


class TestCombinedEnsemble:
    def test_a_galaxy_with_fits_stamps_is_answered_by_both_kinds_of_member(self, flux_member):
        make_ensemble((60.0,), rejection=None)
        galaxy = GalaxyFactory(with_image=True)
        with_stamps(galaxy)

        result = services.predict_galaxy(galaxy=galaxy)
        assert result.members == pytest.approx({"reg-0-60": 60.0, "flux-80": 80.0}, abs=1e-3)
        summary = EnsemblePrediction.objects.get(galaxy=galaxy)
        assert (summary.n_models, summary.median) == (2, pytest.approx(70.0, abs=1e-3))
        assert summary.image.band == "color"

    def test_a_galaxy_with_only_a_jpeg_gets_the_colour_members_answer(self, flux_member):
        make_ensemble((60.0,), rejection=None)
        galaxy = GalaxyFactory(with_image=True)
        result = services.predict_galaxy(galaxy=galaxy)
        assert result.members == pytest.approx({"reg-0-60": 60.0}, abs=1e-3)
        assert EnsemblePrediction.objects.get(galaxy=galaxy).n_models == 1

    def test_unreadable_stamps_leave_the_colour_answer(self, flux_member):
        make_ensemble((60.0,), rejection=None)
        galaxy = GalaxyFactory(with_image=True)
        with_stamps(galaxy, broken="r")
        assert services.predict_galaxy(galaxy=galaxy).members == pytest.approx({"reg-0-60": 60.0}, abs=1e-3)

    def test_with_only_flux_members_a_jpeg_is_refused_and_a_fits_cube_upload_is_answered(self, flux_member, api_client):
        galaxy = GalaxyFactory(with_image=True)
        with pytest.raises(ApplicationError) as err:
            services.predict_galaxy(galaxy=galaxy)
        assert err.value.code == "no_model_for_input"
        assert not EnsemblePrediction.objects.exists()

        cube = np.moveaxis(rendered_bands(), -1, 0)
        upload = SimpleUploadedFile("cube.fits", fits_bytes(cube, BANDS="g,r,i"), "application/fits")
        response = api_client.post("/api/inference/upload/", {"file": upload}, format="multipart")
        assert response.status_code == 200, response.content
        assert response.json()["median"] == pytest.approx(80.0, abs=1e-3)


class TestFluxInput:
    def test_flux_preparation_keeps_the_full_range_in_sky_noise_units(self):
        bands = rendered_bands(seed=3, size=128)
        decoded = imaging.DecodedImage(pixels=bands, kind="bands", format="FITS", bands=("g", "r", "i"))
        flux = imaging.prepare_for_model(decoded, size=64, mode="flux", position_angle=30.0)
        assert flux.shape == (64, 64, 3) and flux.dtype == np.float32
        sky = flux[:8].reshape(-1, 3)  # the top rows: mostly sky
        assert abs(float(np.median(sky))) < 0.5
        assert float(flux.max()) > 20.0 and float(flux.min()) < -1.0  # not clipped to [0, 1]
        # Units drop out: the same galaxy in other units prepares the same.
        scaled = imaging.DecodedImage(pixels=bands * 1000.0, kind="bands", format="FITS", bands=("g", "r", "i"))
        again = imaging.prepare_for_model(scaled, size=64, mode="flux", position_angle=30.0)
        assert np.allclose(flux, again, rtol=1e-3, atol=1e-3)

    def test_flux_members_refuse_a_colour_picture(self):
        rgb = imaging.DecodedImage(pixels=np.zeros((40, 40, 3), np.float32), kind="rgb", format="JPEG")
        with pytest.raises(ValueError, match="flux members need float band data"):
            imaging.prepare_for_model(rgb, size=32, mode="flux")

    def test_the_asinh_softening_is_learned(self):
        model = build_regression_model("tiny", input_size=SIZE, input_mode="flux")
        layer = model.get_layer("asinh_scaling")
        assert isinstance(layer, AsinhScaling) and [w.name for w in layer.trainable_weights] == ["softening"]
        x = np.linspace(-5, 1e4, 3 * SIZE * SIZE, dtype=np.float32).reshape(1, SIZE, SIZE, 3)
        out = np.asarray(layer(x))
        assert np.allclose(out, np.arcsinh(x / 3.0), rtol=1e-4, atol=1e-4)  # starts at 3 sky sigmas


class TestTrainingRunTrainsFluxMembers:
    def test_a_run_trains_flux_members_beside_the_colour_ones_and_they_answer_galaxies_with_stamps(self):
        from inference.models import ModelVersion, TrainingRun
        from inference.tasks import train_task
        from labeling.models import ConsensusLabel

        for seed in range(10):
            galaxy = GalaxyFactory(with_image=True, image__seed=seed)
            with_stamps(galaxy)
            ConsensusLabel.objects.create(galaxy=galaxy, status="accepted", inclination=50.0 + 4 * seed, n_votes=3)
        run = services.training_run_create(trigger="manual", config={"flux_members": ["tiny"]}, queue=False)
        train_task(run.pk)

        run = TrainingRun.objects.get(pk=run.pk)
        assert run.status == "succeeded", run.error
        flux = ModelVersion.objects.get(training_run=run, input_mode="flux")
        assert flux.status == "active" and flux.kind == "regression"
        assert flux.metrics["n_labelled_with_stamps"] == 10 and len(flux.metrics["learned_softening_sigma"]) == 3
        assert set(run.metrics["flux_members"]) == {flux.name}
        assert ModelVersion.objects.filter(training_run=run, input_mode="color", kind="regression").count() == 3

        with_stamps_galaxy = GalaxyFactory(with_image=True)
        with_stamps(with_stamps_galaxy)
        assert flux.name in services.predict_galaxy(galaxy=with_stamps_galaxy).members
        assert flux.name not in services.predict_galaxy(galaxy=GalaxyFactory(with_image=True)).members
