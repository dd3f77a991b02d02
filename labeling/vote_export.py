"""Votes and per-volunteer figures for research, under pseudonyms (reads; written by labeling.catalog_formats).

A volunteer appears only as a pseudonym: an HMAC of the account id keyed by the site's secret, so it is the
same in every export and cannot be turned back into the account without the secret. Never exported: the
username, e-mail, IP address, display name, or the free-text note of a vote (volunteers write names and
links there).
"""

from __future__ import annotations

from collections.abc import Iterator

from django.utils.crypto import salted_hmac

from labeling.catalog_formats import CatalogColumn
from labeling.models import Assignment, StandardGalaxy, VolunteerProfile, Vote

__all__ = ["VOLUNTEER_COLUMNS", "VOTE_COLUMNS", "pseudonym", "volunteer_chunks", "vote_chunks"]

_SALT = "giz.research-export.volunteer"


def pseudonym(user_id: int) -> str:
    """A volunteer's stable pseudonym, e.g. "v3f9a0c12d4e6" (48 bits of an HMAC-SHA256 of the account id)."""
    return "v" + salted_hmac(_SALT, str(user_id), algorithm="sha256").hexdigest()[:12]


def _c(name, dtype, unit, ucd, description, **kw) -> CatalogColumn:
    return CatalogColumn(name, dtype, unit, ucd, description, **kw)


VOTE_COLUMNS: tuple[CatalogColumn, ...] = (
    _c("vote_id", "i8", None, "meta.id;meta.main", "Vote number", nullable=False),
    _c("volunteer", "U13", None, "meta.id", "Volunteer pseudonym (stable across exports)", nullable=False),
    _c("pgc", "i8", None, "meta.id", "PGC number of the galaxy", nullable=False),
    _c("inclination", "f8", "deg", "src.orbital.inclination", "Inclination given (null when flagged)"),
    _c("flag", "U16", None, "meta.code", "face_on, not_spiral, bad_image, multiple_objects, disturbed or ambiguous"),
    _c("not_sure", "bool", None, "meta.code.qual", "The volunteer marked the answer as unsure", nullable=False),
    _c("left_standard", "f8", "deg", "src.orbital.inclination", "Inclination of the standard placed on the left"),
    _c("right_standard", "f8", "deg", "src.orbital.inclination", "Inclination of the standard placed on the right"),
    _c(
        "standards_shown",
        "U512",
        None,
        "meta.note",
        "Inclinations (deg) of every standard shown for this galaxy, comma-separated",
    ),
    _c("seconds_taken", "f8", "s", "time.interval", "Time the volunteer took"),
    _c("was_gold", "bool", None, "meta.code", "A gold galaxy of known inclination", nullable=False),
    _c("created_at", "U20", None, "time.creation", "When the vote was cast (UTC, ISO 8601)", nullable=False),
)

VOLUNTEER_COLUMNS: tuple[CatalogColumn, ...] = (
    _c("volunteer", "U13", None, "meta.id;meta.main", "Volunteer pseudonym (as in the votes)", nullable=False),
    _c("votes", "i4", None, "meta.number", "Votes cast", nullable=False),
    _c("weight", "f8", None, "stat.weight", "Weight of one vote, typical volunteer = 1", nullable=False),
    _c("calibration_slope", "f8", None, "stat.fit.param", "Slope of the linear correction", nullable=False),
    _c("calibration_intercept", "f8", "deg", "stat.fit.param", "Offset of the linear correction", nullable=False),
    _c("gold_votes", "i4", None, "meta.number", "Votes on gold galaxies", nullable=False),
    _c("gold_mae", "f8", "deg", "stat.error", "Mean absolute error on gold galaxies"),
)


def _iso(when) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _standards_shown(votes: list[tuple]) -> dict[tuple[int, int], str]:
    """(volunteer id, galaxy id) -> the inclinations of the standards shown, from the assignment used for the vote."""
    pairs = {(v[1], v[2]) for v in votes}
    assignments = Assignment.objects.filter(
        volunteer_id__in={p[0] for p in pairs}, galaxy_id__in={p[1] for p in pairs}, used_at__isnull=False
    ).values_list("volunteer_id", "galaxy_id", "standard_ids")
    shown = {(u, g): ids for u, g, ids in assignments if (u, g) in pairs}
    inclinations = dict(
        StandardGalaxy.objects.filter(id__in={i for ids in shown.values() for i in ids}).values_list(
            "id", "inclination"
        )
    )
    return {
        pair: ",".join(
            f"{inclinations[i]:.1f}" for i in sorted(ids, key=lambda i: inclinations.get(i, 0)) if i in inclinations
        )
        for pair, ids in shown.items()
    }


def vote_chunks(*, chunk_size: int = 10000) -> Iterator[dict[str, list]]:
    """Every vote, oldest first, as column-wise chunks of VOTE_COLUMNS."""
    fields = (
        "id",
        "volunteer_id",
        "galaxy_id",
        "galaxy__pgc",
        "inclination",
        "flag",
        "not_sure",
        "left_standard__inclination",
        "right_standard__inclination",
        "seconds_taken",
        "was_gold",
        "created_at",
    )
    qs = Vote.objects.order_by("id").values_list(*fields)
    names: dict[int, str] = {}
    last = 0
    while True:
        rows = list(qs.filter(id__gt=last)[:chunk_size])
        if not rows:
            return
        last = rows[-1][0]
        shown = _standards_shown(rows)
        for row in rows:
            names.setdefault(row[1], pseudonym(row[1]))
        yield {
            "vote_id": [r[0] for r in rows],
            "volunteer": [names[r[1]] for r in rows],
            "pgc": [r[3] for r in rows],
            "inclination": [r[4] for r in rows],
            "flag": [r[5] or None for r in rows],
            "not_sure": [r[6] for r in rows],
            "left_standard": [r[7] for r in rows],
            "right_standard": [r[8] for r in rows],
            "standards_shown": [shown.get((r[1], r[2])) for r in rows],
            "seconds_taken": [r[9] for r in rows],
            "was_gold": [r[10] for r in rows],
            "created_at": [_iso(r[11]) for r in rows],
        }


def volunteer_chunks() -> Iterator[dict[str, list]]:
    """The per-volunteer figures of the consensus model, one chunk (volunteers number thousands, not millions)."""
    rows = list(
        VolunteerProfile.objects.order_by("user_id").values_list(
            "user_id",
            "votes_count",
            "weight",
            "calibration_slope",
            "calibration_intercept",
            "gold_votes_count",
            "gold_abs_error_sum",
        )
    )
    yield {
        "volunteer": [pseudonym(r[0]) for r in rows],
        "votes": [r[1] for r in rows],
        "weight": [r[2] for r in rows],
        "calibration_slope": [r[3] for r in rows],
        "calibration_intercept": [r[4] for r in rows],
        "gold_votes": [r[5] for r in rows],
        "gold_mae": [r[6] / r[5] if r[5] else None for r in rows],
    }
