"""Scenes for the labeling tests, built with tests.factories: galaxies with images, standards on the 45-90 grid."""

from labeling.models import Galaxy
from tests.factories import GalaxyFactory, GalaxyImageFactory, StandardGalaxyFactory


def make_galaxy(*, inclination: float = 60.0, **kwargs) -> Galaxy:
    galaxy = GalaxyFactory(**kwargs)
    GalaxyImageFactory(galaxy=galaxy, inclination=inclination, seed=galaxy.pgc)
    return galaxy


def make_gold(*, known: float = 67.0, **kwargs) -> Galaxy:
    return make_galaxy(inclination=known, is_gold=True, known_inclination=known, **kwargs)


def make_standards(*, per_degree: int = 1, low: int = 45, high: int = 90) -> dict[int, list]:
    """Standards at every whole degree from low to high (per_degree of each, for reshuffles)."""
    standards: dict[int, list] = {}
    for degree in range(low, high + 1):
        for k in range(per_degree):
            standard = StandardGalaxyFactory(inclination=degree + (0.2 * k if degree < 90 else -0.2 * k))
            GalaxyImageFactory(galaxy=standard.galaxy, inclination=degree, seed=standard.galaxy.pgc)
            standards.setdefault(degree, []).append(standard)
    return standards
