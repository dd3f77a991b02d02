"""The synthetic galaxy renderer: determinism, physics of the projected disk, stamp sizing and
the output formats."""

import dataclasses
import io
import json

import numpy as np
import pytest
from PIL import Image

from acquisition import renderer as synthetic
from acquisition.contact_sheet import contact_sheet
from inference.imaging import decode_image


def params(seed=1, **overrides):
    drawn = synthetic.draw_params(np.random.default_rng(seed), inclination=overrides.pop("inclination", 60.0))
    return dataclasses.replace(drawn, **overrides)


def test_same_seed_same_pixels_other_seed_other_pixels():
    p = params()
    first = synthetic.render_galaxy(p, size=128, seed=5)
    again = synthetic.render_galaxy(p, size=128, seed=5)
    other = synthetic.render_galaxy(p, size=128, seed=6)
    assert np.array_equal(first.bands, again.bands)
    assert not np.array_equal(first.bands, other.bands)
    assert synthetic.draw_params(np.random.default_rng(3)) == synthetic.draw_params(np.random.default_rng(3))


def test_bands_and_truth():
    rendering = synthetic.render_galaxy(params(inclination=72.0, position_angle=40.0), size=128, seed=1)
    assert rendering.bands.shape == (128, 128, 3)
    assert rendering.bands.dtype == np.float32
    truth = json.loads(json.dumps(rendering.truth))  # JSON-serialisable
    assert truth["inclination"] == 72.0
    assert truth["position_angle"] == 40.0
    assert 0.1 <= truth["q0"] <= 0.25
    assert truth["bands"] == ["g", "r", "i"]
    for key in ("bulge_fraction", "n_arms", "pitch_angle", "bar_strength", "dust_tau", "pixel_scale"):
        assert key in truth


def test_stamp_is_sized_from_d25_like_the_real_ones():
    for seed in range(20):
        p = synthetic.draw_params(np.random.default_rng(seed))
        fov_arcmin = p.stamp_scale(512) * 512 / 60.0
        assert 1.5 <= fov_arcmin / p.d25_arcmin <= 3.0
        assert 0.1 <= p.q0 <= 0.25
        assert 1.0 <= p.seeing <= 1.6


def test_bulge_is_redder_than_disk():
    p = params(
        inclination=0.0,
        bulge_fraction=0.3,
        arm_strength=0.0,
        clumpiness=0.0,
        star_density=0.0,
        bright_stars=0,
        background_density=0.0,
        neighbour=False,
        dust_tau=0.0,
        bar_strength=0.0,
    )
    p = dataclasses.replace(p, sky_sigma=(0.0, 0.0, 0.0))
    bands = synthetic.render_galaxy(p, size=256, seed=1).bands
    centre = bands[124:132, 124:132].sum(axis=(0, 1))
    ring = bands[128, 128 + 40 : 128 + 60].sum(axis=0)
    # g - i colour (flux ratio i / g) larger in the centre: redder bulge.
    assert centre[2] / centre[0] > 1.15 * ring[2] / ring[0]


def test_flux_is_conserved_with_inclination():
    # Optically thin disk (no dust, no arm dust lanes): tilting it changes its shape, not its
    # total light (the rest is light beyond the stamp edge).
    totals = []
    for inclination in (0.0, 60.0, 88.0):
        p = params(
            inclination=inclination,
            dust_tau=0.0,
            star_density=0.0,
            bright_stars=0,
            background_density=0.0,
            neighbour=False,
            clumpiness=0.0,
            fov_factor=3.0,
            arm_strength=0.0,
        )
        p = dataclasses.replace(p, sky_sigma=(0.0, 0.0, 0.0))
        totals.append(synthetic.render_galaxy(p, size=256, seed=1).band("r").sum())
    assert np.ptp(totals) / np.mean(totals) < 0.03


def test_dust_lane_darkens_edge_on_midplane():
    base = dict(
        inclination=88.0,
        position_angle=90.0,
        star_density=0.0,
        bright_stars=0,
        background_density=0.0,
        neighbour=False,
        near_side=1,
    )
    dusty = params(dust_tau=2.5, **base)
    clear = params(dust_tau=0.0, **base)
    dusty, clear = (dataclasses.replace(p, sky_sigma=(0.0, 0.0, 0.0)) for p in (dusty, clear))
    d = synthetic.render_galaxy(dusty, size=256, seed=1).band("g")
    c = synthetic.render_galaxy(clear, size=256, seed=1).band("g")
    # Along the major axis (horizontal at PA 90), a bit off centre, the lane removes light.
    assert d[126:131, 150:170].sum() < 0.8 * c[126:131, 150:170].sum()


def test_noise_follows_the_sky_sigma():
    p = params(star_density=0.0, bright_stars=0, background_density=0.0, neighbour=False)
    p = dataclasses.replace(p, pixel_scale=synthetic.SDSS_PIXEL_SCALE, fov_factor=3.0)
    rendering = synthetic.render_galaxy(p, size=256, seed=2)
    corner = rendering.bands[:40, :40]
    measured = corner.reshape(-1, 3).std(axis=0)
    assert measured == pytest.approx(np.array(p.sky_sigma), rel=0.2)


def test_fits_output_round_trips_through_the_decoder():
    rendering = synthetic.render_galaxy(params(), size=96, seed=1)
    decoded = decode_image(synthetic.to_fits(rendering))
    assert decoded.kind == "bands"
    assert decoded.bands == ("g", "r", "i")
    np.testing.assert_array_equal(decoded.pixels, rendering.bands)


def test_colour_jpeg_looks_like_a_stamp():
    rendering = synthetic.render_galaxy(params(inclination=30.0), size=128, seed=1)
    jpeg = synthetic.to_color_jpeg(rendering)
    image = Image.open(io.BytesIO(jpeg))
    assert image.format == "JPEG" and image.size == (128, 128)
    pixels = np.asarray(image).astype(float)
    assert pixels[:10, :10].mean() < 40  # dark sky
    assert pixels[60:68, 60:68].mean() > 120  # bright galaxy centre


def test_render_at_is_deterministic_and_follows_the_scale():
    a = synthetic.render_at(150.1, 2.2, scale_arcsec_per_px=0.4, width=96, height=64)
    b = synthetic.render_at(150.1, 2.2, scale_arcsec_per_px=0.4, width=96, height=64)
    c = synthetic.render_at(150.2, 2.2, scale_arcsec_per_px=0.4, width=96, height=64)
    assert a.bands.shape == (64, 96, 3)
    assert np.array_equal(a.bands, b.bands)
    assert a.truth["inclination"] != c.truth["inclination"]
    assert a.truth["pixel_scale"] == 0.4
    assert (a.truth["ra"], a.truth["dec"]) == (150.1, 2.2)


def test_contact_sheet_is_a_png_grid():
    renderings = [synthetic.render_galaxy(params(seed=s), size=64, seed=s) for s in range(3)]
    png = contact_sheet(renderings, labels=["a", "b", "c"], columns=2, tile=64)
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    assert image.width > 2 * 64 and image.height > 2 * 64
