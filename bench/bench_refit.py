"""The nightly refit of the volunteer model at scale on PostgreSQL, while volunteers keep voting (issue 14).

    .venv/bin/python -m bench.bench_labeling --database giz_bench_h14 --skip-consensus --skip-load-test  # fill once
    .venv/bin/python -m bench.bench_refit --database giz_bench_h14

Runs `manage.py recompute_consensus` in its own process (as the Celery worker would) on the database that
bench_labeling filled (1,000,660 galaxies, 5,000,000 votes, 10,000 volunteers), while this process keeps serving
and recording votes through the real services. Reports the refit's wall and CPU time, its phases (read, fit,
volunteers, galaxies, catch-up, from the run's stats), the load average, the voting latencies meanwhile, and
checks that every vote recorded during the refit is counted exactly once (each galaxy's counter and label against
its votes).
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--database", default="giz_bench_h14")
parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
parser.add_argument("--no-voting", action="store_true", help="refit alone (e.g. the very first, cold refit)")
ARGS = parser.parse_args()
DATABASE_URL = f"{ARGS.pg}/{ARGS.database}"
os.environ["DATABASE_URL"] = DATABASE_URL
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "giz_site.settings.local")
os.environ.setdefault("GIZ_DATA_DIR", str(REPO / "var" / "bench-labeling"))
os.environ["GIZ_RETRAIN_AFTER_LABELS"] = str(10**9)  # no CNN retraining in the middle of the measurement
(Path(os.environ["GIZ_DATA_DIR"]) / "broker" / "queue").mkdir(parents=True, exist_ok=True)

import django  # noqa: E402
import numpy as np  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.db.models import Count  # noqa: E402

from bench.machine import machine  # noqa: E402
from giz_site.exceptions import ApplicationError  # noqa: E402
from labeling import selectors, services  # noqa: E402
from labeling.models import ConsensusLabel, ConsensusRun, Galaxy, Vote  # noqa: E402


def load() -> str:
    return " / ".join(Path("/proc/loadavg").read_text().split()[:3])


def answer(assignment) -> dict:
    shown = selectors.standards_shown(standard_ids=assignment.standard_ids).values()
    shown = sorted(shown, key=lambda s: s["inclination"])
    if random.random() < 0.1 or len(shown) < 2:
        return {"inclination": None, "flag": "not_spiral", "left_standard_id": None, "right_standard_id": None}
    k = random.randrange(1, len(shown))
    left, right = shown[k - 1], shown[k]
    return {
        "inclination": round((left["inclination"] + right["inclination"]) / 2, 1),
        "flag": "",
        "left_standard_id": left["id"],
        "right_standard_id": right["id"],
    }


def one_vote(user, timings: list) -> Vote | None:
    assignment = services.assignment_next(volunteer=user)
    if assignment is None:
        return None
    t0 = time.perf_counter()
    try:
        vote = services.vote_submit(
            volunteer=user, token=assignment.token, not_sure=False, note="", seconds_taken=30.0, **answer(assignment)
        )
    except ApplicationError:
        return None
    timings.append((time.perf_counter() - t0) * 1000)
    return vote


def pct(values, q) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main() -> None:
    users = list(get_user_model().objects.filter(username__startswith="v").order_by("id")[:10_000])
    before = ConsensusRun.objects.order_by("-id").values_list("id", flat=True).first() or 0
    print(f"{machine()}; load before {load()}", flush=True)
    started_at = datetime.now(UTC)
    t0 = time.perf_counter()
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "recompute_consensus", "-v", "0"],
        cwd=REPO,
        env={**os.environ, "DATABASE_URL": DATABASE_URL},
        stdout=subprocess.PIPE,
        text=True,
    )
    timings, votes, loads = [], [], []
    next_load = time.perf_counter()
    while worker.poll() is None:
        if time.perf_counter() >= next_load:
            loads.append(float(load().split()[0]))
            next_load += 30
        if ARGS.no_voting:
            time.sleep(0.5)
            continue
        vote = one_vote(random.choice(users), timings)
        if vote is not None:
            votes.append(vote)
    wall = time.perf_counter() - t0
    child = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = child.ru_utime + child.ru_stime
    run = ConsensusRun.objects.filter(id__gt=before).order_by("-id").first()
    # Every vote recorded meanwhile counted once: the galaxy's counter, and its label if it has one.
    galaxy_ids = {v.galaxy_id for v in votes}
    counts = dict(
        Vote.objects.filter(galaxy_id__in=galaxy_ids)
        .values("galaxy_id")
        .annotate(n=Count("id"))
        .values_list("galaxy_id", "n")
    )
    counters = dict(Galaxy.objects.filter(id__in=galaxy_ids).values_list("id", "votes_count"))
    labels = dict(ConsensusLabel.objects.filter(galaxy_id__in=galaxy_ids).values_list("galaxy_id", "n_votes"))
    wrong_counters = sum(1 for g in galaxy_ids if counters[g] != counts[g])
    wrong_labels = sum(1 for g, n in labels.items() if n != counts[g])
    stats = run.stats if run else {}
    lines = [
        "| measure | value |",
        "|---|---|",
        f"| started | {started_at:%Y-%m-%d %H:%M} UTC; {machine()} |",
        f"| refit (`manage.py recompute_consensus`, own process) wall | **{wall:.0f} s** |",
        f"| its CPU time (user + system) | {cpu:.0f} s |",
        f"| phases, wall (s) | {stats.get('seconds')} |",
        f"| phases, CPU of the refit process (s) | {stats.get('cpu_seconds')} |",
        f"| warm start / rounds / converged | {stats.get('warm_start')} / {stats.get('iterations')} /"
        f" {stats.get('converged')} |",
        f"| votes read / galaxies / volunteers written | {stats.get('votes'):,} / {stats.get('galaxies'):,} /"
        f" {stats.get('volunteers'):,} |",
        f"| labels changed / new / retired / priorities changed | {stats.get('changed'):,} / "
        f"{stats.get('new_labels'):,} / {stats.get('retired'):,} / {stats.get('priorities'):,} |",
        f"| galaxies caught up (voted on since the read) | {stats.get('caught_up'):,} |",
        f"| load average (1 min) during, every 30 s | {', '.join(f'{x:.1f}' for x in loads)} |",
        f"| votes recorded meanwhile; vote_submit p50 / p95 | {len(votes)}; {pct(timings, 50):.1f} / "
        f"{pct(timings, 95):.1f} ms |",
        f"| galaxies voted on meanwhile whose counter / label disagrees with their votes | {wrong_counters} / "
        f"{wrong_labels} (of {len(galaxy_ids)}) |",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
