"""Access to the real PostgreSQL, Redis and RabbitMQ servers, and a real Celery worker process.

Without the servers these tests skip with the reason; GIZ_REQUIRE_SERVICES=1 (set by .ci/run)
turns that skip into a failure so CI can never pass by skipping them.
"""

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

REPO = Path(__file__).resolve().parent.parent


def services_required() -> bool:
    return os.environ.get("GIZ_REQUIRE_SERVICES", "") == "1"


def skip_or_fail(reason: str) -> None:
    if services_required():
        pytest.fail(f"{reason} (GIZ_REQUIRE_SERVICES=1 forbids skipping)")
    pytest.skip(reason)


def reachable(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
        return True
    return False


def require_postgres() -> None:
    if connection.vendor != "postgresql":
        skip_or_fail("the database is not PostgreSQL (set DATABASE_URL=postgres://...)")


def broker_url(kind: str) -> str:
    """The broker URL for 'redis' or 'amqp', skipping when that server is not answering."""
    if kind == "redis":
        url = os.environ.get("GIZ_TEST_BROKER_URL", "")
        if not url.startswith("redis://"):
            url = "redis://127.0.0.1:6379/15"
        port = 6379
    else:
        url = os.environ.get("GIZ_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
        port = 5672
    if not reachable("127.0.0.1", port):
        skip_or_fail(f"no {kind} server on 127.0.0.1:{port}")
    return url


def database_url() -> str:
    """A URL for the database the tests are using right now (the test database)."""
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


@contextlib.contextmanager
def celery_worker(
    *,
    broker: str,
    queues: str | None = None,
    extra_env: dict | None = None,
    timeout: float = 90,
    node_name: str | None = None,
    pool: str = "solo",
):
    """Run `celery worker` as a separate process against the test database; stop it afterwards.

    Without `queues` it consumes every queue of the settings, as the embedded default's worker does. `node_name`
    is its `-n` (Celery's default, celery@<host name>, without it). `pool="prefork"` runs one pool process.
    """
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "giz_site.settings.worker_under_test",
        "DATABASE_URL": database_url(),
        "GIZ_TEST_BROKER_URL": broker,
        **(extra_env or {}),
    }
    log = Path(os.environ["GIZ_DATA_DIR"]) / f"worker-{time.monotonic_ns()}.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "giz_site",
                "worker",
                f"--pool={pool}",
                *(["--concurrency=1"] if pool == "prefork" else []),
                *(["-Q", queues] if queues else []),
                *(["-n", node_name] if node_name else []),
                "--without-mingle",
                "--without-gossip",
                "--loglevel=INFO",
            ],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + timeout
        while " ready." not in log.read_text():
            if process.poll() is not None:
                pytest.fail(f"celery worker exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"celery worker not ready after {timeout}s:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield process  # its log is `log`; a test may kill it
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@contextlib.contextmanager
def celery_beat(*, broker: str, extra_env: dict | None = None, timeout: float = 90):
    """Run `celery beat` (the settings' database scheduler and schedule) against the test database; stop it after."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "giz_site.settings.worker_under_test",
        "DATABASE_URL": database_url(),
        "GIZ_TEST_BROKER_URL": broker,
        **(extra_env or {}),
    }
    log = Path(os.environ["GIZ_DATA_DIR"]) / f"beat-{time.monotonic_ns()}.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "giz_site", "beat", "--loglevel=INFO"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + timeout
        while "beat: Starting..." not in log.read_text():
            if process.poll() is not None:
                pytest.fail(f"celery beat exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"celery beat not started after {timeout}s:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def worker_starts(node_name: str) -> None:
    """Send what a Celery worker sends once it is ready to take tasks, as the worker of this node name."""
    from celery.signals import worker_ready

    class Consumer:  # the signal's sender: the worker's consumer, hashable, with the worker's node name
        hostname = node_name

    worker_ready.send(sender=Consumer())


def wait_for(predicate, *, timeout: float = 60, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


def send_task(broker: str, name: str, **options) -> None:
    """Send a task by name through `broker`, as another process would.

    The sending app must not become Celery's current app: shared_task proxies in later tests would
    then resolve to its tasks instead of the project's.
    """
    from celery import Celery

    options.setdefault("queue", settings.CELERY_TASK_ROUTES.get(name, {}).get("queue", "maintenance"))
    with Celery(broker=broker, set_as_current=False) as sender:
        sender.send_task(name, **options)
