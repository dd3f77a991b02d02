"""Tasks per second through the embedded default's filesystem broker, by polling interval.

    .venv/bin/python bench/bench_broker.py [--tasks 300] [--intervals 1.0 0.1 0.02]

For each interval: a fresh data folder (SQLite, filesystem broker) with `celery worker --concurrency=2` as
scripts/start.sh starts it, N worker_heartbeat tasks (one small database write each) queued at once across
the four queues, and the time from the first send until the worker has logged every one as succeeded. Also
the worker's CPU time while idle for 10 s (the cost of polling an empty folder). Prints a Markdown table.
"""

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.machine import machine  # noqa: E402

QUEUES = ["acquisition", "inference", "training", "maintenance"]


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its children so far (from /proc)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for p in pids:
        fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def run(interval: float, n_tasks: int) -> dict:
    with tempfile.TemporaryDirectory() as data:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "giz_site.settings.local",
            "GIZ_DATA_DIR": data,
            "GIZ_FILESYSTEM_BROKER_POLL_S": str(interval),
        }
        for name in ("CELERY_BROKER_URL", "DATABASE_URL"):
            env.pop(name, None)
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=REPO, env=env, check=True)
        log = Path(data) / "worker.log"
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "giz_site", "worker", "--concurrency=2", "--loglevel=INFO"]
            + ["--without-mingle", "--without-gossip"],
            cwd=REPO,
            env=env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        try:
            while " ready." not in log.read_text():
                time.sleep(0.2)
            time.sleep(2)
            idle_start = _cpu_s(worker.pid)
            time.sleep(10)
            idle_cpu = _cpu_s(worker.pid) - idle_start
            sender = subprocess.run(
                [sys.executable, "-c", _SENDER, str(n_tasks)], cwd=REPO, env=env, check=True, capture_output=True
            )
            started = float(sender.stdout)
            while log.read_text().count("succeeded in") < n_tasks:
                time.sleep(0.05)
            elapsed = time.time() - started
        finally:
            worker.terminate()
            worker.wait(timeout=30)
    return {"interval": interval, "tasks": n_tasks, "seconds": elapsed, "idle_cpu_pct": idle_cpu / 10 * 100}


_SENDER = f"""
import sys, time, django
django.setup()
from giz_site.celery import app
queues = {QUEUES!r}
started = time.time()
for i in range(int(sys.argv[1])):
    app.send_task("giz_site.tasks.worker_heartbeat", queue=queues[i % 4])
print(started)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--intervals", type=float, nargs="+", default=[1.0, 0.1, 0.02])
    args = parser.parse_args()
    print(f"Machine: {machine()}; load average {os.getloadavg()[0]:.1f}")
    print("| polling interval (s) | tasks | seconds | tasks/s | worker CPU while idle |")
    print("|---|---|---|---|---|")
    for interval in args.intervals:
        r = run(interval, args.tasks)
        print(
            f"| {r['interval']} | {r['tasks']} | {r['seconds']:.1f} | {r['tasks'] / r['seconds']:.1f} "
            f"| {r['idle_cpu_pct']:.1f}% |",
            flush=True,
        )
    print(f"bench process CPU: {resource.getrusage(resource.RUSAGE_SELF).ru_utime:.1f} s")


if __name__ == "__main__":
    main()
