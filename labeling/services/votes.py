"""Checking and recording votes."""

import math
from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone

from giz_site.exceptions import ApplicationError
from labeling.models import (
    Assignment,
    Galaxy,
    StandardGalaxy,
    VolunteerProfile,
    Vote,
)
from labeling.selectors import model_state_kept, standards_active
from labeling.services.consensus import consensus_update, galaxy_fields_save
from labeling.services.serving import row_lock


@dataclass(frozen=True)
class CheckedVote:
    inclination: float | None
    flag: str
    left_id: int | None  # the cited standards, checked to exist
    right_id: int | None


def _standard_inclinations(ids: list[int]) -> dict[int, float]:
    """The cited standards' inclinations: from the process's copy of the active ones, else read."""
    active = standards_active()
    found = {sid: active[sid]["exact_inclination"] for sid in ids if sid in active}
    missing = [sid for sid in ids if sid not in found]  # deactivated since the galaxy was served
    if missing:
        found |= dict(StandardGalaxy.objects.filter(id__in=missing).values_list("id", "inclination"))
    return found


def vote_check(
    *,
    assignment: Assignment,
    inclination: float | None,
    flag: str,
    left_standard_id: int | None,
    right_standard_id: int | None,
    note: str,
) -> CheckedVote:
    """Validate an answer against what was shown; raises ApplicationError naming what is wrong."""
    if flag not in Vote.Flag.values:
        raise ApplicationError(f"Unknown flag {flag!r}.", code="invalid_flag")
    if len(note) > 2000:
        raise ApplicationError("The note is limited to 2000 characters.", code="note_too_long")
    shown = set(assignment.standard_ids)
    cited = [sid for sid in (left_standard_id, right_standard_id) if sid is not None]
    if any(sid not in shown for sid in cited):
        raise ApplicationError(
            "The form names a standard galaxy that was not shown with this galaxy; reload and vote again.",
            code="standard_not_shown",
        )
    inclinations = _standard_inclinations(cited)
    left, right = inclinations.get(left_standard_id), inclinations.get(right_standard_id)
    left_id = left_standard_id if left is not None else None
    right_id = right_standard_id if right is not None else None
    if flag == Vote.Flag.NONE:
        if inclination is None or not math.isfinite(inclination):
            raise ApplicationError("Place the galaxy between two standards, or choose a flag.", code="no_answer")
        if not 45 <= inclination <= 90:
            raise ApplicationError(
                "An inclination must be between 45 and 90 degrees; place it left of the 45 degree standard for "
                "face-on.",
                code="inclination_out_of_range",
            )
        if left is None or right is None:
            raise ApplicationError("An inclination needs the two standards it was placed between.", code="no_pair")
        low, high = sorted((left, right))
        # Half a degree of slack: the page rounds to one decimal.
        if not low - 0.5 <= inclination <= high + 0.5:
            raise ApplicationError(
                "The inclination does not lie between the two standards it was placed between.",
                code="inclination_not_between",
            )
        return CheckedVote(inclination=round(float(inclination), 2), flag="", left_id=left_id, right_id=right_id)
    if inclination is not None:
        raise ApplicationError("Give either an inclination or a flag, not both.", code="flag_and_inclination")
    return CheckedVote(inclination=None, flag=flag, left_id=left_id, right_id=right_id)


def _seconds_taken(assignment: Assignment, claimed: float | None, now) -> float:
    """The page's own timer when it is plausible, else the time since the galaxy was served."""
    elapsed = max((now - assignment.issued_at).total_seconds(), 0.0)
    if claimed is not None and math.isfinite(claimed) and 0 <= claimed <= elapsed + 5:
        return round(float(claimed), 1)
    return round(elapsed, 1)


# A vote's statements, written out: building them with the ORM cost more CPU than running them (once per vote).
_ASSIGNMENT_SQL = "SELECT * FROM {assignment} WHERE token = %s AND volunteer_id = %s {lock}".format(
    assignment=Assignment._meta.db_table, lock="{lock}"
)
# What recording the vote and the consensus read or write of the galaxy, and what the answer shows (pgc, name).
_GALAXY_FIELDS = ("id", "pgc", "name", "is_gold", "known_inclination", "votes_count", "extra_votes", "label_priority")
_GALAXY_FIELDS += ("retired_at", "model_priority", "survey_priority", "predicted_inclination")
_GALAXY_SQL = "SELECT {fields} FROM {galaxy} WHERE id = %s {lock}".format(
    fields=", ".join(_GALAXY_FIELDS), galaxy=Galaxy._meta.db_table, lock="{lock}"
)
_USED_SQL = f"UPDATE {Assignment._meta.db_table} SET used_at = %s WHERE id = %s"
_COUNTED_SQL = f"UPDATE {VolunteerProfile._meta.db_table} SET votes_count = votes_count + 1 WHERE user_id = %s"
_COUNTED_GOLD_SQL = (
    f"UPDATE {VolunteerProfile._meta.db_table} SET votes_count = votes_count + 1, "
    "gold_votes_count = gold_votes_count + 1, gold_abs_error_sum = gold_abs_error_sum + %s WHERE user_id = %s"
)


def _locked_assignment(*, token: str, volunteer) -> Assignment | None:
    sql = _ASSIGNMENT_SQL.format(lock=row_lock())
    return next(iter(Assignment.objects.raw(sql, [token, volunteer.pk])), None)


def _locked_galaxy(galaxy_id: int) -> Galaxy:
    """The galaxy with the fields a vote needs (others are deferred), its row locked."""
    return next(iter(Galaxy.objects.raw(_GALAXY_SQL.format(lock=row_lock()), [galaxy_id])))


def vote_submit(
    *,
    volunteer,
    token: str,
    inclination: float | None,
    flag: str,
    not_sure: bool,
    note: str,
    left_standard_id: int | None,
    right_standard_id: int | None,
    seconds_taken: float | None,
) -> Vote:
    """Record the answer for the galaxy served under `token`, once; update counters and the consensus.

    Everything happens in one transaction holding the assignment's and then the galaxy's row lock (the same
    order as assignment_next), so a double submission waits and then finds the token used, and a failure
    anywhere saves nothing. The locks are FOR NO KEY UPDATE: foreign-key checks of rows inserted elsewhere
    (labels written by the full recomputation) take KEY SHARE locks, which must not wait on a vote.
    """
    with transaction.atomic():
        now = timezone.now()
        assignment = _locked_assignment(token=token, volunteer=volunteer)
        if assignment is None:
            raise ApplicationError(
                "This form does not belong to a galaxy served to you (it may have expired); here is a fresh one.",
                code="unknown_assignment",
            )
        if assignment.used_at is not None:
            raise ApplicationError(
                "Your vote on this galaxy was already recorded; it was not saved twice.",
                code="already_voted",
                status_code=409,
            )
        galaxy = _locked_galaxy(assignment.galaxy_id)
        if galaxy.retired_at is not None:
            raise ApplicationError(
                "This galaxy has collected all the votes it needs while you were looking; here is another one.",
                code="galaxy_retired",
                status_code=409,
            )
        checked = vote_check(
            assignment=assignment,
            inclination=inclination,
            flag=flag,
            left_standard_id=left_standard_id,
            right_standard_id=right_standard_id,
            note=note,
        )
        vote = Vote.objects.create(
            volunteer=volunteer,
            galaxy=galaxy,
            inclination=checked.inclination,
            flag=checked.flag,
            not_sure=not_sure,
            note=note.strip(),
            left_standard_id=checked.left_id,
            right_standard_id=checked.right_id,
            seconds_taken=_seconds_taken(assignment, seconds_taken, now),
            was_gold=galaxy.is_gold,
        )
        assignment.used_at = now
        error = gold_error(vote=vote, known=galaxy.known_inclination) if galaxy.is_gold else None
        with connection.cursor() as cursor:
            cursor.execute(_USED_SQL, [connection.ops.adapt_datetimefield_value(now), assignment.pk])
            if error is None:
                cursor.execute(_COUNTED_SQL, [volunteer.pk])
            else:
                cursor.execute(_COUNTED_GOLD_SQL, [error, volunteer.pk])
        galaxy.votes_count += 1  # the row is locked: saved below, with the consensus's changes in one UPDATE
        if galaxy.is_gold:  # a gold galaxy's vote only calibrates (and feeds back)
            galaxy_fields_save(galaxy, ["votes_count"])
        else:  # its posterior, retirement and priority
            consensus_update(galaxy=galaxy, state=model_state_kept(), changed=("votes_count",))
    return vote


def gold_error(*, vote: Vote, known: float | None) -> float | None:
    """Degrees between a gold vote and the known value; a face-on call counts as 45 deg, other flags don't count."""
    if known is None:
        return None
    if vote.inclination is not None:
        return abs(vote.inclination - max(known, 45.0))
    if vote.flag == Vote.Flag.FACE_ON:
        return max(known - 45.0, 0.0)
    return None
