"""Discrepancy alarms, and the label priority the models' answers give a galaxy."""

from __future__ import annotations

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from giz_site.exceptions import ApplicationError
from inference.models import (
    DiscrepancyAlarm,
    EnsemblePrediction,
)
from labeling import services as labeling_services
from labeling.models import Galaxy


def alarms_check(*, galaxy: Galaxy, summary: EnsemblePrediction, consensus: float | None) -> bool:
    """Open alarms for models disagreeing with each other or with the volunteers' consensus."""
    raised = False
    numbers = {"members": summary.members, "mean": summary.mean, "n_models": summary.n_models}
    if summary.spread > settings.GIZ_ALARM_SPREAD_DEG:
        raised |= _alarm_open(galaxy, DiscrepancyAlarm.Kind.ENSEMBLE_SPREAD, summary, consensus, numbers)
    if consensus is not None and abs(summary.median - consensus) > settings.GIZ_ALARM_HUMAN_DIFF_DEG:
        raised |= _alarm_open(galaxy, DiscrepancyAlarm.Kind.HUMAN_DISAGREEMENT, summary, consensus, numbers)
    return raised


def _alarm_open(galaxy, kind, summary, consensus, details) -> bool:
    """One open alarm per galaxy and kind (a DB constraint); a newer prediction updates its numbers."""
    fields = {
        "ensemble_prediction": summary,
        "ensemble_median": summary.median,
        "ensemble_spread": summary.spread,
        "consensus_inclination": consensus,
        "details": {
            **details,
            "thresholds": {"spread": settings.GIZ_ALARM_SPREAD_DEG, "human_diff": settings.GIZ_ALARM_HUMAN_DIFF_DEG},
        },
    }
    updated = DiscrepancyAlarm.objects.filter(galaxy=galaxy, kind=kind, status=DiscrepancyAlarm.Status.OPEN).update(
        **fields
    )
    if updated:
        return True
    try:
        with transaction.atomic():
            alarm = DiscrepancyAlarm.objects.create(galaxy=galaxy, kind=kind, **fields)
    except IntegrityError:  # a concurrent prediction opened it first
        return True
    if settings.GIZ_ALARM_EMAILS:
        # Imported here: inference.tasks imports the services, a cycle at module level.
        from inference.tasks import alarm_email_task

        transaction.on_commit(lambda: alarm_email_task.delay(alarm.pk))
    return True


def alarm_email_send(*, alarm_id: int) -> bool:
    """E-mail staff (GIZ_ALARM_EMAILS) about a new alarm."""
    from django.core.mail import send_mail

    alarm = DiscrepancyAlarm.objects.select_related("galaxy").filter(pk=alarm_id).first()
    if alarm is None or not settings.GIZ_ALARM_EMAILS:
        return False
    consensus = f"{alarm.consensus_inclination:.1f}" if alarm.consensus_inclination is not None else "none yet"
    body = (
        f"{alarm.get_kind_display()} on {alarm.galaxy}.\n"
        f"Ensemble median {alarm.ensemble_median:.1f} deg, spread {alarm.ensemble_spread:.1f} deg, "
        f"volunteer consensus {consensus}.\nMembers: {alarm.details.get('members')}\n"
        f"Review it in the admin: /admin/inference/discrepancyalarm/{alarm.pk}/change/\n"
    )
    send_mail(
        f"[GIZ] {alarm.get_kind_display()}: {alarm.galaxy}",
        body,
        settings.DEFAULT_FROM_EMAIL,
        settings.GIZ_ALARM_EMAILS,
    )
    return True


def alarm_resolve(*, alarm: DiscrepancyAlarm, user, note: str) -> DiscrepancyAlarm:
    """Close an alarm with a note; resolving twice is refused."""
    updated = DiscrepancyAlarm.objects.filter(pk=alarm.pk, status=DiscrepancyAlarm.Status.OPEN).update(
        status=DiscrepancyAlarm.Status.RESOLVED, resolved_at=timezone.now(), resolved_by=user, resolution_note=note
    )
    if not updated:
        raise ApplicationError("This alarm is already resolved.", code="already_resolved", status_code=409)
    alarm.refresh_from_db()
    galaxy_priority_refresh(galaxy=alarm.galaxy)
    return alarm


def galaxy_priority_refresh(*, galaxy: Galaxy) -> float:
    """Write the models' word on a galaxy onto labeling's row; returns its new label priority.

    Galaxies where the models disagree with each other (spread), are unsure whether a human would reject it,
    or have open discrepancy alarms (10 each) come first; labeling adds how far the votes are from the median.
    """
    latest = (
        EnsemblePrediction.objects.filter(galaxy=galaxy)
        .order_by("-created_at")
        .values("median", "spread", "rejection_likelihood")
        .first()
    )
    priority = 10.0 * DiscrepancyAlarm.objects.filter(galaxy=galaxy, status=DiscrepancyAlarm.Status.OPEN).count()
    if latest is not None:
        priority += min(latest["spread"], 20.0)
        if latest["rejection_likelihood"] is not None:
            priority += 5.0 * (1.0 - abs(2.0 * latest["rejection_likelihood"] - 1.0))
    return labeling_services.galaxy_prediction_record(
        galaxy=galaxy,
        predicted_inclination=latest["median"] if latest is not None else None,
        model_priority=round(priority, 3),
    )
