"""Reads for the published catalogue: its rows in chunks (for exports) and cone searches.

Rows come as column-wise chunks for labeling.catalog_formats (CATALOG_COLUMNS, None for a missing value).
Chunks are pages of the PGC index (keyset pagination: no long transaction, no server-side cursor), with
the consensus joined and three small queries per chunk for the latest ensemble prediction, the model
version ids and the votes' most frequent rejection flag.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterator

import numpy as np
from django.conf import settings
from django.db.models import Count, Q, QuerySet, TextField
from django.db.models.functions import Cast

from inference.baseline import inclination_from_axial_ratio
from inference.models import EnsemblePrediction, ModelVersion
from labeling import sky
from labeling.catalog_formats import CATALOG_COLUMNS
from labeling.consensus import REJECT_FLAGS
from labeling.models import ConsensusLabel, Galaxy, Vote
from labeling.selectors import galaxy_list_filtered

__all__ = ["catalog_chunks", "catalog_count", "catalog_queryset", "cone_search", "galaxies_near"]

_GALAXY_FIELDS = (
    "id",
    "pgc",
    "name",
    "ra",
    "dec",
    "d25_arcmin",
    "position_angle",
    "axial_ratio",
    "source",
    "consensus__status",
    "consensus__inclination",
    "consensus__uncertainty",
    "consensus__n_votes",
    "consensus__updated_at",
)


def _cone_condition(ra: float, dec: float, radius: float) -> Q:
    zones, ra_ranges = sky.cone_bounds(ra, dec, radius)
    in_ra = Q()
    for lo, hi in ra_ranges:
        in_ra |= Q(ra__gte=lo, ra__lte=hi)
    return Q(dec_zone__in=zones) & in_ra


def catalog_queryset(*, filters: dict) -> QuerySet[Galaxy]:
    """Galaxies matching the galaxy API's filters plus `status`, a cone (`cone_ra`, `cone_dec`, `cone_radius`),
    a list of PGC numbers (`pgcs`, the admin's selection) and `without_gold` (exports for volunteers).

    The cone is only narrowed to its zones and RA range here; catalog_chunks applies the exact distance.
    """
    qs = galaxy_list_filtered(filters=filters)
    if filters.get("without_gold"):
        qs = qs.exclude(is_gold=True)
    if filters.get("status"):
        qs = qs.filter(consensus__status=filters["status"])
    if filters.get("pgcs") is not None:
        qs = qs.filter(pgc__in=filters["pgcs"])
    if filters.get("cone_radius") is not None:
        qs = qs.filter(_cone_condition(filters["cone_ra"], filters["cone_dec"], filters["cone_radius"]))
    return qs


def catalog_count(*, filters: dict) -> int:
    """Galaxies the export will hold (upper bound for a cone: the exact distance is applied per chunk)."""
    return catalog_queryset(filters=filters).count()


def _iso(when) -> str | None:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ") if when else None


class _VersionNames:
    """Ensemble members (JSON text) -> "id+id+..." of their model versions, looked up once per export."""

    # Member values are numbers, so every quoted string followed by a colon is a model name. Reading the keys
    # from the text skips decoding a JSON object per galaxy (a quarter of the export's time at 1M rows).
    _KEY = re.compile(r'"((?:[^"\\]|\\.)*)"\s*:')

    def __init__(self):
        self._ids = dict(ModelVersion.objects.values_list("name", "id"))
        self._cache: dict[tuple, str | None] = {}

    def __call__(self, members_json: str) -> str | None:
        key = tuple(sorted(self._KEY.findall(members_json)))
        if key not in self._cache:
            ids = sorted(self._ids[name] for name in key if name in self._ids)
            self._cache[key] = "+".join(map(str, ids)) or None
        return self._cache[key]


def _id_condition(galaxy_ids: list[int], field: str = "galaxy_id") -> Q:
    """galaxy_id IN (...), or a range when the ids are dense (one index range instead of 10,000 parameters)."""
    low, high = min(galaxy_ids), max(galaxy_ids)
    if high - low < 2 * len(galaxy_ids):
        return Q(**{f"{field}__gte": low, f"{field}__lte": high})
    return Q(**{f"{field}__in": galaxy_ids})


def _latest_ensembles(galaxy_ids: list[int]) -> dict[int, tuple]:
    if not galaxy_ids:
        return {}
    wanted = set(galaxy_ids)
    latest: dict[int, tuple] = {}
    rows = (
        EnsemblePrediction.objects.filter(_id_condition(galaxy_ids))
        .annotate(members_text=Cast("members", TextField()))
        .order_by("galaxy_id", "-created_at", "-id")
        .values_list(
            "galaxy_id", "median", "spread", "sigma", "rejection_likelihood", "n_models", "members_text", "created_at"
        )
    )
    for row in rows:
        if row[0] in wanted:
            latest.setdefault(row[0], row[1:])
    return latest


def _reject_reasons(galaxy_ids: list[int]) -> dict[int, str]:
    if not galaxy_ids:
        return {}
    counts: dict[int, Counter] = defaultdict(Counter)
    rows = (
        Vote.objects.filter(galaxy_id__in=galaxy_ids, flag__in=REJECT_FLAGS)
        .values_list("galaxy_id", "flag")
        .annotate(n=Count("id"))
    )
    for galaxy_id, flag, n in rows:
        counts[galaxy_id][flag] = n
    # Ties go to the alphabetically first flag, so an export is reproducible.
    return {gid: min(c.items(), key=lambda item: (-item[1], item[0]))[0] for gid, c in counts.items()}


def _chunk(rows: list[tuple], versions: _VersionNames) -> dict[str, list]:
    """Column-wise values of CATALOG_COLUMNS for rows of _GALAXY_FIELDS (built column by column: it is the hot loop)."""
    if not rows:
        return {c.name: [] for c in CATALOG_COLUMNS}
    gid, pgc, name, ra, dec, d25, pa, ba, source, status, incl, err, n_votes, updated = map(
        list, zip(*rows, strict=True)
    )
    ensembles = _latest_ensembles(gid)
    ens = [ensembles.get(g) for g in gid]
    rejected = ConsensusLabel.Status.REJECTED
    reasons = _reject_reasons([g for g, s in zip(gid, status, strict=True) if s == rejected])
    release = settings.GIZ_SDSS_DATA_RELEASE
    from_ba = np.atleast_1d(inclination_from_axial_ratio(np.array(ba, dtype=float))).tolist()

    def ensemble(i: int) -> list:
        return [e[i] if e else None for e in ens]

    return {
        "pgc": pgc,
        "name": name,
        "ra": ra,
        "dec": dec,
        "d25": d25,
        "position_angle": pa,
        "axial_ratio": ba,
        "inclination": incl,
        "inclination_err": err,
        "n_votes": n_votes,
        "status": status,
        "face_on": [s == ConsensusLabel.Status.FACE_ON for s in status],
        "rejected": [s == rejected for s in status],
        "reject_reason": [reasons.get(g) for g in gid],
        "ensemble_inclination": ensemble(0),
        "ensemble_spread": ensemble(1),
        "ensemble_sigma": ensemble(2),
        "ensemble_rejection": ensemble(3),
        "ensemble_n_models": ensemble(4),
        "model_version": [versions(e[5]) if e else None for e in ens],
        "ensemble_date": [_iso(e[6]) if e else None for e in ens],
        "inclination_axial_ratio": [None if math.isnan(v) else v for v in from_ba],
        "image_source": source,
        "data_release": [release if s == Galaxy.Source.SDSS else None for s in source],
        "consensus_date": [_iso(u) for u in updated],
    }


def _in_cone(rows: list[tuple], filters: dict) -> list[tuple]:
    if filters.get("cone_radius") is None or not rows:
        return rows
    distance = sky.angular_distance_deg(
        filters["cone_ra"], filters["cone_dec"], [r[3] for r in rows], [r[4] for r in rows]
    )
    return [row for row, d in zip(rows, distance, strict=True) if d <= filters["cone_radius"]]


def catalog_chunks(*, filters: dict, chunk_size: int = 10000) -> Iterator[dict[str, list]]:
    """The catalogue rows matching the filters, by PGC, as column-wise chunks of at most chunk_size rows."""
    qs = catalog_queryset(filters=filters).order_by("pgc").values_list(*_GALAXY_FIELDS)
    versions = _VersionNames()
    last = None
    while True:
        page = qs.filter(pgc__gt=last) if last is not None else qs
        page_rows = list(page[:chunk_size])
        if not page_rows:
            return
        last = page_rows[-1][1]
        rows = _in_cone(page_rows, filters)
        if rows:
            yield _chunk(rows, versions)
        if len(page_rows) < chunk_size:
            return


def cone_search(
    *, ra: float, dec: float, radius: float, limit: int, without_gold: bool = False
) -> tuple[dict[str, list], list[float], bool]:
    """Catalogue rows within `radius` deg of (ra, dec), nearest first, at most `limit`.

    `without_gold` leaves gold galaxies out, as the catalogue export does for volunteers.
    Returns the column-wise rows, their distances in degrees, and whether more rows matched than the limit.
    """
    qs = Galaxy.objects.filter(_cone_condition(ra, dec, radius))
    if without_gold:
        qs = qs.exclude(is_gold=True)
    rows = list(qs.values_list(*_GALAXY_FIELDS))
    if rows:
        distance = sky.angular_distance_deg(ra, dec, [r[3] for r in rows], [r[4] for r in rows])
        inside = sorted(
            ((d, row) for d, row in zip(distance.tolist(), rows, strict=True) if d <= radius),
            key=lambda item: (item[0], item[1][1]),
        )
    else:
        inside = []
    overflow = len(inside) > limit
    inside = inside[:limit]
    return _chunk([row for _, row in inside], _VersionNames()), [d for d, _ in inside], overflow


def galaxies_near(*, ra: float, dec: float, radius: float) -> list[tuple[int, float]]:
    """(PGC, distance in deg) of the galaxies within `radius` deg of (ra, dec), nearest first."""
    rows = list(Galaxy.objects.filter(_cone_condition(ra, dec, radius)).values_list("pgc", "ra", "dec"))
    if not rows:
        return []
    distance = sky.angular_distance_deg(ra, dec, [r[1] for r in rows], [r[2] for r in rows]).tolist()
    inside = [(row[0], d) for row, d in zip(rows, distance, strict=True) if d <= radius]
    return sorted(inside, key=lambda item: item[1])
