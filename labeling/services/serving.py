"""Serving galaxies: the standards drawn for the grid, the next galaxy (gold or by priority), reshuffles,
and inference's share of the label priority that orders them (the votes' share is the consensus's)."""

import math
import random
import secrets
from collections import defaultdict
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from giz_site.exceptions import ApplicationError
from labeling import selectors
from labeling.models import (
    Assignment,
    Galaxy,
    StandardGalaxy,
    VolunteerProfile,
    Vote,
)
from labeling.services.consensus import galaxy_priority_refresh
from labeling.services.volunteers import volunteer_profile_get

GRID_MIN, GRID_MAX = 45, 90
STEP1_DEGREES = list(range(GRID_MIN, GRID_MAX + 1, 5))
ALL_DEGREES = list(range(GRID_MIN, GRID_MAX + 1))
# How far a standard may sit from a grid point and still stand in for it.
GRID_TOLERANCE = 1.5
# Volunteers new to the task see more gold galaxies (as Zooniverse does): (votes so far below, rate).
GOLD_RATES = ((15, 1 / 3), (40, 1 / 5), (math.inf, 1 / 10))

_rng = random.SystemRandom()
PICK_FIELDS = ("id", "votes_count", "extra_votes", "label_priority", "is_gold", "pgc", "name", "ra", "dec")
PICK_FIELDS += ("d25_arcmin", "color_image", "retired_at")


def _standards_pool() -> list[tuple[int, float]]:
    """(id, inclination) of the active standards that have a colour image: a few hundred, kept per process."""
    return [
        (s["id"], s["exact_inclination"])
        for s in selectors.standards_active().values()
        if s["url"] and s["exact_inclination"] >= GRID_MIN - GRID_TOLERANCE
    ]


class _Reach:
    """For each grid point, the pool's standards within half a degree and within GRID_TOLERANCE of it (pool
    order), found once per pool rather than for every point of every draw."""

    def __init__(self, pool: list[tuple[int, float]]):
        self._by_degree: dict[int, list[tuple[int, float]]] = defaultdict(list)
        for sid, inclination in pool:
            self._by_degree[round(inclination)].append((sid, inclination))
        self._near: dict[int, tuple[list[int], list[int]]] = {}

    def near(self, degree: int) -> tuple[list[int], list[int]]:
        found = self._near.get(degree)
        if found is None:
            reach_buckets = math.ceil(GRID_TOLERANCE)
            nearby = [
                s for d in range(degree - reach_buckets, degree + reach_buckets + 1) for s in self._by_degree.get(d, ())
            ]
            found = self._near[degree] = tuple(
                [sid for sid, incl in nearby if abs(incl - degree) <= reach] for reach in (0.5, GRID_TOLERANCE)
            )
        return found


_reach_kept: tuple[object, _Reach] | None = None  # (the process's standards_active() it was built from, it)


def _active_reach() -> _Reach:
    global _reach_kept
    active = selectors.standards_active()  # the same dict until the process re-reads the standards
    kept = _reach_kept
    if kept is None or kept[0] is not active:
        kept = _reach_kept = (active, _Reach(_standards_pool()))
    return kept[1]


def standards_draw(
    *, degrees: list[int], avoid: set[int] = frozenset(), pool: list[tuple[int, float]] | None = None
) -> dict[int, int]:
    """One standard drawn at random for each grid point (degree -> standard id).

    Standards within half a degree of the point are preferred, then the nearest within GRID_TOLERANCE; ones in
    `avoid` (already shown) only when nothing else fits. A point with no standard near it is left out.
    """
    reach = _active_reach() if pool is None else _Reach(pool)
    chosen: dict[int, int] = {}
    used: set[int] = set()
    for degree in degrees:
        for within in reach.near(degree):
            near = [sid for sid in within if sid not in used]
            fresh = [sid for sid in near if sid not in avoid]
            if fresh or near:
                chosen[degree] = _rng.choice(fresh or near)
                used.add(chosen[degree])
                break
    return chosen


def gold_rate(*, votes_count: int) -> float:
    return next(rate for below, rate in GOLD_RATES if votes_count < below)


def _gold_pick(*, volunteer) -> Galaxy | None:
    """A random gold galaxy the volunteer has not voted on: a random start on the gold index, then wrap."""
    voted = Vote.objects.filter(volunteer=volunteer, galaxy=OuterRef("pk"))
    golds = Galaxy.objects.filter(is_gold=True, state=Galaxy.State.READY).exclude(Exists(voted)).order_by("id")
    bounds = Galaxy.objects.filter(is_gold=True, state=Galaxy.State.READY).order_by("id").values_list("id", flat=True)
    first, last = bounds.first(), bounds.last()
    if first is None:
        return None
    pivot = _rng.randint(first, last)
    return golds.filter(id__gte=pivot).first() or golds.filter(id__lt=pivot).first()


# The hottest query of the site, once per served galaxy: written out, since building it with the ORM (two
# EXISTS, a counted subquery) cost more CPU than running it. Same rules as the ORM filters it replaced.
_PICK_SQL = """
SELECT {fields} FROM {galaxy} g
WHERE g.retired_at IS NULL AND g.state = %(ready)s AND NOT g.is_gold
  AND NOT EXISTS (SELECT 1 FROM {vote} v WHERE v.volunteer_id = %(volunteer)s AND v.galaxy_id = g.id)
  AND NOT EXISTS (SELECT 1 FROM {standard} s WHERE s.galaxy_id = g.id)
  AND g.votes_count + (
      SELECT count(*) FROM {assignment} a WHERE a.galaxy_id = g.id AND a.used_at IS NULL AND a.expires_at > %(now)s
  ) < %(votes_to_retire)s + g.extra_votes
ORDER BY g.label_priority DESC, g.votes_count, g.id
LIMIT 1
{lock}""".format(
    fields=", ".join(f"g.{name}" for name in PICK_FIELDS),
    galaxy=Galaxy._meta.db_table,
    vote=Vote._meta.db_table,
    standard=StandardGalaxy._meta.db_table,
    assignment=Assignment._meta.db_table,
    lock="{lock}",  # filled per database: SQLite (the embedded default) has no row locks and serializes writers
)


def _label_pick(*, volunteer, now) -> Galaxy | None:
    """The first galaxy in priority order the volunteer has not voted on and that still has a vote free.

    Walks galaxy_to_label_idx (priority, then fewest votes) in one query; standards are never labelled (they are
    the yardstick). Each candidate's open assignments (counted on assignment_open_idx) are reserved votes, so the
    last vote a galaxy needs goes to one volunteer only, and galaxies other volunteers hold are passed over in the
    database. Rows another transaction is serving right now are skipped (SKIP LOCKED) rather than waited for; the
    caller's transaction keeps the chosen row locked until its assignment is saved.
    """
    locks = connection.features.has_select_for_update_skip_locked
    sql = _PICK_SQL.format(lock="FOR NO KEY UPDATE OF g SKIP LOCKED" if locks else "")
    params = {
        "ready": Galaxy.State.READY.value,
        "volunteer": volunteer.pk,
        "now": connection.ops.adapt_datetimefield_value(now),
        "votes_to_retire": settings.GIZ_VOTES_TO_RETIRE,
    }
    return next(iter(Galaxy.objects.raw(sql, params)), None)


# Once per served galaxy, written out as the pick is. At most one open assignment per volunteer (a constraint).
_OPEN_SQL = "SELECT * FROM {assignment} WHERE volunteer_id = %s AND used_at IS NULL {lock}".format(
    assignment=Assignment._meta.db_table, lock="{lock}"
)
_VOTES_COUNT_SQL = f"SELECT votes_count FROM {VolunteerProfile._meta.db_table} WHERE user_id = %s"


def row_lock() -> str:
    """For written-out statements: a row lock that other writers of the row wait for but foreign-key checks do
    not (as select_for_update(no_key=True)); none on SQLite, the embedded default, which serializes writers."""
    if connection.features.has_select_for_no_key_update:
        return "FOR NO KEY UPDATE"
    return "FOR UPDATE" if connection.features.has_select_for_update else ""


def _open_assignment(*, volunteer) -> Assignment | None:
    """The volunteer's open assignment, its row locked (its galaxy is read only when it is served again)."""
    return next(iter(Assignment.objects.raw(_OPEN_SQL.format(lock=row_lock()), [volunteer.pk])), None)


def _votes_count(*, volunteer) -> int:
    """The volunteer's votes so far (from the profile, made on first use: personas and admin-made users have none)."""
    with connection.cursor() as cursor:
        cursor.execute(_VOTES_COUNT_SQL, [volunteer.pk])
        row = cursor.fetchone()
    return row[0] if row is not None else volunteer_profile_get(user=volunteer).votes_count


def assignment_next(*, volunteer) -> Assignment | None:
    """The galaxy this volunteer should label now, with the standards to show, or None when nothing is left.

    An open, unexpired assignment is served again (a reload shows the same galaxy). Gold galaxies are mixed
    in at a rate that falls with experience.
    """
    for _ in range(3):
        try:
            return _assignment_next(volunteer=volunteer)
        except IntegrityError:
            # Another request of the same volunteer created the open assignment first: serve that one.
            continue
    raise ApplicationError("Too many requests at once; reload the page.", code="busy", status_code=409)


@transaction.atomic
def _assignment_next(*, volunteer) -> Assignment | None:
    now = timezone.now()
    current = _open_assignment(volunteer=volunteer)
    if current is not None:
        if current.expires_at > now and current.galaxy.retired_at is None:
            return current
        current.delete()  # lapsed: free its reservation and pick afresh
    galaxy = None
    if _rng.random() < gold_rate(votes_count=_votes_count(volunteer=volunteer)):
        galaxy = _gold_pick(volunteer=volunteer)
    galaxy = galaxy or _label_pick(volunteer=volunteer, now=now) or _gold_pick(volunteer=volunteer)
    if galaxy is None:
        return None
    standards = standards_draw(degrees=ALL_DEGREES)
    return Assignment.objects.create(
        volunteer=volunteer,
        galaxy=galaxy,
        token=secrets.token_urlsafe(32),
        standard_ids=sorted(set(standards.values())),
        is_gold=galaxy.is_gold,
        issued_at=now,
        expires_at=now + timedelta(seconds=settings.GIZ_ASSIGNMENT_TTL_S),
    )


def assignment_reshuffle(*, volunteer, token: str, degrees: list[int]) -> dict[int, int]:
    """Draw other standards for these grid points of an open assignment; they become citable in the vote."""
    wanted = sorted({int(d) for d in degrees if GRID_MIN <= int(d) <= GRID_MAX})
    if not wanted:
        raise ApplicationError("Choose grid points between 45 and 90 degrees.", code="invalid_degrees")
    with transaction.atomic():
        assignment = (
            Assignment.objects.select_for_update(no_key=True)
            .filter(token=token, volunteer=volunteer, used_at__isnull=True)
            .first()
        )
        if assignment is None:
            raise ApplicationError(
                "This galaxy is no longer open for you; load the next one.", code="unknown_assignment"
            )
        drawn = standards_draw(degrees=wanted, avoid=set(assignment.standard_ids))
        assignment.standard_ids = sorted(set(assignment.standard_ids) | set(drawn.values()))
        assignment.save(update_fields=["standard_ids"])
    return drawn


def galaxy_prediction_record(*, galaxy: Galaxy, predicted_inclination: float | None, model_priority: float) -> float:
    """Inference's latest word on a galaxy; returns its new label priority."""
    galaxy.predicted_inclination, galaxy.model_priority = predicted_inclination, model_priority
    galaxy.save(update_fields=["predicted_inclination", "model_priority"])
    return galaxy_priority_refresh(galaxy=galaxy)


def galaxy_color_image_set(*, galaxy_id: int, name: str, horizontal_name: str = "") -> None:
    """Acquisition's choice of the colour composite volunteers see, and of its copy turned so the major axis is
    horizontal (storage names, "" for none)."""
    Galaxy.objects.filter(pk=galaxy_id).exclude(color_image=name, color_image_horizontal=horizontal_name).update(
        color_image=name, color_image_horizontal=horizontal_name
    )
