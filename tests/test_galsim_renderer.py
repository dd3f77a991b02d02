"""The GalSim galaxy source and the shared population: determinism, geometry conventions, SDSS-like stamps."""

import dataclasses

import numpy as np
import pytest

from acquisition import galsim_renderer, population
from inference import baseline


def draw(seed=3, **overrides):
    drawn = population.draw_population(np.random.default_rng(seed), inclination=overrides.pop("inclination", 70.0))
    # A clean, centred, well-resolved galaxy unless a test says otherwise.
    clean = dict(neighbour=False, bright_stars=0, star_density=0.0, offset_x=0.0, offset_y=0.0, mu0_r=20.5)
    clean.update(d25_arcmin=1.5, fov_factor=2.0, stamp_scale=1.5 * 2.0 * 60 / population.STAMP_PX, dust_tau=0.0)
    return dataclasses.replace(drawn, **{**clean, **overrides})


def test_same_seed_same_pixels_other_seed_other_pixels():
    d = draw()
    first = galsim_renderer.render_bands(d, size=96, seed=5)
    assert first.shape == (96, 96, 3) and first.dtype == np.float32
    assert np.array_equal(first, galsim_renderer.render_bands(d, size=96, seed=5))
    assert not np.array_equal(first, galsim_renderer.render_bands(d, size=96, seed=6))


@pytest.mark.parametrize("position_angle", [0.0, 45.0, 120.0])
def test_position_angle_follows_the_imaging_convention(position_angle):
    """PA from north (up) through east (left), as inference.imaging and our own renderer use it."""
    bands = galsim_renderer.render_bands(draw(inclination=80.0, position_angle=position_angle), size=128, seed=1)
    measured = baseline.measure_axial_ratio(bands[..., 1]).position_angle
    difference = abs((measured - position_angle + 90.0) % 180.0 - 90.0)
    assert difference < 5.0


def test_edge_on_disks_are_thinner_but_never_thinner_than_q0():
    q = {}
    for inclination in (50.0, 85.0):
        bands = galsim_renderer.render_bands(draw(inclination=inclination, q0=0.2), size=128, seed=2)
        q[inclination] = baseline.measure_axial_ratio(bands[..., 1]).q
    assert q[85.0] < q[50.0] - 0.25
    assert q[85.0] > 0.15  # a thick disk (and the seeing) keep an edge-on galaxy from being a line


def test_small_galaxies_are_thickened_by_the_seeing():
    """The point of realistic stamp sizes: a small edge-on disk looks rounder than a large one."""
    big = draw(inclination=88.0, q0=0.12, seeing=1.5)
    small = dataclasses.replace(big, d25_arcmin=0.35, stamp_scale=0.35 * 2.0 * 60 / population.STAMP_PX)
    q = {}
    for name, d in (("big", big), ("small", small)):
        q[name] = baseline.measure_axial_ratio(galsim_renderer.render_bands(d, size=128, seed=4)[..., 1]).q
    assert q["small"] > q["big"] + 0.05


def test_colour_stamp_is_dark_smooth_sky_with_a_bright_reddish_galaxy():
    rgb = galsim_renderer.to_color_rgb(galsim_renderer.render_bands(draw(), size=128, seed=7))
    assert rgb.dtype == np.uint8 and rgb.shape == (128, 128, 3)
    grey = rgb.astype(float).mean(axis=-1)
    sky = np.median(grey[:16])
    assert sky < 20  # real SDSS stamps: sky 4-15 of 255 (GIZ.md)
    assert grey[56:72, 56:72].max() - sky > 100
    core = rgb[56:72, 56:72].reshape(-1, 3).astype(float).mean(axis=0)
    assert core[0] > core[2]  # redder than blue, as the real galaxies are


def test_population_follows_the_stamp_rules():
    rng = np.random.default_rng(0)
    draws = [population.draw_population(rng) for _ in range(400)]
    for d in draws:
        assert 1.5 <= d.fov_factor <= 3.0
        assert d.fov_arcsec == pytest.approx(d.fov_factor * d.d25_arcmin * 60, rel=0.05)
        # SkyServer's scale: 0.25 arcsec/px doubled until the field fits in 2048 px.
        assert d.cutout_scale in (0.25, 0.5, 1.0) and d.fov_arcsec / d.cutout_scale <= 2048
        assert 1.0 <= d.seeing <= 1.6
    q0 = {t: np.mean([d.q0 for d in draws if d.morphology == t]) for t in population.TYPES}
    assert q0["Sa"] > q0["Sb"] > q0["Sc"] > q0["Sd"]  # thicker disks in earlier types
    assert np.mean([d.mu0_r > 21.5 for d in draws]) > 0.2  # low surface brightness is common
    assert np.mean([d.morphology == "Sa" for d in draws]) > 0.15  # bulge-dominated too
    small = np.mean([d.d25_arcmin < 0.7 for d in draws])
    assert small > 0.2


@pytest.mark.parametrize("q0", [0.12, 0.2])
def test_an_edge_on_disk_is_as_thick_as_its_q0(q0):
    """Both sources must agree on what q0 means: an edge-on disk's axial ratio is q0 (Hubble's formula). With
    GalSim's sech^2 scale height set to q0 h it measured 0.085 for q0 = 0.12 and 0.12 for 0.2: half as thick
    as our renderer's disk of the same q0, so the same truth had two pictures."""
    big = dict(d25_arcmin=3.0, stamp_scale=3.0 * 2.0 * 60 / population.STAMP_PX, seeing=1.0)
    d = draw(inclination=90.0, q0=q0, bulge_fraction=0.0, bar_strength=0.0, **big)
    q = baseline.measure_axial_ratio(galsim_renderer.render_bands(d, size=256, seed=2)[..., 1]).q
    assert abs(q - q0) < 0.15 * q0


def test_a_face_on_disk_has_spiral_arms(monkeypatch):
    """Part of the disk's light lies along spiral arms: around an annulus the light rises and falls with the
    arms (a real spiral's m = 2-4 structure). The same galaxy drawn with no light in its arms is much flatter
    (its clumps still follow the arms). GalSim-only training on disks without arms did not learn what arms do to
    a stamp (5.8 deg RMS on our renderer's galaxies)."""
    fov_arcsec = 3.0 * 2.0 * 60  # D25 3 arcmin, the stamp twice that
    big = dict(d25_arcmin=3.0, stamp_scale=fov_arcsec / population.STAMP_PX, seeing=1.0, bar_strength=0.0)
    d = draw(inclination=0.0, bulge_fraction=0.0, morphology="Sc", **big)

    def arm_contrast():
        r_band = galsim_renderer.render_bands(d, size=256, seed=2)[..., 1]
        y, x = np.indices(r_band.shape) - (np.array(r_band.shape)[:, None, None] - 1) / 2
        radius = np.hypot(x, y) * fov_arcsec / 256 / d.disk_scale
        angle = np.arctan2(y, x)
        ring = (radius > 1.3) & (radius < 1.7)  # narrow: the arms wind through a wide one
        # Mean light in 36 sectors of the ring: its spread around the mean is the arms' contrast.
        sectors = [r_band[ring & (np.abs(angle - a) < np.pi / 36)].mean() for a in np.linspace(-np.pi, np.pi, 36)]
        return np.std(sectors) / np.mean(sectors)

    with_arms = arm_contrast()
    monkeypatch.setattr(galsim_renderer, "ARM_SHARE", dict.fromkeys(galsim_renderer.ARM_SHARE, (0.0, 0.0)))
    without = arm_contrast()
    assert with_arms > 0.15
    assert with_arms > 1.5 * without  # 0.19-0.21 against 0.09-0.10 over draw seeds 3-6
