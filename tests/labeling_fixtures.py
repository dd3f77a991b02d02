"""Scenes for the labeling tests, built with tests.factories: galaxies with images, standards on the 45-90 grid."""

from labeling.models import Galaxy
from tests.factories import GalaxyFactory, GalaxyImageFactory, StandardGalaxyFactory


def make_galaxy(*, inclination: float = 60.0, size: int = 64, drawn_at: float | None = None, **kwargs) -> Galaxy:
    """A ready galaxy with a colour JPEG whose major axis lies at `drawn_at` (default: its catalogue PA)."""
    galaxy = GalaxyFactory(**kwargs)
    drawn = {} if drawn_at is None else {"drawn_at": drawn_at}
    GalaxyImageFactory(galaxy=galaxy, inclination=inclination, seed=galaxy.pgc, size=size, **drawn)
    return galaxy


def make_gold(*, known: float = 67.0, **kwargs) -> Galaxy:
    return make_galaxy(inclination=known, is_gold=True, known_inclination=known, **kwargs)


def make_standards(
    *, per_degree: int = 1, low: int = 45, high: int = 90, size: int = 64, position_angles: tuple[float, ...] = (30.0,)
) -> dict[int, list]:
    """Standards at every whole degree from low to high (per_degree of each, for reshuffles), their catalogue
    position angles taken in turn from `position_angles` (their images drawn at it)."""
    standards: dict[int, list] = {}
    for n, degree in enumerate(range(low, high + 1)):
        for k in range(per_degree):
            standard = StandardGalaxyFactory(
                inclination=degree + (0.2 * k if degree < 90 else -0.2 * k),
                galaxy__position_angle=position_angles[(n * per_degree + k) % len(position_angles)],
            )
            GalaxyImageFactory(galaxy=standard.galaxy, inclination=degree, seed=standard.galaxy.pgc, size=size)
            standards.setdefault(degree, []).append(standard)
    return standards
