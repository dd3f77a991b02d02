from celery import shared_task

from giz_site.services import worker_heartbeat_record


@shared_task(name="giz_site.tasks.worker_heartbeat", ignore_result=True, soft_time_limit=30, time_limit=60)
def worker_heartbeat() -> None:
    """Beat sends this every minute; the worker that takes it records that it is alive."""
    worker_heartbeat_record(hostname=worker_heartbeat.request.hostname or "unknown")
