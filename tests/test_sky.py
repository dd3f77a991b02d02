"""The zone scheme never loses a galaxy inside a cone: candidates from zones + RA ranges contain every true match."""

import numpy as np
import pytest

from labeling import sky


def _candidates(ra, dec, zones_of_points, cone):
    zones, ranges = sky.cone_bounds(*cone)
    in_zone = np.isin(zones_of_points, zones)
    in_ra = np.zeros_like(in_zone)
    for lo, hi in ranges:
        in_ra |= (ra >= lo) & (ra <= hi)
    return in_zone & in_ra


@pytest.mark.parametrize("radius", [0.01, 1.0, 5.0, 30.0])
def test_candidates_hold_every_galaxy_within_the_radius_anywhere_on_the_sky(radius):
    rng = np.random.default_rng(7)
    ra = rng.uniform(0, 360, 50_000)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, 50_000)))
    zones = np.array([sky.zone_of(d) for d in dec])
    # Cone centres include the poles, RA 0/360 and points right next to galaxies.
    centres = [(0.0, 0.0), (359.99, 10.0), (10.0, 89.9), (200.0, -89.5), (0.0, 90.0)]
    centres += [(float(ra[i]), float(dec[i])) for i in rng.integers(0, len(ra), 40)]
    for c_ra, c_dec in centres:
        inside = sky.angular_distance_deg(c_ra, c_dec, ra, dec) <= radius
        candidates = _candidates(ra, dec, zones, (c_ra, c_dec, radius))
        assert not (inside & ~candidates).any(), (c_ra, c_dec, radius)
        if radius <= 1.0 and abs(c_dec) < 80:
            # And the index reads little more than the cone: at most a few times its area.
            assert candidates.sum() <= 4 * max(inside.sum(), 1) + 20


def test_zone_matches_the_database_formula():
    assert [sky.zone_of(d) for d in (-90.0, -89.76, 0.0, 0.24, 0.25, 90.0)] == [0, 0, 360, 360, 361, 720]


def test_distance_across_ra_zero_and_over_the_pole():
    assert sky.angular_distance_deg(359.5, 0.0, 0.5, 0.0) == pytest.approx(1.0)
    assert sky.angular_distance_deg(0.0, 89.5, 180.0, 89.5) == pytest.approx(1.0)
