"""A simulated volunteer population voting on simulated galaxies (no Django: the benchmark and the tests use it).

Volunteers (issue 14, item 5): a bias drawn from N(0, 1.5) deg clipped to +/-5, a scale uniform in 0.85-1.1
about 67.5 deg, a noise of 2-5 deg near edge-on (log-normal about 2.2) that grows by `growth` toward face-on (up
to 8 deg at 45 deg), 5% of votes mis-clicks (half one or two 5 deg slots off, half anywhere in 45-90), 2% careless
volunteers answering at random. A vote below 45 deg becomes a
face-on flag, which gives the confusion near 45 deg; inclinations fall on half degrees (the mean of two
neighbouring standards). Activity is heavy-tailed (log-normal), so a few volunteers cast most votes and most
galaxies are seen by volunteers who have seen little else. Galaxies: 72% inclined (45-90 deg), 8% face-on
(25-45 deg), 20% that volunteers mostly reject.

Votes come as a (galaxy, k) table of the k-th volunteer to see each galaxy, so a benchmark can replay the
first k votes of every galaxy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labeling.volunteer_model import ACCEPTED, FACE_ON, REJECTED

CENTER = 67.5


@dataclass(frozen=True)
class Population:
    bias: np.ndarray
    scale: np.ndarray
    noise: np.ndarray  # near edge-on
    careless: np.ndarray
    activity: np.ndarray  # relative rate of voting
    growth: float

    def __len__(self) -> int:
        return len(self.bias)


@dataclass(frozen=True)
class Sky:
    truth: np.ndarray  # true inclination (below 45 deg for a face-on galaxy)
    kind: np.ndarray  # ACCEPTED, FACE_ON or REJECTED: what a careful volunteer would answer
    gold: np.ndarray

    def __len__(self) -> int:
        return len(self.truth)

    @property
    def known(self) -> np.ndarray:
        """The pinned values: the truth of gold galaxies, NaN elsewhere."""
        return np.where(self.gold, self.truth, np.nan)


@dataclass(frozen=True)
class Ballots:
    """Votes as flat arrays, in arrival order within each galaxy (`position` 0, 1, ...)."""

    galaxy: np.ndarray
    volunteer: np.ndarray
    value: np.ndarray
    category: np.ndarray
    not_sure: np.ndarray
    position: np.ndarray

    def __len__(self) -> int:
        return len(self.galaxy)

    def take(self, mask: np.ndarray) -> Ballots:
        return Ballots(*(getattr(self, f)[mask] for f in self.__dataclass_fields__))

    def __add__(self, other: Ballots) -> Ballots:
        return Ballots(*(np.concatenate([getattr(self, f), getattr(other, f)]) for f in self.__dataclass_fields__))


def population(n: int, rng: np.random.Generator, *, careless: float = 0.02, growth: float = 0.6) -> Population:
    return Population(
        bias=np.clip(rng.normal(0.0, 1.5, n), -5.0, 5.0),
        scale=rng.uniform(0.85, 1.1, n),
        noise=np.clip(rng.lognormal(np.log(2.2), 0.25, n), 2.0, 5.0),
        careless=rng.random(n) < careless,
        activity=rng.lognormal(0.0, 1.2, n),
        growth=growth,
    )


def sky(n: int, rng: np.random.Generator, *, gold: float = 0.0, face_on: float = 0.08, rejected: float = 0.2) -> Sky:
    kind = rng.choice([ACCEPTED, FACE_ON, REJECTED], n, p=[1 - face_on - rejected, face_on, rejected])
    truth = np.where(kind == FACE_ON, rng.uniform(25.0, 45.0, n), rng.uniform(45.0, 90.0, n))
    is_gold = rng.random(n) < gold
    # Gold galaxies are chosen among clear cases (as the original's standards were).
    kind = np.where(is_gold, np.where(truth >= 45.0, ACCEPTED, FACE_ON), kind).astype(np.int8)
    return Sky(truth=truth, kind=kind, gold=is_gold)


def assign(pop: Population, n_galaxies: int, per_galaxy: int, rng: np.random.Generator) -> np.ndarray:
    """(n_galaxies, per_galaxy) volunteer ids, distinct within a row, drawn in proportion to activity."""
    p = pop.activity / pop.activity.sum()
    table = rng.choice(len(pop), size=(n_galaxies, per_galaxy), p=p)
    for _ in range(50):
        ordered = np.sort(table, axis=1)
        clash = (ordered[:, 1:] == ordered[:, :-1]).any(axis=1)
        if not clash.any():
            break
        table[clash] = rng.choice(len(pop), size=(int(clash.sum()), per_galaxy), p=p)
    return table


def cast(pop: Population, sk: Sky, galaxy: np.ndarray, volunteer: np.ndarray, rng: np.random.Generator):
    """Each volunteer's answer for each galaxy: (value or NaN, category, not_sure)."""
    n = len(galaxy)
    t = sk.truth[galaxy]
    growth_factor = 1.0 + pop.growth * (90.0 - np.clip(t, 45.0, 90.0)) / 45.0
    perceived = (
        CENTER
        + pop.bias[volunteer]
        + pop.scale[volunteer] * (t - CENTER)
        + pop.noise[volunteer] * growth_factor * rng.standard_normal(n)
    )
    # A mis-click lands one or two 5 deg slots away on step 1 (the neighbouring standards), or anywhere.
    misclick = rng.random(n) < 0.05
    slip = np.where(rng.random(n) < 0.5, rng.choice([-10.0, -5.0, 5.0, 10.0], n), rng.uniform(45.0, 90.0, n) - t)
    perceived = np.where(misclick, perceived + slip, perceived)
    careless = pop.careless[volunteer]
    perceived = np.where(careless, rng.uniform(45.0, 90.0, n), perceived)
    category = np.where(perceived < 45.0, FACE_ON, ACCEPTED)
    kind = sk.kind[galaxy]
    reject = np.where(kind == REJECTED, rng.random(n) < 0.75, rng.random(n) < 0.03)
    random_flag = careless & (rng.random(n) < 0.15)
    category = np.where(reject, REJECTED, category)
    category = np.where(random_flag, rng.choice([FACE_ON, REJECTED], n), category).astype(np.int8)
    value = np.where(category == ACCEPTED, np.round(np.clip(perceived, 45.0, 90.0) * 2.0) / 2.0, np.nan)
    not_sure = rng.random(n) < 0.08
    return value, category, not_sure


def ballots(pop: Population, sk: Sky, per_galaxy: int, rng: np.random.Generator, galaxies=None) -> Ballots:
    """`per_galaxy` votes on each galaxy (or on `galaxies`), by distinct volunteers."""
    galaxies = np.arange(len(sk)) if galaxies is None else np.asarray(galaxies)
    table = assign(pop, len(galaxies), per_galaxy, rng)
    galaxy = np.repeat(galaxies, per_galaxy)
    volunteer = table.ravel()
    value, category, not_sure = cast(pop, sk, galaxy, volunteer, rng)
    position = np.tile(np.arange(per_galaxy), len(galaxies))
    return Ballots(galaxy, volunteer, value, category, not_sure, position)


def constant_voter(volunteer: int, galaxies: np.ndarray, value: float, start_position: int) -> Ballots:
    """An adversary who answers `value` whatever the galaxy."""
    n = len(galaxies)
    return Ballots(
        galaxy=np.asarray(galaxies),
        volunteer=np.full(n, volunteer),
        value=np.full(n, float(value)),
        category=np.zeros(n, np.int8),
        not_sure=np.zeros(n, bool),
        position=np.full(n, start_position),
    )
