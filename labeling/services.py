"""Writes for volunteer labeling: registration, serving galaxies, recording votes, consensus."""

import logging
import math
import random
import secrets
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Case, Count, Exists, F, FloatField, OuterRef, Q, Sum, When
from django.utils import timezone

from giz_site.exceptions import ApplicationError
from labeling import consensus as maths
from labeling.models import (
    Assignment,
    ConsensusLabel,
    ConsensusRun,
    Galaxy,
    StandardGalaxy,
    VolunteerProfile,
    Vote,
)
from labeling.signals import consensus_labels_added

logger = logging.getLogger(__name__)

GRID_MIN, GRID_MAX = 45, 90
STEP1_DEGREES = list(range(GRID_MIN, GRID_MAX + 1, 5))
ALL_DEGREES = list(range(GRID_MIN, GRID_MAX + 1))
# How far a standard may sit from a grid point and still stand in for it.
GRID_TOLERANCE = 1.5
# Volunteers new to the task see more gold galaxies (as Zooniverse does): (votes so far below, rate).
GOLD_RATES = ((15, 1 / 3), (40, 1 / 5), (math.inf, 1 / 10))
CANDIDATES_PER_PAGE = 20
CANDIDATE_PAGES = 10

_rng = random.SystemRandom()


# ------------------------------------------------------------------------------ Volunteers


def volunteer_profile_get(*, user: AbstractBaseUser) -> VolunteerProfile:
    """The volunteer's profile, created on first use (the personas and admin-made users have none yet)."""
    profile, _ = VolunteerProfile.objects.get_or_create(user=user)
    return profile


@transaction.atomic
def volunteer_register(*, username: str, email: str, password: str, display_name: str = "") -> AbstractBaseUser:
    """Create a volunteer account with its profile (the caller has validated the password)."""
    user = get_user_model().objects.create_user(username=username, email=email, password=password)
    VolunteerProfile.objects.create(user=user, display_name=display_name, show_on_leaderboard=bool(display_name))
    return user


def volunteer_profile_update(
    *, user: AbstractBaseUser, display_name: str, show_on_leaderboard: bool
) -> VolunteerProfile:
    profile = volunteer_profile_get(user=user)
    profile.display_name = display_name.strip()
    profile.show_on_leaderboard = show_on_leaderboard and bool(profile.display_name)
    profile.save(update_fields=["display_name", "show_on_leaderboard"])
    return profile


def volunteer_tutorial_done(*, user: AbstractBaseUser) -> None:
    VolunteerProfile.objects.filter(user=user).update(tutorial_done=True)


# ------------------------------------------------------------------------------ Standards


def _standards_pool() -> list[tuple[int, float]]:
    """(id, inclination) of the active standards that have a colour image: a few hundred rows."""
    return list(
        StandardGalaxy.objects.filter(active=True, inclination__gte=GRID_MIN - GRID_TOLERANCE)
        .exclude(galaxy__color_image="")
        .values_list("id", "inclination")
    )


def standards_draw(
    *, degrees: list[int], avoid: set[int] = frozenset(), pool: list[tuple[int, float]] | None = None
) -> dict[int, int]:
    """One standard drawn at random for each grid point (degree -> standard id).

    Standards within half a degree of the point are preferred, then the nearest within GRID_TOLERANCE; ones in
    `avoid` (already shown) only when nothing else fits. A point with no standard near it is left out.
    """
    pool = _standards_pool() if pool is None else pool
    by_degree: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for sid, inclination in pool:
        by_degree[round(inclination)].append((sid, inclination))
    reach_buckets = math.ceil(GRID_TOLERANCE)
    chosen: dict[int, int] = {}
    used: set[int] = set()
    for degree in degrees:
        nearby = [s for d in range(degree - reach_buckets, degree + reach_buckets + 1) for s in by_degree.get(d, ())]
        for reach in (0.5, GRID_TOLERANCE):
            near = [sid for sid, incl in nearby if abs(incl - degree) <= reach and sid not in used]
            fresh = [sid for sid in near if sid not in avoid]
            if fresh or near:
                chosen[degree] = _rng.choice(fresh or near)
                used.add(chosen[degree])
                break
    return chosen


# ------------------------------------------------------------------------------ Serving galaxies


def gold_rate(*, votes_count: int) -> float:
    return next(rate for below, rate in GOLD_RATES if votes_count < below)


def _votes_target(galaxy: Galaxy) -> int:
    return settings.GIZ_VOTES_TO_RETIRE + galaxy.extra_votes


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


def _label_pick(*, volunteer, now) -> Galaxy | None:
    """The first galaxy in priority order the volunteer has not voted on and that still has a vote free.

    Walks galaxy_to_label_idx (priority, then fewest votes) page by page. Rows another transaction is
    serving right now are skipped (SKIP LOCKED) rather than waited for, and each candidate's open
    assignments count as reserved votes, so the last vote a galaxy needs goes to one volunteer only.
    The caller's transaction keeps the chosen row locked until its assignment is saved.
    """
    voted = Vote.objects.filter(volunteer=volunteer, galaxy=OuterRef("pk"))
    queue = (
        Galaxy.objects.filter(retired_at__isnull=True, state=Galaxy.State.READY, is_gold=False)
        .exclude(Exists(voted))
        .exclude(Exists(StandardGalaxy.objects.filter(galaxy=OuterRef("pk"))))  # standards are the yardstick
        .order_by("-label_priority", "votes_count", "id")
        .only("id", "votes_count", "extra_votes", "label_priority")
        .select_for_update(skip_locked=True, of=("self",), no_key=True)
    )
    for page in range(CANDIDATE_PAGES):
        start = page * CANDIDATES_PER_PAGE
        candidates = list(queue[start : start + CANDIDATES_PER_PAGE])
        if not candidates:
            return None
        reserved = dict(
            Assignment.objects.filter(
                galaxy_id__in=[g.id for g in candidates], used_at__isnull=True, expires_at__gt=now
            )
            .values("galaxy_id")
            .annotate(n=Count("id"))
            .values_list("galaxy_id", "n")
        )
        for galaxy in candidates:
            if galaxy.votes_count + reserved.get(galaxy.id, 0) < _votes_target(galaxy):
                return galaxy
    return None


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
    current = (
        Assignment.objects.select_for_update(of=("self",), no_key=True)
        .select_related("galaxy")
        .filter(volunteer=volunteer, used_at__isnull=True)
        .first()
    )
    if current is not None:
        if current.expires_at > now and current.galaxy.retired_at is None:
            return current
        current.delete()  # lapsed: free its reservation and pick afresh
    profile = volunteer_profile_get(user=volunteer)
    galaxy = None
    if _rng.random() < gold_rate(votes_count=profile.votes_count):
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


# ------------------------------------------------------------------------------ Votes


@dataclass(frozen=True)
class CheckedVote:
    inclination: float | None
    flag: str
    left: StandardGalaxy | None
    right: StandardGalaxy | None


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
    standards = StandardGalaxy.objects.in_bulk(cited)
    left, right = standards.get(left_standard_id), standards.get(right_standard_id)
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
        low, high = sorted((left.inclination, right.inclination))
        # Half a degree of slack: the page rounds to one decimal.
        if not low - 0.5 <= inclination <= high + 0.5:
            raise ApplicationError(
                "The inclination does not lie between the two standards it was placed between.",
                code="inclination_not_between",
            )
        return CheckedVote(inclination=round(float(inclination), 2), flag="", left=left, right=right)
    if inclination is not None:
        raise ApplicationError("Give either an inclination or a flag, not both.", code="flag_and_inclination")
    return CheckedVote(inclination=None, flag=flag, left=left, right=right)


def _seconds_taken(assignment: Assignment, claimed: float | None, now) -> float:
    """The page's own timer when it is plausible, else the time since the galaxy was served."""
    elapsed = max((now - assignment.issued_at).total_seconds(), 0.0)
    if claimed is not None and math.isfinite(claimed) and 0 <= claimed <= elapsed + 5:
        return round(float(claimed), 1)
    return round(elapsed, 1)


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
        assignment = Assignment.objects.select_for_update(no_key=True).filter(token=token, volunteer=volunteer).first()
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
        galaxy = Galaxy.objects.select_for_update(no_key=True).get(pk=assignment.galaxy_id)
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
            left_standard=checked.left,
            right_standard=checked.right,
            seconds_taken=_seconds_taken(assignment, seconds_taken, now),
            was_gold=galaxy.is_gold,
        )
        assignment.used_at = now
        assignment.save(update_fields=["used_at"])
        Galaxy.objects.filter(pk=galaxy.pk).update(votes_count=F("votes_count") + 1)
        galaxy.votes_count += 1
        counters = {"votes_count": F("votes_count") + 1}
        error = gold_error(vote=vote, known=galaxy.known_inclination) if galaxy.is_gold else None
        if error is not None:
            counters |= {
                "gold_votes_count": F("gold_votes_count") + 1,
                "gold_abs_error_sum": F("gold_abs_error_sum") + error,
            }
        VolunteerProfile.objects.filter(user=volunteer).update(**counters)
        if not galaxy.is_gold:
            if galaxy.votes_count >= settings.GIZ_VOTES_TO_RETIRE:
                consensus_update(galaxy=galaxy)
            if galaxy.predicted_inclination is not None:
                # Only a vote on a predicted galaxy can move its priority; the rest save a query per vote.
                galaxy_priority_refresh(galaxy=galaxy)
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


# ------------------------------------------------------------------------------ Consensus


def _vote_inputs(votes) -> list[maths.VoteIn]:
    return [
        maths.VoteIn(
            inclination=v["inclination"],
            flag=v["flag"],
            not_sure=v["not_sure"],
            weight=v["weight"] if v["weight"] is not None else 1.0,
            slope=v["slope"] if v["slope"] is not None else 1.0,
            intercept=v["intercept"] if v["intercept"] is not None else 0.0,
        )
        for v in votes
    ]


def _consensus_labels_added() -> None:
    consensus_labels_added.send(sender=ConsensusLabel)


def consensus_update(*, galaxy: Galaxy) -> ConsensusLabel | None:
    """Recompute one galaxy's consensus from its votes; retire it or ask for more votes.

    The label is written once the galaxy has its quorum of votes. The caller holds the galaxy's row lock.
    A new label counts toward the retraining trigger once the transaction commits.
    """
    votes = Vote.objects.filter(galaxy=galaxy).values(
        "inclination",
        "flag",
        "not_sure",
        weight=F("volunteer__volunteer__weight"),
        slope=F("volunteer__volunteer__calibration_slope"),
        intercept=F("volunteer__volunteer__calibration_intercept"),
    )
    result = maths.consensus_compute(_vote_inputs(votes))
    quorum = settings.GIZ_VOTES_TO_RETIRE
    if result is None or result.n_votes < quorum:
        return None
    retire, extra = maths.retirement_decide(result, quorum=quorum, max_votes=settings.GIZ_VOTES_MAX)
    galaxy.extra_votes = extra
    fields = ["extra_votes"]
    if retire and galaxy.retired_at is None:
        galaxy.retired_at = timezone.now()
        fields.append("retired_at")
    galaxy.save(update_fields=fields)
    label, created = ConsensusLabel.objects.update_or_create(
        galaxy=galaxy,
        defaults={
            "status": result.status,
            "inclination": result.inclination,
            "uncertainty": result.uncertainty,
            "agreement": result.agreement,
            "n_votes": result.n_votes,
        },
    )
    if created:
        transaction.on_commit(_consensus_labels_added)
    return label


def volunteer_calibrations_update() -> int:
    """Re-estimate every volunteer's calibration and weight from gold galaxies and the consensus (one query)."""
    gold_ref = Q(galaxy__is_gold=True, galaxy__known_inclination__gte=45)
    reference = Case(
        When(gold_ref, then=F("galaxy__known_inclination")),
        When(galaxy__consensus__status=ConsensusLabel.Status.ACCEPTED, then=F("galaxy__consensus__inclination")),
        default=None,
        output_field=FloatField(),
    )
    numeric = (
        Vote.objects.filter(flag="", inclination__isnull=False)
        .annotate(ref=reference)
        .filter(ref__isnull=False)
        .values("volunteer_id")
        .annotate(
            n=Count("id"),
            sx=Sum("inclination"),
            sy=Sum("ref"),
            sxx=Sum(F("inclination") * F("inclination")),
            sxy=Sum(F("inclination") * F("ref")),
            syy=Sum(F("ref") * F("ref")),
        )
    )
    agree = Q(flag="", galaxy__consensus__status="accepted") | Q(flag="face_on", galaxy__consensus__status="face_on")
    agree |= Q(flag__in=maths.REJECT_FLAGS, galaxy__consensus__status="rejected")
    categorical = dict(
        (row["volunteer_id"], (row["n"], row["agree"]))
        for row in Vote.objects.filter(galaxy__consensus__isnull=False)
        .values("volunteer_id")
        .annotate(n=Count("id"), agree=Count("id", filter=agree))
    )
    sums = {row["volunteer_id"]: row for row in numeric}
    profiles = list(
        VolunteerProfile.objects.only("id", "user_id", "calibration_slope", "calibration_intercept", "weight")
    )
    changed = []
    for profile in profiles:
        row = sums.get(profile.user_id)
        n_cat, n_agree = categorical.get(profile.user_id, (0, 0))
        fit = maths.calibration_from_sums(
            n=row["n"] if row else 0,
            sx=row["sx"] if row else 0.0,
            sy=row["sy"] if row else 0.0,
            sxx=row["sxx"] if row else 0.0,
            sxy=row["sxy"] if row else 0.0,
            syy=row["syy"] if row else 0.0,
            n_categorical=n_cat,
            n_categorical_agree=n_agree,
        )
        new = (fit.slope, fit.intercept, fit.weight)
        if new != (profile.calibration_slope, profile.calibration_intercept, profile.weight):
            profile.calibration_slope, profile.calibration_intercept, profile.weight = new
            changed.append(profile)
    VolunteerProfile.objects.bulk_update(
        changed, ["calibration_slope", "calibration_intercept", "weight"], batch_size=1000
    )
    return len(changed)


def consensus_recompute_all(*, batch_galaxies: int = 20000, progress=None) -> dict:
    """Recompute every galaxy's consensus, re-estimate volunteer calibrations from it, and recompute again.

    Two label passes because calibrations are fitted against the consensus, which depends on them; the
    second pass starts from already-consistent values, so more rounds change little. Reads are plain MVCC
    snapshots and each batch of galaxy ids writes in its own short transaction, so voting goes on: nothing
    locks the votes table, and a label row is held only while its batch is written.
    `progress` is an optional callable(galaxy_ids_covered) for a progress bar.
    """
    stats = {"volunteers": 0, "galaxies": 0, "labels": 0, "changed": 0, "new_labels": 0, "retired": 0}
    # Votes keep labels current as they arrive, so the first pass only fills in galaxies without a label
    # (votes imported in bulk, a quorum lowered); the fit needs their consensus as its reference.
    first = _labels_pass(batch_galaxies=batch_galaxies, progress=progress, only_missing=True)
    stats["volunteers"] = volunteer_calibrations_update()
    second = _labels_pass(batch_galaxies=batch_galaxies, progress=progress)
    stats["galaxies"], stats["labels"] = second["galaxies"], second["labels"]
    stats["changed"] = first["changed"] + second["changed"]
    stats["new_labels"] = first["new_labels"] + second["new_labels"]
    stats["retired"] = first["retired"] + second["retired"]
    if stats["new_labels"]:
        _consensus_labels_added()
    return stats


def consensus_recompute_total() -> int:
    """The work of a full recomputation in galaxy ids (two passes over the id range of voted galaxies)."""
    ids = Galaxy.objects.filter(votes_count__gte=1).order_by("id").values_list("id", flat=True)
    first, last = ids.first(), ids.last()
    return 0 if first is None else 2 * (last - first + 1)


def consensus_recompute_run(*, batch_galaxies: int = 20000, progress=None) -> ConsensusRun:
    """consensus_recompute_all with a ConsensusRun row that shows its progress (and any failure) in the admin."""
    run = ConsensusRun.objects.create(total=consensus_recompute_total())

    def advance(n: int) -> None:
        run.done = min(run.total, run.done + n)  # galaxies voted on meanwhile are not in the total
        run.heartbeat_at = timezone.now()
        run.save(update_fields=["done", "heartbeat_at"])
        if progress:
            progress(n)

    try:
        run.stats = consensus_recompute_all(batch_galaxies=batch_galaxies, progress=advance)
    except Exception as error:
        run.status, run.error, run.finished_at = ConsensusRun.Status.FAILED, repr(error), timezone.now()
        run.save(update_fields=["status", "error", "finished_at"])
        raise
    run.status, run.done, run.finished_at = ConsensusRun.Status.DONE, run.total, timezone.now()
    run.save(update_fields=["status", "done", "stats", "finished_at"])
    return run


def _labels_pass(*, batch_galaxies: int, progress=None, only_missing: bool = False) -> dict:
    quorum = settings.GIZ_VOTES_TO_RETIRE
    profiles = {
        p["user_id"]: (p["weight"], p["calibration_slope"], p["calibration_intercept"])
        for p in VolunteerProfile.objects.values("user_id", "weight", "calibration_slope", "calibration_intercept")
    }
    stats = {"galaxies": 0, "labels": 0, "changed": 0, "new_labels": 0, "retired": 0}
    bounds = Galaxy.objects.filter(votes_count__gte=1).order_by("id").values_list("id", flat=True)
    low, last = bounds.first(), bounds.last()
    if low is None:
        return stats
    while low <= last:
        high = low + batch_galaxies
        grouped: dict[int, list[maths.VoteIn]] = defaultdict(list)
        rows = Vote.objects.filter(galaxy_id__gte=low, galaxy_id__lt=high, was_gold=False)
        if only_missing:
            rows = rows.exclude(Exists(ConsensusLabel.objects.filter(galaxy_id=OuterRef("galaxy_id"))))
        rows = rows.values_list("galaxy_id", "volunteer_id", "inclination", "flag", "not_sure").iterator(
            chunk_size=20000
        )
        for galaxy_id, volunteer_id, inclination, flag, not_sure in rows:
            weight, slope, intercept = profiles.get(volunteer_id, (1.0, 1.0, 0.0))
            grouped[galaxy_id].append(maths.VoteIn(inclination, flag, not_sure, weight, slope, intercept))
        now = timezone.now()
        labels, to_retire = [], []
        existing = {
            row[0]: row[1:]
            for row in ConsensusLabel.objects.filter(galaxy_id__gte=low, galaxy_id__lt=high).values_list(
                "galaxy_id", "status", "inclination", "uncertainty", "agreement", "n_votes"
            )
        }
        for galaxy_id, votes in grouped.items():
            result = maths.consensus_compute(votes)
            if result is None or result.n_votes < quorum:
                continue
            retire, _ = maths.retirement_decide(result, quorum=quorum, max_votes=settings.GIZ_VOTES_MAX)
            if retire:
                to_retire.append(galaxy_id)
            stats["labels"] += 1
            values = (result.status, result.inclination, result.uncertainty, result.agreement, result.n_votes)
            if existing.get(galaxy_id) == values:
                continue  # unchanged: no write, updated_at keeps meaning "last changed"
            labels.append(
                ConsensusLabel(
                    galaxy_id=galaxy_id,
                    status=result.status,
                    inclination=result.inclination,
                    uncertainty=result.uncertainty,
                    agreement=result.agreement,
                    n_votes=result.n_votes,
                    created_at=now,
                    updated_at=now,
                )
            )
        # Labels, then retirements, each committed on its own: a vote holds its galaxy row and then its label
        # row, so holding labels while waiting for galaxies here could deadlock with it.
        ConsensusLabel.objects.bulk_create(
            labels,
            batch_size=2000,
            update_conflicts=True,
            unique_fields=["galaxy"],
            update_fields=["status", "inclination", "uncertainty", "agreement", "n_votes", "updated_at"],
        )
        stats["retired"] += Galaxy.objects.filter(id__in=to_retire, retired_at__isnull=True).update(retired_at=now)
        stats["galaxies"] += len(grouped)
        stats["changed"] += len(labels)
        stats["new_labels"] += sum(1 for label in labels if label.galaxy_id not in existing)
        if progress:
            progress(min(high, last + 1) - low)  # galaxy ids covered
        low = high
    return stats


# ------------------------------------------------------------------------------ Active learning


def galaxy_priority_refresh(*, galaxy: Galaxy) -> float:
    """Set how urgently a galaxy needs votes: the models' share, plus how far the votes so far are from them.

    The models' share (spread, rejection doubt, 10 per open discrepancy alarm) and the predicted inclination
    are written by inference through galaxy_prediction_record; vote_submit calls this after each vote.
    """
    priority = galaxy.model_priority
    if galaxy.predicted_inclination is not None:
        votes = list(
            Vote.objects.filter(galaxy=galaxy, flag="", inclination__isnull=False).values_list("inclination", flat=True)
        )
        if votes:
            priority += min(abs(maths.weighted_median(votes, [1.0] * len(votes)) - galaxy.predicted_inclination), 20.0)
    priority = round(priority, 3)
    if priority != galaxy.label_priority:
        galaxy.label_priority = priority
        galaxy.save(update_fields=["label_priority"])
    return priority


def galaxy_prediction_record(*, galaxy: Galaxy, predicted_inclination: float | None, model_priority: float) -> float:
    """Inference's latest word on a galaxy; returns its new label priority."""
    galaxy.predicted_inclination, galaxy.model_priority = predicted_inclination, model_priority
    galaxy.save(update_fields=["predicted_inclination", "model_priority"])
    return galaxy_priority_refresh(galaxy=galaxy)


def galaxy_color_image_set(*, galaxy_id: int, name: str) -> None:
    """Acquisition's choice of the colour composite volunteers see (a storage name, "" for none)."""
    Galaxy.objects.filter(pk=galaxy_id).exclude(color_image=name).update(color_image=name)
