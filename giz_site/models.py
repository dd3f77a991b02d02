"""Operational state of the site itself (not astronomy)."""

from django.db import models
from django.db.models import Q
from django.utils import timezone


class WorkerHeartbeat(models.Model):
    """Last time each Celery worker answered the scheduled heartbeat; shown to staff."""

    hostname = models.CharField(max_length=255, unique=True)
    last_seen = models.DateTimeField()

    class Meta:
        ordering = ["-last_seen"]

    def __str__(self) -> str:
        return f"{self.hostname} @ {self.last_seen:%Y-%m-%d %H:%M:%S}"


class BackgroundRunQuerySet(models.QuerySet):
    """The life of a background run, written as single UPDATE statements so two workers never both win."""

    def stale(self, *, before):
        """Live runs whose worker stopped beating before `before` (or never beat and started before it)."""
        return self.filter(live=True).filter(
            Q(heartbeat_at__lt=before) | Q(heartbeat_at__isnull=True, created_at__lt=before)
        )

    def claim(self, pk: int, *, stale_before, dead: Q | None = None, **fields) -> bool:
        """Mark a live run as running: a queued one, or one whose worker stopped beating (taken over), or one
        matching `dead` (the caller knows its process died).

        A broker redelivers a task whose worker it believes dead (Redis: after its visibility timeout)
        even while that worker still works; a fresh heartbeat leaves the run to it.
        """
        now = timezone.now()
        queued = Q(status=BackgroundRun.Status.QUEUED)
        claimable = queued | Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=stale_before)
        if dead is not None:
            claimable |= dead
        return bool(
            self.filter(claimable, pk=pk, live=True).update(
                status=BackgroundRun.Status.RUNNING, started_at=now, heartbeat_at=now, error="", **fields
            )
        )

    def beat(self, pk: int, **fields) -> None:
        """Record progress (any fields) and that the worker is alive."""
        self.filter(pk=pk).update(heartbeat_at=timezone.now(), **fields)

    def finish(self, pk: int, *, status: str, error: str = "", **fields) -> int:
        """End a live run (it stops being live, so where one must be unique the next may start)."""
        return self.filter(pk=pk, live=True).update(
            status=status, live=None, finished_at=timezone.now(), error=error[:5000], **fields
        )


class BackgroundRun(models.Model):
    """What every background run shares (training runs, inference and acquisition jobs, consensus
    recomputations, catalogue exports): one status vocabulary, counters, heartbeat, error and progress.

    A model that must have one run at a time declares `live` unique: NULL for finished runs and True for
    the live one, so the database refuses a second live row.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    # True while queued or running, NULL once finished (NULL rather than False: see the docstring).
    live = models.BooleanField(null=True, default=True, editable=False)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = BackgroundRunQuerySet.as_manager()

    class Meta:
        abstract = True
        ordering = ["-created_at"]

    @property
    def progress(self) -> float:
        """Fraction finished, 0-1 (a finished run is complete even if its total was never known)."""
        if self.total:
            return min(1.0, (self.done + (self.failed or 0)) / self.total)
        return 1.0 if self.status == self.Status.SUCCEEDED else 0.0
