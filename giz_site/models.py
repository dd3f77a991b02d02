"""Operational state of the site itself (not astronomy)."""

from django.db import models


class WorkerHeartbeat(models.Model):
    """Last time each Celery worker answered the scheduled heartbeat; shown to staff."""

    hostname = models.CharField(max_length=255, unique=True)
    last_seen = models.DateTimeField()

    class Meta:
        ordering = ["-last_seen"]

    def __str__(self) -> str:
        return f"{self.hostname} @ {self.last_seen:%Y-%m-%d %H:%M:%S}"
