"""Consensus labels from the volunteer model: each vote updates its galaxy's posterior, and a nightly refit
re-estimates every volunteer's figures from all votes (labeling.volunteer_model does the maths)."""

from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from labeling import volunteer_model as vm
from labeling.models import (
    ConsensusLabel,
    ConsensusRun,
    Galaxy,
    VolunteerProfile,
    Vote,
)
from labeling.selectors import ModelState, model_state
from labeling.signals import consensus_labels_added

# Heartbeats come after every batch, seconds apart; this long without one means the worker died.
RUN_STALE_AFTER = timedelta(minutes=30)
WRITE_BATCH = 2000
_STATUS = {vm.ACCEPTED: ConsensusLabel.Status.ACCEPTED, vm.FACE_ON: ConsensusLabel.Status.FACE_ON}
_LABEL_FIELDS = ["status", "inclination", "uncertainty", "agreement", "n_votes", "n_numeric", "p_face_on", "p_rejected"]


def _consensus_labels_added() -> None:
    consensus_labels_added.send(sender=ConsensusLabel)


def galaxy_posterior_get(*, galaxy: Galaxy, state: ModelState | None = None) -> vm.Posterior | None:
    """The galaxy's posterior from its votes with the volunteers' current figures; None for a gold galaxy
    (pinned to its known value: its votes calibrate volunteers and never form a consensus)."""
    if galaxy.is_gold:
        return None
    state = state or model_state()
    rows = Vote.objects.filter(galaxy=galaxy).values_list(
        "inclination",
        "flag",
        "not_sure",
        "volunteer__volunteer__bias",
        "volunteer__volunteer__scale",
        "volunteer__volunteer__sigma",
        "volunteer__volunteer__flag_accuracy",
    )
    votes = [
        vm.RatedVote(
            value=inclination,
            category=int(vm.category_codes([flag])[0]),
            not_sure=not_sure,
            bias=0.0 if bias is None else bias,
            scale=1.0 if scale is None else scale,
            sigma=state.sigma_typical if sigma is None else sigma,
            accuracy=0.8 if accuracy is None else accuracy,
        )
        for inclination, flag, not_sure, bias, scale, sigma, accuracy in rows
    ]
    return vm.galaxy_posterior(votes, growth=state.growth, class_prior=state.class_prior)


def _label_values(post) -> dict:
    """A label's columns from a posterior (a vm.Posterior, or one galaxy's row of the refit)."""
    status = _STATUS.get(int(post.status), ConsensusLabel.Status.REJECTED)
    p_accepted = 1.0 - post.p_face_on - post.p_rejected
    accepted = status == ConsensusLabel.Status.ACCEPTED
    return {
        "status": status,
        "inclination": round(float(post.mean), 2) if accepted else None,
        "uncertainty": round(float(post.sd), 3) if accepted else None,
        "agreement": round(float({"accepted": p_accepted, "face_on": post.p_face_on}.get(status, post.p_rejected)), 4),
        "n_votes": int(post.n_votes),
        "n_numeric": int(post.n_numeric),
        "p_face_on": round(float(post.p_face_on), 4),
        "p_rejected": round(float(post.p_rejected), 4),
    }


def _retirement_due(post) -> bool:
    return bool(
        vm.retirement_due(
            sd=post.sd,
            n_votes=post.n_votes,
            p_face_on=post.p_face_on,
            p_rejected=post.p_rejected,
            target_sd=settings.GIZ_RETIRE_SD,
            max_votes=settings.GIZ_VOTES_MAX,
        )
    )


def _priority(galaxy: Galaxy, post) -> float:
    """The models' and the survey's shares plus how much the galaxy still needs votes, in the posterior's terms."""
    has_votes = post is not None and post.n_numeric > 0
    return round(
        galaxy.model_priority
        + galaxy.survey_priority
        + vm.label_priority(
            sd=float(post.sd) if has_votes else None,
            mean=float(post.mean) if has_votes else None,
            model_median=galaxy.predicted_inclination,
            model_spread=0.0,  # already in model_priority
        ),
        3,
    )


def galaxy_priority_refresh(*, galaxy: Galaxy, posterior: vm.Posterior | None = None) -> float:
    """Set how urgently a galaxy needs votes: widest posteriors and disagreement with the models first.

    The models' share (spread, rejection doubt, 10 per open discrepancy alarm) and the predicted inclination
    are written by inference through galaxy_prediction_record; consensus_update calls this after each vote.
    """
    if posterior is None and galaxy.votes_count:
        posterior = galaxy_posterior_get(galaxy=galaxy)
    priority = _priority(galaxy, posterior)
    if priority != galaxy.label_priority:
        galaxy.label_priority = priority
        galaxy.save(update_fields=["label_priority"])
    return priority


def consensus_update(
    *, galaxy: Galaxy, announce: bool = True, state: ModelState | None = None, changed: tuple[str, ...] = ()
) -> ConsensusLabel | None:
    """Recompute one galaxy's posterior from its votes; retire it with a label when the answer is known.

    Otherwise the galaxy keeps collecting votes (one more at a time beyond the first GIZ_VOTES_TO_RETIRE) and
    its priority follows its posterior. The caller holds the galaxy's row lock; fields it set on `galaxy` and
    names in `changed` are saved with these in one UPDATE. A new label counts toward the retraining trigger once
    the transaction commits (unless `announce` is False: the refit announces its labels once). Gold galaxies get
    no label.
    """
    fields = set(changed)
    post = galaxy_posterior_get(galaxy=galaxy, state=state)
    if post is None:
        if fields:
            galaxy.save(update_fields=sorted(fields))
        return None
    priority = _priority(galaxy, post)
    if priority != galaxy.label_priority:
        galaxy.label_priority = priority
        fields.add("label_priority")
    if not _retirement_due(post) and galaxy.retired_at is None:
        extra = max(0, post.n_votes + 1 - settings.GIZ_VOTES_TO_RETIRE)
        if extra != galaxy.extra_votes:
            galaxy.extra_votes = extra
            fields.add("extra_votes")
        if fields:
            galaxy.save(update_fields=sorted(fields))
        return None
    if galaxy.retired_at is None:
        galaxy.retired_at = timezone.now()
        fields.add("retired_at")
    if fields:
        galaxy.save(update_fields=sorted(fields))
    label, created = ConsensusLabel.objects.update_or_create(galaxy=galaxy, defaults=_label_values(post))
    if created and announce:
        transaction.on_commit(_consensus_labels_added)
    return label


# ------------------------------------------------------------------------------ the nightly refit


def _read_votes(high_water: int) -> tuple[vm.Votes, np.ndarray, np.ndarray]:
    """Every vote up to `high_water` as the model's arrays, with the galaxy and volunteer id of each index."""
    # No ORDER BY (the model's default would sort 5M rows); the model does not care about the order.
    rows = (
        Vote.objects.filter(id__lte=high_water)
        .order_by()
        .values_list("galaxy_id", "volunteer_id", "inclination", "flag", "not_sure")
    )
    n = Vote.objects.filter(id__lte=high_water).count()  # an upper bound: rows deleted meanwhile leave a tail
    galaxy = np.empty(n, np.int64)
    volunteer = np.empty(n, np.int64)
    value = np.empty(n, np.float64)
    category = np.empty(n, np.int8)
    not_sure = np.empty(n, bool)
    codes = {"": vm.ACCEPTED, "face_on": vm.FACE_ON}
    k = 0
    for g, u, x, flag, unsure in rows.iterator(chunk_size=20000):
        if k == n:
            break  # inserted with an id below the high-water mark after the count: the catch-up counts it
        galaxy[k], volunteer[k], not_sure[k] = g, u, unsure
        value[k] = np.nan if x is None else x
        category[k] = codes.get(flag, vm.REJECTED)
        k += 1
    galaxy_ids, g_index = np.unique(galaxy[:k], return_inverse=True)
    volunteer_ids, u_index = np.unique(volunteer[:k], return_inverse=True)
    known = np.full(len(galaxy_ids), np.nan)
    gold = dict(Galaxy.objects.filter(is_gold=True).values_list("id", "known_inclination"))
    for i, galaxy_id in enumerate(galaxy_ids):
        if galaxy_id in gold:
            known[i] = gold[galaxy_id]
    votes = vm.Votes.build(
        galaxy=g_index,
        volunteer=u_index,
        value=value[:k],
        category=category[:k],
        not_sure=not_sure[:k],
        known=known,
        n_galaxies=len(galaxy_ids),
        n_volunteers=len(volunteer_ids),
    )
    return votes, galaxy_ids, volunteer_ids


def _write_volunteers(fit: vm.Fit, volunteer_ids: np.ndarray) -> int:
    v = fit.volunteers
    weight = v.weight
    typical = float(np.median(weight[v.n_numeric >= 20])) if (v.n_numeric >= 20).any() else float(np.median(weight))
    index = {int(user_id): i for i, user_id in enumerate(volunteer_ids)}
    # Accounts made outside volunteer_register (admin, personas) may have voted without a profile yet.
    VolunteerProfile.objects.bulk_create(
        [VolunteerProfile(user_id=user_id) for user_id in index], batch_size=1000, ignore_conflicts=True
    )
    profiles = list(VolunteerProfile.objects.filter(user_id__in=index.keys()).only("id", "user_id"))
    centre = vm.ModelSettings().center
    for profile in profiles:
        i = index[profile.user_id]
        profile.bias, profile.scale, profile.sigma = float(v.bias[i]), float(v.scale[i]), float(v.sigma[i])
        profile.flag_accuracy, profile.votes_counted = float(v.accuracy[i]), float(v.n_numeric[i])
        profile.weight = float(weight[i] / typical) if typical > 0 else 1.0
        # x = c + a + b (t - c)  <=>  t = x / b + c - (c + a) / b
        profile.calibration_slope = 1.0 / profile.scale
        profile.calibration_intercept = centre - (centre + profile.bias) / profile.scale
    fields = ["bias", "scale", "sigma", "flag_accuracy", "votes_counted", "weight"]
    VolunteerProfile.objects.bulk_update(
        profiles, [*fields, "calibration_slope", "calibration_intercept"], batch_size=1000
    )
    return len(profiles)


@dataclass(frozen=True, slots=True)
class _Row:
    """One galaxy's row of the refit, shaped like a vm.Posterior for the label helpers."""

    mean: float
    sd: float
    n_numeric: int
    n_votes: int
    p_face_on: float
    p_rejected: float

    @property
    def status(self) -> int:
        return vm.Posterior(*(getattr(self, f) for f in self.__dataclass_fields__)).status


def _write_galaxies(fit: vm.Fit, galaxy_ids: np.ndarray, batch: int, progress) -> tuple[dict, list[int]]:
    """Labels, retirements and priorities of every fitted galaxy, a batch per transaction.

    Each batch locks its galaxy rows first (the order a vote takes them: galaxy, then label), and leaves out
    any galaxy whose vote count is not the number the fit read: a vote came in after the votes were read
    (whatever its id), and the catch-up recomputes it from all its votes under its own lock.
    """
    gal = fit.galaxies
    stats = {"labels": 0, "changed": 0, "new_labels": 0, "retired": 0}
    missed: list[int] = []
    for start in range(0, len(galaxy_ids), batch):
        ids = [int(g) for g in galaxy_ids[start : start + batch]]
        position = {g: start + k for k, g in enumerate(ids)}
        with transaction.atomic():
            galaxies = list(
                Galaxy.objects.select_for_update(no_key=True)
                .filter(id__in=ids, is_gold=False)
                .order_by("id")
                .only(
                    "id",
                    "votes_count",
                    "retired_at",
                    "label_priority",
                    "model_priority",
                    "survey_priority",
                    "predicted_inclination",
                )
            )
            existing = {
                row[0]: row[1:]
                for row in ConsensusLabel.objects.filter(galaxy_id__in=ids).values_list("galaxy_id", *_LABEL_FIELDS)
            }
            now = timezone.now()
            labels, retire, reprioritised = [], [], []
            for galaxy in galaxies:
                i = position[galaxy.id]
                if int(gal.n_votes[i]) != galaxy.votes_count:
                    missed.append(galaxy.id)
                    continue
                row = _Row(
                    *(x[i] for x in (gal.mean, gal.sd, gal.n_numeric, gal.n_votes, gal.p_face_on, gal.p_rejected))
                )
                due = _retirement_due(row)
                if due and galaxy.retired_at is None:
                    retire.append(galaxy.id)
                if due or galaxy.retired_at is not None or galaxy.id in existing:
                    stats["labels"] += 1
                    values = _label_values(row)
                    if existing.get(galaxy.id) != tuple(values[f] for f in _LABEL_FIELDS):
                        labels.append(ConsensusLabel(galaxy_id=galaxy.id, created_at=now, updated_at=now, **values))
                priority = _priority(galaxy, row)
                if priority != galaxy.label_priority:
                    galaxy.label_priority = priority
                    reprioritised.append(galaxy)
            ConsensusLabel.objects.bulk_create(
                labels,
                batch_size=WRITE_BATCH,
                update_conflicts=True,
                unique_fields=["galaxy"],
                update_fields=[*_LABEL_FIELDS, "updated_at"],
            )
            stats["retired"] += Galaxy.objects.filter(id__in=retire).update(retired_at=now)
            Galaxy.objects.bulk_update(reprioritised, ["label_priority"], batch_size=WRITE_BATCH)
        stats["changed"] += len(labels)
        stats["new_labels"] += sum(1 for label in labels if label.galaxy_id not in existing)
        if progress:
            progress(len(ids))
    return stats, missed


def _refit(*, run: ConsensusRun, batch_galaxies: int, progress) -> dict:
    """Refit the volunteer model to every vote and rewrite the volunteers' figures and the labels.

    Votes up to a high-water id are read into arrays and fitted with no transaction open, so voting goes on;
    the figures are written in one bulk update and published with the global ones on `run`, then the labels
    in batches that skip galaxies voted on since the read, and those galaxies are caught up one by one under
    their row lock with the new figures. Each label is recomputed from all its galaxy's votes, never added
    to, so no vote is lost or counted twice.
    """
    stats = {"volunteers": 0, "votes": 0, "galaxies": 0, "labels": 0, "changed": 0, "new_labels": 0, "retired": 0}
    high_water = Vote.objects.order_by("-id").values_list("id", flat=True).first()
    if high_water is None:
        return stats
    votes, galaxy_ids, volunteer_ids = _read_votes(high_water)
    fit = vm.fit(votes)
    stats["votes"], stats["galaxies"] = len(votes.galaxy), len(galaxy_ids)
    stats["iterations"], stats["converged"] = fit.iterations, bool(fit.converged)
    with transaction.atomic():
        stats["volunteers"] = _write_volunteers(fit, volunteer_ids)
        run.high_water_vote_id = high_water
        run.growth = float(fit.volunteers.growth)
        run.class_prior = [float(p) for p in fit.volunteers.class_prior]
        run.sigma_typical = float(fit.volunteers.sigma_typical)
        run.save(update_fields=["high_water_vote_id", "growth", "class_prior", "sigma_typical"])
    written, missed = _write_galaxies(fit, galaxy_ids, batch_galaxies, progress)
    stats.update(written)
    # Galaxies voted on since the read (including ones the read never saw), with the new figures.
    after = Vote.objects.filter(id__gt=high_water).order_by().values_list("galaxy_id", flat=True).distinct()
    late = set(missed) | set(after)
    stats["caught_up"] = len(late)
    state = model_state()  # the figures just published
    for galaxy_id in sorted(late):
        with transaction.atomic():
            galaxy = Galaxy.objects.select_for_update(no_key=True).get(pk=galaxy_id)
            had_label = ConsensusLabel.objects.filter(galaxy_id=galaxy_id).exists()
            retired = galaxy.retired_at is not None
            label = consensus_update(galaxy=galaxy, announce=False, state=state)
            stats["new_labels"] += int(label is not None and not had_label)
            stats["retired"] += int(not retired and galaxy.retired_at is not None)
    if stats["new_labels"]:
        _consensus_labels_added()
    return stats


def consensus_recompute_total() -> int:
    """The writing work of a refit: the galaxies with votes."""
    return Galaxy.objects.filter(votes_count__gte=1).count()


def consensus_recompute_run(*, batch_galaxies: int = WRITE_BATCH, progress=None) -> ConsensusRun | None:
    """The nightly refit (_refit) with a ConsensusRun row that shows its progress (and any failure) in the admin
    and keeps the model's global figures for the votes until the next refit.

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
        stats = _refit(run=run, batch_galaxies=batch_galaxies, progress=advance)
    except Exception as error:
        ConsensusRun.objects.finish(run.pk, status=ConsensusRun.Status.FAILED, error=repr(error))
        raise
    ConsensusRun.objects.finish(run.pk, status=ConsensusRun.Status.SUCCEEDED, done=run.total, stats=stats)
    run.refresh_from_db()
    return run
