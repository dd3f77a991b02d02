"""The axial-ratio baseline on rendered disks: exact physics where it should be, and failing
in the ways the method is known to fail (noise, bulges)."""

import dataclasses

import numpy as np
import pytest

from acquisition import renderer as synthetic
from inference.baseline import inclination_from_axial_ratio, measure_axial_ratio, predict_inclination

INCLINATIONS = (50.0, 60.0, 70.0, 80.0, 85.0)


def clean_disk(inclination, *, q0=0.2, bulge=0.02, noise=0.0, position_angle=30.0, size=256):
    """A smooth, dust-free, star-free disk: the case the axial-ratio method is built for."""
    params = synthetic.draw_params(np.random.default_rng(7), inclination=inclination, position_angle=position_angle)
    params = dataclasses.replace(
        params,
        q0=q0,
        bulge_fraction=bulge,
        arm_strength=0.0,
        clumpiness=0.0,
        bar_strength=0.0,
        dust_tau=0.0,
        star_density=0.0,
        bright_stars=0,
        background_density=0.0,
        neighbour=False,
        fov_factor=2.0,
        mu0_r=20.5,
        sky_sigma=tuple(s * noise for s in params.sky_sigma),
    )
    return synthetic.render_galaxy(params, size=size, seed=3).band("r")


def rms_error(**kwargs):
    errors = [predict_inclination(clean_disk(i, **kwargs)) - i for i in INCLINATIONS]
    return float(np.sqrt(np.mean(np.square(errors))))


def test_formula_matches_hubble_relation():
    assert inclination_from_axial_ratio(1.0) == pytest.approx(0.0)
    assert inclination_from_axial_ratio(0.2) == pytest.approx(90.0)
    assert inclination_from_axial_ratio(0.1) == pytest.approx(90.0)  # thinner than q0: edge-on
    # cos^2 i = (q^2 - q0^2) / (1 - q0^2) inverted at 60 deg
    q60 = np.sqrt(0.25 * (1 - 0.04) + 0.04)
    assert inclination_from_axial_ratio(q60) == pytest.approx(60.0, abs=1e-6)
    assert inclination_from_axial_ratio(np.array([1.0, 0.2])).tolist() == pytest.approx([0.0, 90.0])


@pytest.mark.parametrize("inclination", [0.0, 30.0, 45.0, 60.0, 75.0, 85.0])
def test_thin_disk_axial_ratio_follows_cos_i(inclination):
    # A nearly infinitely thin disk (q0 = 0.02): b/a = cos i, up to seeing and pixels, which
    # thicken the image by at most 0.035 in b/a at these sizes.
    q = measure_axial_ratio(clean_disk(inclination, q0=0.02)).q
    assert q == pytest.approx(np.cos(np.radians(inclination)), abs=0.035)


def test_position_angle_is_recovered():
    for pa in (0.0, 30.0, 90.0, 135.0):
        measured = measure_axial_ratio(clean_disk(70.0, position_angle=pa)).position_angle
        assert min(abs(measured - pa), 180 - abs(measured - pa)) < 1.5


def test_clean_disks_recovered_within_a_few_degrees():
    for inclination in INCLINATIONS:
        assert predict_inclination(clean_disk(inclination)) == pytest.approx(inclination, abs=3.0)


def test_noise_makes_it_worse():
    clean, noisy = rms_error(), rms_error(noise=40.0)
    assert clean < 2.5
    assert noisy > clean + 1.0


def test_bulges_make_it_worse():
    disk, bulgy = rms_error(), rms_error(bulge=0.6)
    assert bulgy > disk + 2.0


def test_stars_do_not_derail_it():
    image = clean_disk(70.0).copy()
    # A bright star off the disk, a few scale lengths from the centre.
    rows, cols = np.mgrid[: image.shape[0], : image.shape[1]]
    image += 50.0 * np.exp(-((rows - 60.0) ** 2 + (cols - 200.0) ** 2) / (2 * 2.0**2))
    assert predict_inclination(image) == pytest.approx(70.0, abs=3.0)


def test_colour_images_and_blank_images():
    grey = clean_disk(60.0)
    colour = np.repeat(grey[..., np.newaxis], 3, axis=-1)
    assert predict_inclination(colour) == pytest.approx(predict_inclination(grey))
    with pytest.raises(ValueError):
        measure_axial_ratio(np.zeros((64, 64)))
