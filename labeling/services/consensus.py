"""Consensus labels from the votes, volunteer calibrations, and the full nightly recomputation."""

from collections import defaultdict
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Case, Count, Exists, F, FloatField, OuterRef, Q, Sum, When
from django.utils import timezone

from labeling import consensus as maths
from labeling.models import (
    ConsensusLabel,
    ConsensusRun,
    Galaxy,
    VolunteerProfile,
    Vote,
)
from labeling.signals import consensus_labels_added

# Heartbeats come after every batch, seconds apart; this long without one means the worker died.
RUN_STALE_AFTER = timedelta(minutes=30)


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


def consensus_recompute_run(*, batch_galaxies: int = 20000, progress=None) -> ConsensusRun | None:
    """consensus_recompute_all with a ConsensusRun row that shows its progress (and any failure) in the admin.

    One at a time: None when another recomputation is live. A live run whose heartbeat stopped
    (RUN_STALE_AFTER: a worker killed mid-way) is marked failed and this one takes over.
    """
    now = timezone.now()
    for stale in ConsensusRun.objects.stale(before=now - RUN_STALE_AFTER).values_list("pk", flat=True):
        ConsensusRun.objects.finish(stale, status=ConsensusRun.Status.FAILED, error="No heartbeat: its worker died.")
    try:
        with transaction.atomic():
            run = ConsensusRun.objects.create(
                status=ConsensusRun.Status.RUNNING, total=consensus_recompute_total(), started_at=now, heartbeat_at=now
            )
    except IntegrityError:  # the unique `live` column: another recomputation is running
        return None

    def advance(n: int) -> None:
        run.done = min(run.total, run.done + n)  # galaxies voted on meanwhile are not in the total
        ConsensusRun.objects.beat(run.pk, done=run.done)
        if progress:
            progress(n)

    try:
        stats = consensus_recompute_all(batch_galaxies=batch_galaxies, progress=advance)
    except Exception as error:
        ConsensusRun.objects.finish(run.pk, status=ConsensusRun.Status.FAILED, error=repr(error))
        raise
    ConsensusRun.objects.finish(run.pk, status=ConsensusRun.Status.SUCCEEDED, done=run.total, stats=stats)
    run.refresh_from_db()
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
