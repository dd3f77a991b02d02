"""Consensus labels from the volunteer model: each vote updates its galaxy's posterior, and a nightly refit
re-estimates every volunteer's figures from all votes (labeling.volunteer_model does the maths)."""

from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
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
_STATUS = {vm.ACCEPTED: ConsensusLabel.Status.ACCEPTED, vm.FACE_ON: ConsensusLabel.Status.FACE_ON}
_LABEL_FIELDS = ["status", "inclination", "uncertainty", "agreement", "n_votes", "n_numeric", "p_face_on", "p_rejected"]


def _consensus_labels_added() -> None:
    consensus_labels_added.send(sender=ConsensusLabel)


def galaxy_posterior_get(*, galaxy: Galaxy, state: ModelState | None = None) -> vm.Posterior | None:
    """The galaxy's posterior from its votes with the volunteers' current figures; None for a gold galaxy
    (pinned to its known value: its votes calibrate volunteers and never form a consensus)."""
    return _posteriors_get([galaxy], state=state)[galaxy.id]


# Once per vote: written out, as building it with the ORM (two joins) cost more CPU than running it. The votes'
# order is Vote's (newest first), which the ORM query it replaced used.
_VOTES_RATED_SQL = f"""
SELECT v.galaxy_id, v.inclination, v.flag, v.not_sure, p.bias, p.scale, p.sigma, p.flag_accuracy
FROM {Vote._meta.db_table} v LEFT JOIN {VolunteerProfile._meta.db_table} p ON p.user_id = v.volunteer_id
WHERE v.galaxy_id IN ({{ids}})
ORDER BY v.created_at DESC"""


_CATEGORY = {"": vm.ACCEPTED, "face_on": vm.FACE_ON}  # vm.category_codes for one flag: any other is REJECTED


def _posteriors_get(galaxies: list[Galaxy], *, state: ModelState | None = None) -> dict[int, vm.Posterior | None]:
    """galaxy_posterior_get for several galaxies, their votes read in one query."""
    state = state or model_state()
    wanted = [g.id for g in galaxies if not g.is_gold]
    rows = []
    if wanted:
        with connection.cursor() as cursor:
            cursor.execute(_VOTES_RATED_SQL.format(ids=", ".join(["%s"] * len(wanted))), wanted)
            rows = cursor.fetchall()
    votes: dict[int, list[vm.RatedVote]] = {galaxy_id: [] for galaxy_id in wanted}
    for galaxy_id, inclination, flag, not_sure, bias, scale, sigma, accuracy in rows:
        votes[galaxy_id].append(
            vm.RatedVote(
                value=inclination,
                category=_CATEGORY.get(flag, vm.REJECTED),
                not_sure=bool(not_sure),
                bias=0.0 if bias is None else bias,
                scale=1.0 if scale is None else scale,
                sigma=state.sigma_typical if sigma is None else sigma,
                accuracy=0.8 if accuracy is None else accuracy,
            )
        )
    posteriors: dict[int, vm.Posterior | None] = {g.id: None for g in galaxies}
    for galaxy_id, rated in votes.items():
        posteriors[galaxy_id] = vm.galaxy_posterior(rated, growth=state.growth, class_prior=state.class_prior)
    return posteriors


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


def galaxy_fields_save(galaxy: Galaxy, fields) -> None:
    """galaxy.save(update_fields=fields), written out: once per vote, where the ORM's save cost more CPU than the
    UPDATE (Galaxy has no save signals or overrides to skip)."""
    names = tuple(sorted(set(fields)))
    meta = Galaxy._meta
    columns = ", ".join(f"{meta.get_field(name).column} = %s" for name in names)
    params = [meta.get_field(name).get_db_prep_save(getattr(galaxy, name), connection) for name in names]
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {meta.db_table} SET {columns} WHERE id = %s", [*params, galaxy.pk])


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
    post = galaxy_posterior_get(galaxy=galaxy, state=state)
    if post is None:
        if changed:
            galaxy_fields_save(galaxy, changed)
        return None
    return _consensus_apply(galaxy, post, announce=announce, changed=changed)


def _consensus_apply(
    galaxy: Galaxy, post: vm.Posterior, *, announce: bool, changed: tuple[str, ...] = ()
) -> ConsensusLabel | None:
    """consensus_update once the posterior is known (the refit's catch-up computes posteriors in bulk)."""
    fields = set(changed)
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
            galaxy_fields_save(galaxy, fields)
        return None
    if galaxy.retired_at is None:
        galaxy.retired_at = timezone.now()
        fields.add("retired_at")
    if fields:
        galaxy_fields_save(galaxy, fields)
    label, created = ConsensusLabel.objects.update_or_create(galaxy=galaxy, defaults=_label_values(post))
    if created and announce:
        transaction.on_commit(_consensus_labels_added)
    return label


# ------------------------------------------------------------------------------ the nightly refit (services/refit.py)


def consensus_recompute_total() -> int:
    """The writing work of a refit: the galaxies with votes."""
    return Galaxy.objects.filter(votes_count__gte=1).count()


def consensus_recompute_run(*, batch_galaxies: int | None = None, progress=None) -> ConsensusRun | None:
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
        from labeling.services import refit  # the refit module builds on this one

        stats = refit.refit(run=run, batch_galaxies=batch_galaxies or refit.WRITE_BATCH, progress=advance)
    except Exception as error:
        ConsensusRun.objects.finish(run.pk, status=ConsensusRun.Status.FAILED, error=repr(error))
        raise
    ConsensusRun.objects.finish(run.pk, status=ConsensusRun.Status.SUCCEEDED, done=run.total, stats=stats)
    run.refresh_from_db()
    return run
