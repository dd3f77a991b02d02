"""The nightly refit: the volunteer model fitted again to every vote, and what changed written back.

Time goes to three places at 5M votes (docs/BENCHMARKS.md, issue 14): reading the votes, the fit's rounds, and
writing a million galaxies. So the votes and the galaxies' current state are read as numpy arrays with one
streaming `COPY ... (FORMAT binary)` each; the fit starts from the last refit's figures and runs a few rounds (EM
continued night after night, not restarted); labels, retirements and priorities are computed for all galaxies at
once and only the rows that change are written, through `COPY` into a temporary table and set-based
`UPDATE ... FROM` / `INSERT ... ON CONFLICT` in batches of galaxies. Other databases (the embedded SQLite of
`make start`) take the same steps through the ORM and plain inserts.

Votes arriving meanwhile are neither lost nor counted twice: every write of a galaxy happens under its row lock
and only while its vote count is still the one the fit read; any other galaxy voted on since the read is
recomputed afterwards from all its votes with the new figures (a vote's own update already uses them once they
are published), in batches under their row locks.
"""

import time
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from labeling import volunteer_model as vm
from labeling.models import ConsensusLabel, ConsensusRun, Galaxy, VolunteerProfile, Vote
from labeling.selectors import model_state
from labeling.services.consensus import _consensus_apply, _consensus_labels_added, _posteriors_get

WRITE_BATCH = 20_000  # changed galaxies per transaction: each holds its row locks for a fraction of a second
CATCH_UP_BATCH = 500  # galaxies voted on during the refit, recomputed per transaction
# Rounds of a refit that starts from the last one's figures: a night's new votes are a small share of all, so a
# few rounds follow them (and the EM goes on converging night after night); a cold start runs to convergence.
WARM_ROUNDS = 6
WARM_CLASS_ROUNDS = 5
_TABLE = "giz_refit_rows"
_STATUS_CODES = {"accepted": vm.ACCEPTED, "face_on": vm.FACE_ON, "rejected": vm.REJECTED}


def _postgres() -> bool:
    return connection.vendor == "postgresql"


# ------------------------------------------------------------------------------ COPY in binary, as numpy arrays

# PostgreSQL's binary COPY: a 19-byte header, then per row a 16-bit field count and per field a 32-bit length and
# the value in network order; with no NULLs and fixed-width types every row has the same layout, so numpy reads
# whole blocks of rows as one structured array.
_WIDTHS = {"int8": ">i8", "float8": ">f8", "int2": ">i2", "bool": "?"}
_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"


def _row_dtype(columns: list[tuple[str, str]]) -> np.dtype:
    fields = [("n_fields", ">i2")]
    for name, kind in columns:
        fields += [(f"{name}_length", ">i4"), (name, _WIDTHS[kind])]
    return np.dtype(fields)


class _RowSink:
    """A file for psycopg2's copy_expert that parses the rows as they arrive, in blocks of a few MB."""

    BLOCK = 1 << 22

    def __init__(self, columns: list[tuple[str, str]]):
        self.columns, self.dtype = columns, _row_dtype(columns)
        self.buffer, self.parts, self.header_done = bytearray(), [], False

    def write(self, data) -> int:
        self.buffer += data
        if len(self.buffer) >= self.BLOCK:
            self._parse()
        return len(data)

    def _parse(self) -> None:
        start = 0
        if not self.header_done:
            if len(self.buffer) < 19:
                return
            start, self.header_done = 19 + int.from_bytes(self.buffer[15:19], "big"), True
        usable = (len(self.buffer) - start) // self.dtype.itemsize * self.dtype.itemsize
        if usable:
            rows = np.frombuffer(bytes(self.buffer[start : start + usable]), dtype=self.dtype)
            if (rows["n_fields"] != len(self.columns)).any():
                raise ValueError("unexpected COPY row layout")
            self.parts.append({name: rows[name].astype(_WIDTHS[kind][-2:].lstrip(">")) for name, kind in self.columns})
        del self.buffer[: start + usable]

    def arrays(self) -> dict[str, np.ndarray]:
        self._parse()
        if bytes(self.buffer) not in (b"\xff\xff", b""):
            raise ValueError("unexpected end of COPY data")
        return {
            name: np.concatenate([p[name] for p in self.parts])
            if self.parts
            else np.empty(0, _WIDTHS[kind][-2:].lstrip(">"))
            for name, kind in self.columns
        }


def _copy_out(select: str, columns: list[tuple[str, str]], params=None) -> dict[str, np.ndarray]:
    """The rows of `select` (no NULLs; columns cast to the listed types) as arrays, streamed from PostgreSQL."""
    sink = _RowSink(columns)
    with connection.cursor() as cursor:
        query = cursor.cursor.mogrify(select, params).decode() if params else select
        cursor.cursor.copy_expert(f"COPY ({query}) TO STDOUT (FORMAT binary)", sink)
    return sink.arrays()


def _copy_in(table: str, columns: list[tuple[str, str]], arrays: dict[str, np.ndarray]) -> None:
    """Rows into `table` (NaN for a missing float) with one binary COPY into PostgreSQL."""
    import io

    n = len(next(iter(arrays.values())))
    rows = np.zeros(n, dtype=_row_dtype(columns))
    rows["n_fields"] = len(columns)
    for name, kind in columns:
        rows[f"{name}_length"] = np.dtype(_WIDTHS[kind]).itemsize
        rows[name] = arrays[name]
    data = _SIGNATURE + b"\x00" * 8 + rows.tobytes() + b"\xff\xff"
    with connection.cursor() as cursor:
        cursor.cursor.copy_expert(f"COPY {table} ({', '.join(c for c, _ in columns)}) FROM STDIN (FORMAT binary)",
                                  io.BytesIO(data))  # fmt: skip


# ------------------------------------------------------------------------------ read


_VOTE_COLUMNS = [("galaxy", "int8"), ("volunteer", "int8"), ("value", "float8"), ("category", "int2"),
                 ("not_sure", "bool")]  # fmt: skip


def _vote_arrays(high_water: int) -> dict[str, np.ndarray]:
    """Every vote up to `high_water`: galaxy and volunteer ids, value (NaN for a flag), category, not sure."""
    if _postgres():
        return _copy_out(
            "SELECT galaxy_id::int8, volunteer_id::int8, coalesce(inclination, 'NaN')::float8,"
            " (CASE flag WHEN '' THEN %s WHEN 'face_on' THEN %s ELSE %s END)::int2, not_sure"
            " FROM labeling_vote WHERE id <= %s",
            _VOTE_COLUMNS,
            [vm.ACCEPTED, vm.FACE_ON, vm.REJECTED, high_water],
        )
    rows = list(
        Vote.objects.filter(id__lte=high_water)
        .order_by()
        .values_list("galaxy_id", "volunteer_id", "inclination", "flag", "not_sure")
    )
    codes = {"": vm.ACCEPTED, "face_on": vm.FACE_ON}
    return {
        "galaxy": np.array([r[0] for r in rows], np.int64),
        "volunteer": np.array([r[1] for r in rows], np.int64),
        "value": np.array([np.nan if r[2] is None else r[2] for r in rows], np.float64),
        "category": np.array([codes.get(r[3], vm.REJECTED) for r in rows], np.int16),
        "not_sure": np.array([r[4] for r in rows], bool),
    }


def _read_votes(high_water: int) -> tuple[vm.Votes, np.ndarray, np.ndarray]:
    """Every vote up to `high_water` as the model's arrays, with the galaxy and volunteer id of each index."""
    raw = _vote_arrays(high_water)
    galaxy_ids, g_index = np.unique(raw["galaxy"], return_inverse=True)
    volunteer_ids, u_index = np.unique(raw["volunteer"], return_inverse=True)
    known = np.full(len(galaxy_ids), np.nan)
    gold = dict(Galaxy.objects.filter(is_gold=True).values_list("id", "known_inclination"))
    if gold:
        ids = np.fromiter(gold.keys(), np.int64)
        at = np.searchsorted(galaxy_ids, ids)
        hit = (at < len(galaxy_ids)) & (galaxy_ids[np.minimum(at, len(galaxy_ids) - 1)] == ids)
        known[at[hit]] = np.fromiter(gold.values(), float)[hit]
    votes = vm.Votes.build(
        galaxy=g_index,
        volunteer=u_index,
        value=raw["value"],
        category=raw["category"].astype(np.int8),
        not_sure=raw["not_sure"],
        known=known,
        n_galaxies=len(galaxy_ids),
        n_volunteers=len(volunteer_ids),
    )
    return votes, galaxy_ids, volunteer_ids


_STATE_COLUMNS = [
    ("id", "int8"), ("votes_count", "int8"), ("retired", "bool"), ("is_gold", "bool"), ("label_priority", "float8"),
    ("model_priority", "float8"), ("predicted", "float8"), ("has_label", "bool"), ("status", "int2"),
    ("inclination", "float8"), ("uncertainty", "float8"), ("agreement", "float8"), ("n_votes", "int8"),
    ("n_numeric", "int8"), ("p_face_on", "float8"), ("p_rejected", "float8"),
]  # fmt: skip


def _galaxy_state() -> dict[str, np.ndarray]:
    """The galaxies with votes as they are now: counters, priority inputs and their label (if any), by id."""
    if _postgres():
        return _copy_out(
            "SELECT g.id::int8, g.votes_count::int8, g.retired_at IS NOT NULL, g.is_gold, g.label_priority::float8,"
            " g.model_priority::float8, coalesce(g.predicted_inclination, 'NaN')::float8, l.id IS NOT NULL,"
            " (CASE l.status WHEN 'accepted' THEN %s WHEN 'face_on' THEN %s ELSE %s END)::int2,"
            " coalesce(l.inclination, 'NaN')::float8, coalesce(l.uncertainty, 'NaN')::float8,"
            " coalesce(l.agreement, 'NaN')::float8, coalesce(l.n_votes, -1)::int8, coalesce(l.n_numeric, -1)::int8,"
            " coalesce(l.p_face_on, 'NaN')::float8, coalesce(l.p_rejected, 'NaN')::float8"
            " FROM labeling_galaxy g LEFT JOIN labeling_consensuslabel l ON l.galaxy_id = g.id"
            " WHERE g.votes_count > 0 ORDER BY g.id",
            _STATE_COLUMNS,
            [vm.ACCEPTED, vm.FACE_ON, vm.REJECTED],
        )
    rows = list(
        Galaxy.objects.filter(votes_count__gt=0)
        .order_by("id")
        .values_list(
            "id",
            "votes_count",
            "retired_at",
            "is_gold",
            "label_priority",
            "model_priority",
            "predicted_inclination",
            "consensus__id",
            "consensus__status",
            "consensus__inclination",
            "consensus__uncertainty",
            "consensus__agreement",
            "consensus__n_votes",
            "consensus__n_numeric",
            "consensus__p_face_on",
            "consensus__p_rejected",
        )  # fmt: skip
    )
    convert = {
        "retired": lambda v: v is not None, "has_label": lambda v: v is not None,
        "status": lambda v: _STATUS_CODES.get(v, vm.REJECTED), "n_votes": lambda v: -1 if v is None else v,
        "n_numeric": lambda v: -1 if v is None else v,
    }  # fmt: skip
    state = {}
    for k, (name, kind) in enumerate(_STATE_COLUMNS):
        to = convert.get(name, (lambda v: np.nan if v is None else v))
        state[name] = np.array([to(r[k]) for r in rows], _WIDTHS[kind][-2:].lstrip(">"))
    return state


# ------------------------------------------------------------------------------ volunteers


def _start_figures(volunteer_ids: np.ndarray) -> vm.Volunteers | None:
    """The last refit's figures of these volunteers to start the EM from; None before any refit."""
    run = ConsensusRun.objects.filter(growth__isnull=False).order_by("-id").first()
    if run is None:
        return None
    figures = {
        user_id: rest
        for user_id, *rest in VolunteerProfile.objects.filter(sigma__isnull=False).values_list(
            "user_id", "bias", "scale", "sigma", "flag_accuracy"
        )
    }
    table = np.full((len(volunteer_ids), 4), np.nan)
    for i, user_id in enumerate(volunteer_ids.tolist()):
        if user_id in figures:
            table[i] = figures[user_id]
    return vm.Volunteers(
        bias=table[:, 0], scale=table[:, 1], sigma=table[:, 2], accuracy=table[:, 3],
        n_numeric=np.zeros(len(volunteer_ids)), growth=run.growth, class_prior=np.asarray(run.class_prior),
        sigma_typical=run.sigma_typical,
    )  # fmt: skip


_VOLUNTEER_TABLE = "giz_refit_volunteers"
_PROFILE_FIELDS = ["bias", "scale", "sigma", "flag_accuracy", "votes_counted", "weight", "calibration_slope",
                   "calibration_intercept"]  # fmt: skip


_VOLUNTEER_COLUMNS = [("user_id", "int8")] + [(f, "float8") for f in _PROFILE_FIELDS]


def _write_volunteers(fit: vm.Fit, volunteer_ids: np.ndarray) -> int:
    """The volunteers' new figures; only profiles whose figures changed are written. Returns how many."""
    v = fit.volunteers
    weight = v.weight
    typical = float(np.median(weight[v.n_numeric >= 20])) if (v.n_numeric >= 20).any() else float(np.median(weight))
    index = {int(user_id): i for i, user_id in enumerate(volunteer_ids)}
    # Accounts made outside volunteer_register (admin, personas) may have voted without a profile yet.
    VolunteerProfile.objects.bulk_create(
        [VolunteerProfile(user_id=user_id) for user_id in index], batch_size=1000, ignore_conflicts=True
    )
    centre = vm.ModelSettings().center
    new = {
        "bias": v.bias, "scale": v.scale, "sigma": v.sigma, "flag_accuracy": v.accuracy, "votes_counted": v.n_numeric,
        "weight": weight / typical if typical > 0 else np.ones(len(weight)),
        # x = c + a + b (t - c)  <=>  t = x / b + c - (c + a) / b
        "calibration_slope": 1.0 / v.scale, "calibration_intercept": centre - (centre + v.bias) / v.scale,
    }  # fmt: skip
    current = VolunteerProfile.objects.filter(user_id__in=index.keys()).values_list("user_id", *_PROFILE_FIELDS)
    changed = []
    for user_id, *before in current:
        i = index[user_id]
        if before != [float(new[f][i]) for f in _PROFILE_FIELDS]:
            changed.append(i)
    if not changed:
        return 0
    rows = {"user_id": volunteer_ids[changed], **{f: np.asarray(new[f], float)[changed] for f in _PROFILE_FIELDS}}
    _temporary_table(_VOLUNTEER_TABLE, _VOLUNTEER_COLUMNS, rows)
    with connection.cursor() as cursor:
        # One statement: each profile's row lock is taken once and held only until the run publishes.
        assignments = ", ".join(f"{f} = r.{f}" for f in _PROFILE_FIELDS)
        cursor.execute(
            f"UPDATE labeling_volunteerprofile SET {assignments} FROM {_VOLUNTEER_TABLE} r"
            " WHERE labeling_volunteerprofile.user_id = r.user_id"
        )
        cursor.execute(f"DROP TABLE IF EXISTS {_VOLUNTEER_TABLE}")
    return len(changed)


# ------------------------------------------------------------------------------ galaxies


@dataclass(frozen=True, slots=True)
class _Planned:
    """What the refit writes: one row per galaxy that changes (sorted by id), and the galaxies it leaves to the
    catch-up because a vote came in after the read."""

    rows: dict[str, np.ndarray]
    missed: np.ndarray
    wants_label: np.ndarray  # of the fitted galaxies, for the counts
    ids: np.ndarray


# A refit continues the EM, so every posterior creeps a little each night; a label or priority is rewritten only
# when it moves by more than this (deg, or probability), far below what a reader of the catalogue can see.
_TOLERANCE = {"inclination": 0.05, "uncertainty": 0.02, "agreement": 0.005, "p_face_on": 0.005,
              "p_rejected": 0.005, "priority": 0.05}  # fmt: skip


def _close(a: np.ndarray, b: np.ndarray, tolerance: float) -> np.ndarray:
    """Equal within `tolerance`, or both missing."""
    return (np.isnan(a) & np.isnan(b)) | (np.abs(a - b) <= tolerance + 1e-9)


def _plan(fit: vm.Fit, galaxy_ids: np.ndarray) -> _Planned:
    """Labels, retirements and priorities of every fitted galaxy from its posterior (as consensus_update would
    write them, all at once), compared with what is stored."""
    state = _galaxy_state()
    at = np.searchsorted(state["id"], galaxy_ids)
    found = (at < len(state["id"])) & (state["id"][np.minimum(at, len(state["id"]) - 1)] == galaxy_ids)
    post = fit.galaxies
    keep = np.flatnonzero(found)
    s = {name: values[at[keep]] for name, values in state.items()}
    ids, n_votes = galaxy_ids[keep], post.n_votes[keep]
    mean, sd, n_numeric = post.mean[keep], post.sd[keep], post.n_numeric[keep]
    p_face_on, p_rejected = post.p_face_on[keep], post.p_rejected[keep]
    p_accepted = 1.0 - p_face_on - p_rejected
    status = np.argmax(np.stack([p_accepted, p_face_on, p_rejected], axis=1), axis=1).astype(np.int16)
    accepted = status == vm.ACCEPTED
    values = {
        "status": status,
        "inclination": np.where(accepted, np.round(mean, 2), np.nan),
        "uncertainty": np.where(accepted, np.round(sd, 3), np.nan),
        "agreement": np.round(np.choose(status, [p_accepted, p_face_on, p_rejected]), 4),
        "n_votes": n_votes.astype(np.int64),
        "n_numeric": n_numeric.astype(np.int64),
        "p_face_on": np.round(p_face_on, 4),
        "p_rejected": np.round(p_rejected, 4),
    }
    due = vm.retirement_due(
        sd=sd, n_votes=n_votes, p_face_on=p_face_on, p_rejected=p_rejected,
        target_sd=settings.GIZ_RETIRE_SD, max_votes=settings.GIZ_VOTES_MAX,
    )  # fmt: skip
    has_numeric = n_numeric > 0
    priority = np.round(
        s["model_priority"]
        + vm.label_priorities(
            sd=np.where(has_numeric, sd, np.nan), mean=np.where(has_numeric, mean, np.nan), model_median=s["predicted"]
        ),
        3,
    )
    # Voted on since the read (the counter moved): left to the catch-up, which recomputes from all votes.
    current = (s["votes_count"] == n_votes) & ~s["is_gold"]
    missed = ids[(s["votes_count"] != n_votes) & ~s["is_gold"]]
    wants_label = current & (due | s["retired"] | s["has_label"])
    same = s["has_label"] & (s["status"] == status) & (s["n_votes"] == n_votes) & (s["n_numeric"] == n_numeric)
    for name in ("inclination", "uncertainty", "agreement", "p_face_on", "p_rejected"):
        same &= _close(s[name], values[name], _TOLERANCE[name])
    write_label = wants_label & ~same
    retire = current & due & ~s["retired"]
    priority_changed = current & ~_close(priority, s["label_priority"], _TOLERANCE["priority"])
    change = np.flatnonzero(write_label | retire | priority_changed)
    rows = {name: array[change] for name, array in values.items()}
    rows.update(
        galaxy_id=ids[change], priority=priority[change], priority_changed=priority_changed[change],
        retire=retire[change], write_label=write_label[change], new_label=(write_label & ~s["has_label"])[change],
    )  # fmt: skip
    return _Planned(rows=rows, missed=missed, wants_label=wants_label, ids=ids)


_ROW_COLUMNS = [
    ("galaxy_id", "int8"), ("n_votes", "int8"), ("priority", "float8"), ("priority_changed", "bool"),
    ("retire", "bool"), ("write_label", "bool"), ("status", "int2"), ("inclination", "float8"),
    ("uncertainty", "float8"), ("agreement", "float8"), ("n_numeric", "int8"), ("p_face_on", "float8"),
    ("p_rejected", "float8"),
]  # fmt: skip
_SQL_TYPES = {"int8": "bigint", "float8": "double precision", "int2": "smallint", "bool": "boolean"}


def _temporary_table(table: str, columns: list[tuple[str, str]], rows: dict[str, np.ndarray]) -> None:
    """Rows into a temporary table of this connection, keyed by its first column (dropped first if a refit
    left one): one binary COPY on PostgreSQL, plain inserts elsewhere."""
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {table}")
        definition = ", ".join(f"{name} {_SQL_TYPES[kind]}" for name, kind in columns)
        cursor.execute(f"CREATE TEMPORARY TABLE {table} ({definition}, PRIMARY KEY ({columns[0][0]}))")
    if _postgres():
        _copy_in(table, columns, rows)
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {table}")
        return
    names = [name for name, _ in columns]
    data = [
        tuple(None if isinstance(v, float) and np.isnan(v) else v for v in row)
        for row in zip(*(rows[n].tolist() for n in names), strict=True)
    ]
    with connection.cursor() as cursor:
        cursor.executemany(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join(['%s'] * len(names))})", data)


_LOCK = (
    "SELECT g.id FROM labeling_galaxy g JOIN {table} r ON r.galaxy_id = g.id"
    " WHERE r.galaxy_id BETWEEN %s AND %s AND g.votes_count = r.n_votes ORDER BY g.id{lock}"
)
_UPDATE_GALAXIES = (
    "UPDATE labeling_galaxy SET"
    " label_priority = CASE WHEN r.priority_changed THEN r.priority ELSE labeling_galaxy.label_priority END,"
    " retired_at = CASE WHEN r.retire AND labeling_galaxy.retired_at IS NULL THEN %s"
    " ELSE labeling_galaxy.retired_at END"
    " FROM {table} r WHERE labeling_galaxy.id = r.galaxy_id AND r.galaxy_id BETWEEN %s AND %s"
    " AND labeling_galaxy.votes_count = r.n_votes"
    " AND (r.priority_changed OR (r.retire AND labeling_galaxy.retired_at IS NULL))"
)
_UPSERT_LABELS = (
    "INSERT INTO labeling_consensuslabel (galaxy_id, status, inclination, uncertainty, agreement, n_votes,"
    " n_numeric, p_face_on, p_rejected, created_at, updated_at)"
    " SELECT r.galaxy_id, CASE r.status WHEN {accepted} THEN 'accepted' WHEN {face_on} THEN 'face_on'"
    " ELSE 'rejected' END, NULLIF(r.inclination, 'NaN'), NULLIF(r.uncertainty, 'NaN'), r.agreement, r.n_votes,"
    " r.n_numeric, r.p_face_on, r.p_rejected, %s, %s"
    " FROM {table} r JOIN labeling_galaxy g ON g.id = r.galaxy_id"
    " WHERE r.galaxy_id BETWEEN %s AND %s AND g.votes_count = r.n_votes AND r.write_label"
    " ON CONFLICT (galaxy_id) DO UPDATE SET status = excluded.status, inclination = excluded.inclination,"
    " uncertainty = excluded.uncertainty, agreement = excluded.agreement, n_votes = excluded.n_votes,"
    " n_numeric = excluded.n_numeric, p_face_on = excluded.p_face_on, p_rejected = excluded.p_rejected,"
    " updated_at = excluded.updated_at"
)


def _write_galaxies(fit: vm.Fit, galaxy_ids: np.ndarray, batch: int, progress) -> tuple[dict, list[int]]:
    """Labels, retirements and priorities of every fitted galaxy that changed, a batch per transaction.

    Each batch locks its galaxy rows first (the order a vote takes them: galaxy, then label) and writes only the
    galaxies whose vote count is still the one the fit read; the others go to the catch-up.
    """
    plan = _plan(fit, galaxy_ids)
    rows = plan.rows
    _temporary_table(_TABLE, _ROW_COLUMNS, rows)
    lock = _LOCK.format(table=_TABLE, lock=" FOR NO KEY UPDATE OF g" if _postgres() else "")
    update = _UPDATE_GALAXIES.format(table=_TABLE)
    upsert = _UPSERT_LABELS.format(table=_TABLE, accepted=vm.ACCEPTED, face_on=vm.FACE_ON)
    ids = rows["galaxy_id"]
    written = np.zeros(len(ids), bool)
    reported = 0
    for start in range(0, len(ids), batch):
        low, high = int(ids[start]), int(ids[min(start + batch, len(ids)) - 1])
        now = connection.ops.adapt_datetimefield_value(timezone.now())
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(lock, [low, high])
            locked = np.fromiter((row[0] for row in cursor.fetchall()), np.int64)
            cursor.execute(update, [now, low, high])
            cursor.execute(upsert, [now, now, low, high])
        written[start : start + batch] = np.isin(ids[start : start + batch], locked)
        if progress:
            done = int(np.searchsorted(plan.ids, high, side="right"))
            progress(done - reported)
            reported = done
    if progress and len(plan.ids) > reported:
        progress(len(plan.ids) - reported)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {_TABLE}")
    missed = set(plan.missed.tolist()) | set(ids[~written].tolist())
    stats = {
        "labels": int(plan.wants_label.sum()) - int((rows["write_label"] & ~written).sum()),
        "changed": int((rows["write_label"] & written).sum()),
        "new_labels": int((rows["new_label"] & written).sum()),
        "retired": int((rows["retire"] & written).sum()),
        "priorities": int((rows["priority_changed"] & written).sum()),
    }
    return stats, sorted(missed)


def _catch_up(galaxy_ids: list[int], stats: dict) -> None:
    """Recompute galaxies voted on during the refit from all their votes with the new figures, a batch of row
    locks per transaction."""
    state = model_state()
    for start in range(0, len(galaxy_ids), CATCH_UP_BATCH):
        chunk = galaxy_ids[start : start + CATCH_UP_BATCH]
        with transaction.atomic():
            galaxies = list(Galaxy.objects.select_for_update(no_key=True).filter(pk__in=chunk).order_by("id"))
            labelled = set(ConsensusLabel.objects.filter(galaxy_id__in=chunk).values_list("galaxy_id", flat=True))
            posteriors = _posteriors_get(galaxies, state=state)
            for galaxy in galaxies:
                post = posteriors[galaxy.id]
                if post is None:
                    continue
                retired = galaxy.retired_at is not None
                label = _consensus_apply(galaxy, post, announce=False)
                stats["new_labels"] += int(label is not None and galaxy.id not in labelled)
                stats["retired"] += int(not retired and galaxy.retired_at is not None)


# ------------------------------------------------------------------------------ the refit


def refit(*, run: ConsensusRun, batch_galaxies: int, progress) -> dict:
    """Refit the volunteer model to every vote and write back the volunteers' figures and what changed.

    Votes up to a high-water id are read into arrays and fitted with no transaction open, so voting goes on;
    the figures are written and published with the global ones on `run`, then the galaxies in batches that
    skip any voted on since the read, and those are caught up afterwards under their row locks with the new
    figures. Each label is recomputed from all its galaxy's votes, never added to, so no vote is lost or counted
    twice.
    """
    stats = {"volunteers": 0, "votes": 0, "galaxies": 0, "labels": 0, "changed": 0, "new_labels": 0, "retired": 0}
    seconds, cpu_seconds = {}, {}
    clock, cpu = time.perf_counter(), time.process_time()

    def lap(name: str) -> None:
        nonlocal clock, cpu
        seconds[name] = round(time.perf_counter() - clock, 1)
        cpu_seconds[name] = round(time.process_time() - cpu, 1)
        clock, cpu = time.perf_counter(), time.process_time()

    high_water = Vote.objects.order_by("-id").values_list("id", flat=True).first()
    if high_water is None:
        return stats
    votes, galaxy_ids, volunteer_ids = _read_votes(high_water)
    lap("read")
    start = _start_figures(volunteer_ids)
    model = vm.ModelSettings()
    if start is not None:
        model = vm.ModelSettings(iterations=WARM_ROUNDS, class_iterations=WARM_CLASS_ROUNDS)
    fit = vm.fit(votes, model, initial=start)
    lap("fit")
    stats["votes"], stats["galaxies"] = len(votes.galaxy), len(galaxy_ids)
    stats["iterations"], stats["converged"], stats["warm_start"] = fit.iterations, bool(fit.converged), bool(start)
    del votes
    with transaction.atomic():
        stats["volunteers"] = _write_volunteers(fit, volunteer_ids)
        run.high_water_vote_id = high_water
        run.growth = float(fit.volunteers.growth)
        run.class_prior = [float(p) for p in fit.volunteers.class_prior]
        run.sigma_typical = float(fit.volunteers.sigma_typical)
        run.save(update_fields=["high_water_vote_id", "growth", "class_prior", "sigma_typical"])
    lap("volunteers")
    written, missed = _write_galaxies(fit, galaxy_ids, batch_galaxies, progress)
    stats.update(written)
    lap("galaxies")
    # Galaxies voted on since the read (including ones the read never saw), with the new figures.
    after = Vote.objects.filter(id__gt=high_water).order_by().values_list("galaxy_id", flat=True).distinct()
    late = sorted(set(missed) | set(after))
    stats["caught_up"] = len(late)
    _catch_up(late, stats)
    lap("catch_up")
    stats["seconds"], stats["cpu_seconds"] = seconds, cpu_seconds
    if stats["new_labels"]:
        _consensus_labels_added()
    return stats
