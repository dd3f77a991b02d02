"""Labeling at scale against PostgreSQL: next galaxy, vote, full consensus, and 100 volunteers through gunicorn.

    .venv/bin/python -m bench.bench_labeling                         # 1,000,000 galaxies, 5,000,000 votes
    .venv/bin/python -m bench.bench_labeling --galaxies 200000 --votes-per-galaxy 5 --duration 30

Fills a separate database (default giz_bench; kept between runs, --refill rebuilds it) with INSERT ... SELECT
generate_series: volunteers, galaxies (85% retired with a label, 15% still needing a vote, 1% with an active-
learning priority), 460 standards with images, 200 gold galaxies, and votes-per-galaxy votes each. Then measures
1. server-side p50/p95 of assignment_next and vote_submit, against the naive ORDER BY RANDOM() selection;
2. the full consensus recomputation while another thread keeps voting (voting latency during vs before);
3. gunicorn with 100 concurrent volunteers for --duration seconds: votes/s, and every accepted vote in the
   database once (5% of forms are sent twice on purpose: the second must be refused).
Prints a Markdown block and writes it to the file given with --out (paste it into docs/BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
N_VOLUNTEERS = 10_000
N_GOLD = 200
TARGET_MS = 50.0


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default="giz_bench")
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--galaxies", type=int, default=1_000_000)
    parser.add_argument("--votes-per-galaxy", type=int, default=5)
    parser.add_argument("--samples", type=int, default=300, help="service calls timed per measurement")
    parser.add_argument("--naive-samples", type=int, default=10)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--gunicorn-workers", type=int, default=4)
    parser.add_argument("--gunicorn-threads", type=int, default=8, help="threads per gthread worker")
    parser.add_argument(
        "--client",
        choices=["api", "page"],
        default="api",
        help="api: GET /api/assignments/next/ + POST /api/votes/ with a token; page: /label/ and its form",
    )
    parser.add_argument("--app-dir", default=str(REPO), help="the checkout gunicorn serves (to compare commits)")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds of load before the measured window")
    parser.add_argument("--refill", action="store_true")
    parser.add_argument("--fill-only", action="store_true", help="fill the database and stop")
    parser.add_argument("--skip-services", action="store_true", help="no in-process service timings")
    parser.add_argument("--skip-consensus", action="store_true")
    parser.add_argument("--skip-load-test", action="store_true", help="no gunicorn run (service calls only)")
    parser.add_argument("--out", default=str(REPO / "docs" / "bench" / "labeling.md"))
    return parser.parse_args()


ARGS = parse_args()
DATABASE_URL = f"{ARGS.pg}/{ARGS.database}"
os.environ["DATABASE_URL"] = DATABASE_URL
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "giz_site.settings.local")
os.environ.setdefault("GIZ_DATA_DIR", str(REPO / "var" / "bench-labeling"))
# The bench's labels must not start a real CNN retraining in the middle of the measurements.
os.environ["GIZ_RETRAIN_AFTER_LABELS"] = str(10**9)
(Path(os.environ["GIZ_DATA_DIR"]) / "broker" / "queue").mkdir(parents=True, exist_ok=True)

import django  # noqa: E402
import numpy as np  # noqa: E402
import psycopg2  # noqa: E402


def ensure_database() -> None:
    conn = psycopg2.connect(f"{ARGS.pg}/postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", [ARGS.database])
        if cur.fetchone() and ARGS.refill:
            cur.execute(f'DROP DATABASE "{ARGS.database}" WITH (FORCE)')
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", [ARGS.database])
        if not cur.fetchone():
            cur.execute(f'CREATE DATABASE "{ARGS.database}"')
    conn.close()


ensure_database()
django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY  # noqa: E402
from django.contrib.auth.hashers import make_password  # noqa: E402
from django.contrib.sessions.backends.db import SessionStore  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.db.models import Exists, OuterRef  # noqa: E402
from tqdm import tqdm  # noqa: E402

from bench.machine import machine  # noqa: E402
from giz_site.exceptions import ApplicationError  # noqa: E402
from labeling import selectors, services  # noqa: E402
from labeling.models import Assignment, Galaxy, Vote  # noqa: E402
from labeling.services.surveys import reference_survey  # noqa: E402


def pct(values, q):
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


# ------------------------------------------------------------------------------ fill


def sql(statement: str, params=None) -> None:
    with connection.cursor() as cur:
        cur.execute(statement, params)


def fill() -> float:
    call_command("migrate", verbosity=0)
    n, per = ARGS.galaxies, ARGS.votes_per_galaxy
    have = Galaxy.objects.count()
    if have >= n + 460 + N_GOLD and Vote.objects.count() >= n * per:
        print(f"database {ARGS.database} already filled ({have} galaxies); --refill rebuilds it")
        return 0.0
    started = time.perf_counter()
    password = make_password("bench-password-1")
    survey_id = reference_survey().pk
    steps = [
        (
            "volunteers",
            """INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email, is_staff,
                   is_active, date_joined)
               SELECT %s, false, 'v' || i, '', '', 'v' || i || '@example.org', false, true, now()
               FROM generate_series(1, %s) i""",
            [password, N_VOLUNTEERS],
        ),
        (
            "profiles",
            """INSERT INTO labeling_volunteerprofile (user_id, display_name, show_on_leaderboard, tutorial_done,
                   votes_count, gold_votes_count, gold_abs_error_sum, calibration_slope, calibration_intercept, weight)
               SELECT id, '', false, true, 500, 0, 0, 1, 0, 1 FROM auth_user""",
            [],
        ),
        (
            "galaxies",
            """INSERT INTO labeling_galaxy (pgc, name, ra, dec, source, state, failure_reason, is_gold,
                   votes_count, extra_votes, label_priority, retired_at, created_at, updated_at, survey_id)
               SELECT i, '', (i * 0.000359) %% 360, ((i * 0.00017) %% 170) - 85, 'sdss', 'ready', '', false,
                   %s, CASE WHEN i %% 100 < 85 THEN 0 ELSE %s END,
                   CASE WHEN i %% 100 = 99 THEN (i %% 17) ELSE 0 END,
                   CASE WHEN i %% 100 < 85 THEN now() END, now(), now(), %s
               FROM generate_series(1, %s) i""",
            [per, max(per - settings.GIZ_VOTES_TO_RETIRE + 1, 0), survey_id, n],
        ),
        (
            "standards and gold galaxies",
            """INSERT INTO labeling_galaxy (pgc, name, ra, dec, source, state, failure_reason, is_gold,
                   known_inclination, votes_count, extra_votes, label_priority, created_at, updated_at, survey_id)
               SELECT 50000000 + i, '', 10, 10, 'synthetic', 'ready', '', i > 460, 45 + (i %% 46), 0, 0, 0,
                   now(), now(), %s
               FROM generate_series(1, 460 + %s) i""",
            [survey_id, N_GOLD],
        ),
        (
            "standards",
            """INSERT INTO labeling_standardgalaxy (galaxy_id, inclination, inclination_source, active, created_at)
               SELECT id, known_inclination, 'bench', true, now() FROM labeling_galaxy
               WHERE pgc > 50000000 AND NOT is_gold""",
            [],
        ),
        (
            "images",
            """INSERT INTO acquisition_galaxyimage (galaxy_id, band, format, file, source, width, height, checksum,
                   acquired_at, survey_id)
               SELECT id, 'color', 'jpeg', 'images/bench/' || pgc || '.jpg', 'synthetic', 512, 512, '', now(), survey_id
               FROM labeling_galaxy WHERE pgc > 50000000""",
            [],
        ),
        (
            "colour images shown",
            # Raw inserts fire no signals: write what acquisition's receiver keeps on the galaxy row.
            """UPDATE labeling_galaxy SET color_image = 'images/bench/' || pgc || '.jpg' WHERE pgc > 50000000""",
            [],
        ),
        (
            "votes",
            # Vote k of galaxy number i comes from volunteer (k * 7919 + i * 31) mod N: distinct for k < 5.
            # Ids are computed, not joined: the tables were just filled in order.
            """INSERT INTO labeling_vote (volunteer_id, galaxy_id, inclination, flag, not_sure, note, seconds_taken,
                   was_gold, created_at)
               SELECT (SELECT min(id) FROM auth_user) + ((k * 7919 + i * 31) %% %s),
                   (SELECT min(id) FROM labeling_galaxy) + i - 1,
                   -- retired galaxies' votes agree (0.3 deg apart); open ones' disagree (9 deg apart)
                   CASE WHEN (i + k) %% 11 = 0 THEN NULL
                        ELSE 45 + ((i * 7 + k * CASE WHEN i %% 100 < 85 THEN 3 ELSE 90 END) %% 450) / 10.0 END,
                   CASE WHEN (i + k) %% 11 = 0 THEN 'face_on' ELSE '' END, false, '', 60, false, now()
               FROM generate_series(0, %s - 1) k, generate_series(1, %s) i""",
            [N_VOLUNTEERS, per, n],
        ),
        (
            "labels",
            """INSERT INTO labeling_consensuslabel (galaxy_id, status, inclination, uncertainty, agreement, n_votes,
                   created_at, updated_at)
               SELECT id, 'accepted', 45 + (id %% 45), 2.0, 1.0, votes_count, now(), now()
               FROM labeling_galaxy WHERE retired_at IS NOT NULL""",
            [],
        ),
    ]
    for name, statement, params in tqdm(steps, desc="fill", unit="step"):
        t0 = time.perf_counter()
        sql(statement, params)
        tqdm.write(f"  {name}: {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    with connection.cursor() as cur:
        cur.execute("VACUUM ANALYZE")
    tqdm.write(f"  vacuum analyze: {time.perf_counter() - t0:.1f} s")
    return time.perf_counter() - started


# ------------------------------------------------------------------------------ service latencies

USERS = []


def volunteers():
    from django.contrib.auth import get_user_model

    if not USERS:
        USERS.extend(get_user_model().objects.filter(username__startswith="v").order_by("id")[:N_VOLUNTEERS])
    return USERS


def answer(assignment: Assignment) -> dict:
    """A valid answer for the standards the assignment showed: between two neighbours, or a flag."""
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


def one_round(user, timings_next, timings_vote) -> bool:
    t0 = time.perf_counter()
    assignment = services.assignment_next(volunteer=user)
    timings_next.append((time.perf_counter() - t0) * 1000)
    if assignment is None:
        return False
    form = answer(assignment)
    t0 = time.perf_counter()
    try:
        services.vote_submit(
            volunteer=user, token=assignment.token, not_sure=False, note="", seconds_taken=30.0, **form
        )
    except ApplicationError:
        return False
    timings_vote.append((time.perf_counter() - t0) * 1000)
    return True


def measure_services() -> dict:
    users = volunteers()
    pool = random.sample(users, min(len(users), ARGS.samples + 50))
    warm_next, warm_vote = [], []
    for user in pool[:20]:
        one_round(user, warm_next, warm_vote)
    timings_next, timings_vote = [], []
    for user in tqdm(pool[20 : 20 + ARGS.samples], desc="next + vote", unit="vote"):
        one_round(user, timings_next, timings_vote)
    naive = []
    for user in tqdm(pool[-ARGS.naive_samples :], desc="naive ORDER BY RANDOM()", unit="pick"):
        voted = Vote.objects.filter(volunteer=user, galaxy=OuterRef("pk"))
        t0 = time.perf_counter()
        Galaxy.objects.filter(retired_at__isnull=True, state="ready", is_gold=False).exclude(Exists(voted)).order_by(
            "?"
        ).first()
        naive.append((time.perf_counter() - t0) * 1000)
    return {"next": timings_next, "vote": timings_vote, "naive": naive}


# ------------------------------------------------------------------------------ consensus while voting


def measure_consensus() -> dict:
    """Run `manage.py recompute_consensus` in its own process (as the Celery worker would) while voting here."""
    during_next, during_vote = [], []
    env = {**os.environ, "DATABASE_URL": DATABASE_URL}
    users = volunteers()
    t0 = time.perf_counter()
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "recompute_consensus"], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True
    )
    with tqdm(desc="voting during the recomputation", unit="vote") as bar:
        while worker.poll() is None:
            if one_round(random.choice(users), during_next, during_vote):
                bar.update()
    seconds = time.perf_counter() - t0
    output = worker.stdout.read().strip().splitlines()
    return {"seconds": seconds, "stats": output[-1] if output else "", "next": during_next, "vote": during_vote}


# ------------------------------------------------------------------------------ gunicorn load test

TOKEN = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
PAGE_DATA = re.compile(r'<script id="page-data" type="application/json">(.*?)</script>', re.S)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def session_for(user) -> str:
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    return session.session_key


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used (Linux /proc; no psutil needed)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_tree(root: int) -> list[int]:
    """`root` and its child processes (gunicorn's master and workers)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == root:
                children.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue  # a process that ended while we looked
    return [root, *children]


def own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def api_round(http, base: str, outcomes: Counter, lock) -> tuple[int, str] | None:
    """One volunteer round through the API: the next assignment, then a vote between two neighbours shown."""
    page = http.get(f"{base}/api/assignments/next/", timeout=30)
    if page.status_code != 200:
        with lock:
            outcomes[f"next {page.status_code}"] += 1
        time.sleep(0.2)
        return None
    data = page.json()
    shown = sorted(data["standards"], key=lambda s: s["inclination"])
    k = random.randrange(1, len(shown))
    form = {
        "token": data["token"],
        "inclination": round((shown[k - 1]["inclination"] + shown[k]["inclination"]) / 2, 1),
        "left_standard_id": shown[k - 1]["id"],
        "right_standard_id": shown[k]["id"],
        "flag": "",
        "seconds_taken": 30,
    }
    response = http.post(f"{base}/api/votes/", json=form, timeout=30)
    with lock:
        outcomes[f"vote {response.status_code}"] += 1
    accepted = response.status_code == 201
    if random.random() < 0.05:  # a double submission: must be refused, never saved twice
        again = http.post(f"{base}/api/votes/", json=form, timeout=30)
        with lock:
            outcomes[f"resubmitted {again.status_code}"] += 1
        accepted = accepted or again.status_code == 201  # (the first one failed and saved nothing)
    return (accepted, data["token"])


def page_round(http, base: str, outcomes: Counter, lock) -> tuple[int, str] | None:
    """One volunteer round through the website: /label/, then its form posted to /label/vote/."""
    page = http.get(f"{base}/label/", timeout=30)
    match = PAGE_DATA.search(page.text)
    if page.status_code != 200 or not match:
        with lock:
            outcomes[f"page {page.status_code}{'' if match else ' no galaxy'}"] += 1
        time.sleep(0.2)
        return None
    data = json.loads(match.group(1))
    shown = sorted(data["standards"].values(), key=lambda s: s["inclination"])
    k = random.randrange(1, len(shown))
    form = {
        "csrfmiddlewaretoken": TOKEN.search(page.text).group(1),
        "token": data["token"],
        "galaxy": str(data["galaxy"]["id"]),
        "inclination": f"{(shown[k - 1]['inclination'] + shown[k]['inclination']) / 2:.1f}",
        "left_standard": str(shown[k - 1]["id"]),
        "right_standard": str(shown[k]["id"]),
        "flag": "",
        "seconds_taken": "30",
    }
    headers = {"Referer": f"{base}/label/"}
    response = http.post(f"{base}/label/vote/", data=form, headers=headers, allow_redirects=False)
    with lock:
        outcomes[f"vote {response.status_code}"] += 1
    accepted = response.status_code == 302
    if random.random() < 0.05:  # a double submission: must be refused, never saved twice
        again = http.post(f"{base}/label/vote/", data=form, headers=headers, allow_redirects=False)
        with lock:
            outcomes[f"resubmitted {again.status_code}"] += 1
        accepted = accepted or again.status_code == 302  # (the first one failed and saved nothing)
    return (accepted, data["token"])


def load_test() -> dict:
    """--clients volunteers against gunicorn: --warmup seconds, then a --duration window in which the CPU time of
    the web processes (gunicorn's master and workers, from /proc) and of this load generator are measured."""
    import requests
    from rest_framework.authtoken.models import Token

    port = free_port()
    env = {**os.environ, "DATABASE_URL": DATABASE_URL, "DJANGO_SETTINGS_MODULE": os.environ["DJANGO_SETTINGS_MODULE"]}
    log = open(Path(os.environ["GIZ_DATA_DIR"]) / "gunicorn-bench.log", "w")  # noqa: SIM115
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "giz_site.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(ARGS.gunicorn_workers),
            "--threads",
            str(ARGS.gunicorn_threads),
            "--worker-class",
            "gthread",
            "--backlog",
            "512",
        ],
        cwd=ARGS.app_dir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    one_round = api_round if ARGS.client == "api" else page_round
    try:
        for _ in range(120):
            try:
                requests.get(f"{base}/", timeout=10).raise_for_status()
                break
            except requests.RequestException:
                time.sleep(1)
        else:
            raise SystemExit(f"gunicorn did not answer; see {log.name}")
        users = random.sample(volunteers(), ARGS.clients)
        started_at = datetime.now(UTC)
        stop = threading.Event()
        accepted: list[tuple[int, str]] = []
        outcomes = Counter()
        rounds = [0]
        latencies = []
        lock = threading.Lock()

        # Credentials made here: a client thread that touched the database would hold a connection of its own.
        if ARGS.client == "api":
            credentials = {u.pk: Token.objects.get_or_create(user=u)[0].key for u in users}
        else:
            credentials = {u.pk: session_for(u) for u in users}

        def volunteer(user):
            http = requests.Session()
            if ARGS.client == "api":
                http.headers["Authorization"] = f"Token {credentials[user.pk]}"
            else:
                http.cookies.set("sessionid", credentials[user.pk])
            while not stop.is_set():
                try:
                    t0 = time.perf_counter()
                    result = one_round(http, base, outcomes, lock)
                    if result is None:
                        continue
                    ok, token = result
                    with lock:
                        latencies.append((time.perf_counter() - t0) * 1000)
                        rounds[0] += 1
                        if ok:
                            accepted.append((user.pk, token))
                except requests.RequestException as error:
                    with lock:
                        outcomes[f"error {type(error).__name__}"] += 1

        threads = [threading.Thread(target=volunteer, args=(u,)) for u in users]
        for thread in threads:
            thread.start()
        time.sleep(ARGS.warmup)  # every worker has imported and connected; caches are warm
        pids = process_tree(server.pid)
        with lock:
            rounds0, votes0, lat0 = rounds[0], len(accepted), len(latencies)
        web0, own0, t0 = sum(cpu_seconds(p) for p in pids), own_cpu_seconds(), time.perf_counter()
        load0 = os.getloadavg()
        with tqdm(total=ARGS.duration, desc=f"{ARGS.clients} volunteers ({ARGS.client})", unit="s") as bar:
            while (waited := time.perf_counter() - t0) < ARGS.duration:
                time.sleep(min(1.0, ARGS.duration - waited))
                bar.update(min(1.0, ARGS.duration - bar.n))
        with lock:
            rounds1, votes1, window_latencies = rounds[0], len(accepted), latencies[lat0:]
        web1, own1, elapsed = sum(cpu_seconds(p) for p in pids), own_cpu_seconds(), time.perf_counter() - t0
        load1 = os.getloadavg()
        stop.set()
        for thread in threads:
            thread.join()
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    tokens = [token for _, token in accepted]
    used = Assignment.objects.filter(token__in=tokens, used_at__isnull=False).count()
    saved = Vote.objects.filter(volunteer__in=users, created_at__gte=started_at).count()
    per_pair = (
        Vote.objects.filter(volunteer__in=users, created_at__gte=started_at)
        .values("volunteer_id", "galaxy_id")
        .distinct()
        .count()
    )
    return {
        "elapsed": elapsed,
        "rounds": rounds1 - rounds0,
        "votes": votes1 - votes0,
        "web_cpu": web1 - web0,
        "own_cpu": own1 - own0,
        "web_processes": len(pids),
        "loadavg": (load0, load1),
        "accepted": len(accepted),
        "unique_tokens": len(set(tokens)),
        "tokens_used": used,
        "saved": saved,
        "distinct_pairs": per_pair,
        "outcomes": dict(outcomes),
        "latency": window_latencies,
    }


# ------------------------------------------------------------------------------ report


def main():
    fill_seconds = fill()
    if ARGS.fill_only:
        print(f"filled in {fill_seconds:.0f} s")
        return
    counts = {
        "galaxies": Galaxy.objects.count(),
        "votes": Vote.objects.count(),
        "open": Galaxy.objects.filter(retired_at__isnull=True, is_gold=False).count(),
    }
    print(f"data: {counts}")
    # Steady state: a platform with this many labels has trained on them, so new labels since that run are few.
    from django.utils import timezone

    from inference.models import TrainingRun

    if not TrainingRun.objects.filter(status=TrainingRun.Status.SUCCEEDED).exists():
        now = timezone.now()
        TrainingRun.objects.create(
            status=TrainingRun.Status.SUCCEEDED,
            trigger=TrainingRun.Trigger.NEW_LABELS,
            live=None,
            labels_cutoff=now,
            started_at=now,
            finished_at=now,
            message="bench: stands for the last retraining",
        )
    service = None if ARGS.skip_services else measure_services()
    consensus = None if ARGS.skip_consensus else measure_consensus()
    load = None if ARGS.skip_load_test else load_test()

    lines = [
        "## Labeling (issue 4)",
        "",
        f"Command: `.venv/bin/python -m bench.bench_labeling --galaxies {ARGS.galaxies} "
        f"--votes-per-galaxy {ARGS.votes_per_galaxy} --duration {ARGS.duration:.0f} --client {ARGS.client}`  ",
        f"Machine: {machine()}; PostgreSQL (same machine); {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.  ",
        "Other engineers' tests and benchmarks were using the same 2 cores during the run.",
        "",
        f"Data: {counts['galaxies']:,} galaxies ({counts['open']:,} still open), {counts['votes']:,} votes, "
        f"{N_VOLUNTEERS:,} volunteers" + (f"; filled in {fill_seconds:.0f} s" if fill_seconds else "") + ".",
        "",
    ]
    if service:
        lines += [
            "| Server-side call | p50 (ms) | p95 (ms) | target p95 |",
            "|---|---|---|---|",
            f"| assignment_next (choose next galaxy) | {pct(service['next'], 50):.1f} "
            f"| {pct(service['next'], 95):.1f} | {TARGET_MS:.0f} |",
            f"| vote_submit (record vote + consensus) | {pct(service['vote'], 50):.1f} "
            f"| {pct(service['vote'], 95):.1f} | {TARGET_MS:.0f} |",
            f"| naive ORDER BY RANDOM() selection | {pct(service['naive'], 50):.1f} "
            f"| {pct(service['naive'], 95):.1f} | – |",
            "",
            f"Naive / ours at p50: {pct(service['naive'], 50) / pct(service['next'], 50):.0f}x.",
            "",
        ]
    if consensus:
        lines += [
            f"Nightly refit of the volunteer model over {counts['votes']:,} votes (read, fit, write, catch-up; "
            f"`manage.py recompute_consensus` in its own process): **{consensus['seconds']:.0f} s** "
            f"({consensus['stats']}).  ",
            f"Voting meanwhile from this process: {len(consensus['vote'])} votes, assignment_next p95 "
            f"{pct(consensus['next'], 95):.1f} ms, vote_submit p95 {pct(consensus['vote'], 95):.1f} ms "
            "(not blocked).",
            "",
        ]
    if load is None:
        lines += ["(gunicorn load test skipped)"]
    else:
        lines += _load_lines(load)
    block = "\n".join(lines) + "\n"
    print("\n" + block)
    Path(ARGS.out).parent.mkdir(parents=True, exist_ok=True)
    Path(ARGS.out).write_text(block)


def _load_lines(load: dict) -> list[str]:
    ok = load["saved"] == load["accepted"] == load["unique_tokens"] == load["tokens_used"] == load["distinct_pairs"]
    rounds = max(load["rounds"], 1)
    how = "GET /api/assignments/next/ + POST /api/votes/" if ARGS.client == "api" else "/label/ + its form"
    return [
        f"gunicorn ({ARGS.gunicorn_workers} gthread workers x {ARGS.gunicorn_threads} threads), "
        f"{ARGS.clients} concurrent volunteers "
        f"({how}), {ARGS.warmup:.0f} s warm-up then a {load['elapsed']:.0f} s window; load average "
        f"{load['loadavg'][0][0]:.1f} at its start, {load['loadavg'][1][0]:.1f} at its end:",
        "",
        "| measured in the window | value |",
        "|---|---|",
        f"| rounds (next galaxy + vote) | {load['rounds']} |",
        f"| votes/s | **{load['votes'] / load['elapsed']:.1f}** |",
        f"| web CPU (gunicorn master + workers, {load['web_processes']} processes) | {load['web_cpu']:.1f} s "
        f"= {load['web_cpu'] / load['elapsed']:.2f} cores |",
        f"| **web CPU per round** | **{1000 * load['web_cpu'] / rounds:.1f} ms** (target <= 15) |",
        f"| load generator's own CPU (this process, all client threads) | {load['own_cpu']:.1f} s "
        f"= {1000 * load['own_cpu'] / rounds:.1f} ms per round |",
        f"| round trip p50 / p95 | {pct(load['latency'], 50):.0f} / {pct(load['latency'], 95):.0f} ms |",
        "",
        f"Whole run: accepted {load['accepted']}, in the database {load['saved']}, distinct (volunteer, galaxy) "
        f"{load['distinct_pairs']}, tokens used {load['tokens_used']}: "
        f"{'every accepted vote saved exactly once' if ok else 'MISMATCH'}.  ",
        f"Outcomes: {load['outcomes']} (resubmitted votes must be 409).",
    ]


if __name__ == "__main__":
    main()
