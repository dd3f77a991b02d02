"""Cone searches on plain SQL: declination zones plus an RA range, then the exact angular distance (no Django).

The sky is cut into declination zones ZONE_HEIGHT_DEG high; a galaxy's zone is a stored column indexed
together with RA. A cone of radius r around (ra, dec) lies within the zones its declination range touches
and within an RA interval of half-width asin(sin r / cos dec) (the widest point of the circle), so the
database reads only an index range per zone; the exact great-circle distance then trims the corners.
The same scheme serves PostgreSQL and SQLite without extensions (Gray et al. 2006, "zones" in SkyServer).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["ZONE_HEIGHT_DEG", "ZONES_PER_DEG", "angular_distance_deg", "cone_bounds", "zone_of"]

ZONES_PER_DEG = 4
ZONE_HEIGHT_DEG = 1.0 / ZONES_PER_DEG


def zone_of(dec: float) -> int:
    """The zone of a declination, as the database column computes it: floor((dec + 90) * ZONES_PER_DEG)."""
    return math.floor((dec + 90.0) * ZONES_PER_DEG)


def cone_bounds(ra: float, dec: float, radius: float) -> tuple[list[int], list[tuple[float, float]]]:
    """The zones a cone touches and the RA intervals (one, or two across RA 0) that contain it, in degrees."""
    dec_lo, dec_hi = max(-90.0, dec - radius), min(90.0, dec + radius)
    zones = list(range(zone_of(dec_lo), zone_of(dec_hi) + 1))
    if dec_hi >= 90.0 or dec_lo <= -90.0 or radius >= 90.0:
        return zones, [(0.0, 360.0)]
    # The meridians tangent to the circle: exact, plus a hair so rounding never loses an edge galaxy.
    ratio = math.sin(math.radians(radius)) / math.cos(math.radians(dec))
    half_width = math.degrees(math.asin(min(1.0, ratio))) + 1e-9
    if half_width >= 90.0:
        return zones, [(0.0, 360.0)]
    lo, hi = ra - half_width, ra + half_width
    if lo < 0:
        return zones, [(0.0, hi), (lo + 360.0, 360.0)]
    if hi >= 360.0:
        return zones, [(lo, 360.0), (0.0, hi - 360.0)]
    return zones, [(lo, hi)]


def angular_distance_deg(ra1, dec1, ra2, dec2) -> np.ndarray:
    """Great-circle distance in degrees (haversine, accurate at small separations)."""
    ra1, dec1, ra2, dec2 = (np.radians(np.asarray(x, dtype=float)) for x in (ra1, dec1, ra2, dec2))
    a = np.sin((dec2 - dec1) / 2) ** 2 + np.cos(dec1) * np.cos(dec2) * np.sin((ra2 - ra1) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0))))
