"""Acquisition benchmark: cutouts per second with two Celery worker processes against the stand-in,
and 1,000 galaxies with 20% transient failures (none lost, none stored twice, no partial file).

Run from the repo root (needs PostgreSQL and Redis on 127.0.0.1; uses its own database and Redis db):
    .venv/bin/python -m bench.bench_acquisition [--throughput 600] [--faults 1000] [--rate-limit 15/s]

The baseline is the naive way: one process fetching galaxy after galaxy with a fresh connection,
decoding, resampling and writing each file directly (no checksum, no write-aside, no retries).
The stand-in runs in its own process and serves a pool of pre-rendered galaxies (`--pool`), so the
figure measures our client, workers and storage rather than the synthetic renderer.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import io
import os
import platform
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.machine import machine

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def port_free() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.2)
    raise SystemExit(f"nothing listening on port {port} after {timeout}s")


def ensure_database(url: str) -> None:
    import psycopg2

    name = url.rsplit("/", 1)[1]
    admin = psycopg2.connect(url.rsplit("/", 1)[0] + "/postgres")
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{name}"')
    admin.close()


def start_workers(env: dict, count: int, log_dir: Path, threads: int) -> list[subprocess.Popen]:
    workers = []
    for n in range(count):
        log = log_dir / f"worker{n}.log"
        workers.append(
            subprocess.Popen(
                [
                    PYTHON,
                    "-m",
                    "celery",
                    "-A",
                    "giz_site",
                    "worker",
                    "--pool=solo",
                    "-n",
                    f"bench{n}@%h",
                    "--without-mingle",
                    "--without-gossip",
                    "--loglevel=WARNING",
                ],  # fmt: skip
                cwd=REPO,
                env=env,
                stdout=log.open("w"),
                stderr=subprocess.STDOUT,
            )
        )
    time.sleep(1)
    deadline = time.monotonic() + 90
    # The log level hides "ready.": ask the workers instead.
    from giz_site.celery import app

    while time.monotonic() < deadline:
        replies = app.control.ping(timeout=1.0) or []
        if len(replies) >= count:
            return workers
        for w in workers:
            if w.poll() is not None:
                raise SystemExit(f"a worker exited: see {log_dir}")
    raise SystemExit("workers not ready after 90s")


def stop(processes) -> None:
    for p in processes:
        p.terminate()
    for p in processes:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()


def make_galaxies(*, start_pgc: int, count: int, outside: int = 0):
    from labeling.models import Galaxy

    rng = random.Random(start_pgc)
    galaxies = [
        Galaxy(pgc=start_pgc + i, ra=rng.uniform(0, 359.9), dec=rng.uniform(-10, 60), d25_arcmin=1.0, name="")
        for i in range(count - outside)
    ]
    galaxies += [
        Galaxy(pgc=start_pgc + count - outside + i, ra=rng.uniform(0, 359.9), dec=-60.0, d25_arcmin=1.0)
        for i in range(outside)
    ]
    return Galaxy.objects.bulk_create(galaxies)


def run_job(galaxies, description: str, timeout: float) -> tuple[float, object]:
    from acquisition.models import AcquisitionJob
    from acquisition.services import acquisition_job_create

    started = time.monotonic()
    job = acquisition_job_create(galaxy_ids=[g.pk for g in galaxies], description=description)
    from tqdm import tqdm

    with tqdm(total=job.total, desc=description, unit="galaxy") as bar:
        while True:
            job.refresh_from_db()
            bar.update(job.done + job.failed - bar.n)
            if job.status == AcquisitionJob.Status.SUCCEEDED:
                break
            if time.monotonic() - started > timeout:
                raise SystemExit(f"job {description} not done after {timeout}s: {job.done}+{job.failed}")
            time.sleep(0.25)
    return time.monotonic() - started, job


def sustained_rate(galaxies) -> float:
    """Images per second between the 10th and 90th percentile of store times (ramp-up excluded)."""
    from acquisition.models import GalaxyImage

    times = sorted(GalaxyImage.objects.filter(galaxy__in=galaxies).values_list("acquired_at", flat=True))
    if len(times) < 10:
        return float("nan")
    lo, hi = times[len(times) // 10], times[(len(times) * 9) // 10]
    return (len(times) * 0.8) / max((hi - lo).total_seconds(), 1e-6)


def naive_loop(*, base_url: str, count: int, out_dir: Path) -> float:
    """The naive way: sequential, fresh connection each time, straight to the final file."""
    import requests
    from PIL import Image

    from acquisition.sdss import cutout_plan, cutout_url

    rng = random.Random(7)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    for i in range(count):
        scale, size, _ = cutout_plan(d25_arcmin=1.0)
        url = cutout_url(base_url=base_url, data_release="dr16", ra=rng.uniform(0, 359.9), dec=rng.uniform(-10, 60),
                         scale=scale, width=size, height=size)  # fmt: skip
        body = requests.get(url, timeout=20).content
        image = Image.open(io.BytesIO(body)).convert("RGB").resize((512, 512), Image.Resampling.LANCZOS)
        image.save(out_dir / f"{i}.jpg", quality=92)
    return count / (time.monotonic() - started)


def check_outcome(galaxies, media_root: Path) -> dict:
    from acquisition.models import GalaxyImage
    from acquisition.services import PARTIAL_DIR
    from labeling.models import Galaxy

    ids = [g.pk for g in galaxies]
    states = dict(Galaxy.objects.filter(pk__in=ids).values_list("pk", "state"))
    reasons = dict(Galaxy.objects.filter(pk__in=ids, state="failed").values_list("pk", "failure_reason"))
    images = list(GalaxyImage.objects.filter(galaxy_id__in=ids))
    per_galaxy: dict[int, int] = {}
    bad_checksums = 0
    for image in images:
        per_galaxy[image.galaxy_id] = per_galaxy.get(image.galaxy_id, 0) + 1
        path = media_root / image.file.name
        if not path.exists() or hashlib.sha256(path.read_bytes()).hexdigest() != image.checksum:
            bad_checksums += 1
    stored_files = [p for p in (media_root / "images").rglob("*") if p.is_file()]
    partial = list((media_root / PARTIAL_DIR).glob("*")) if (media_root / PARTIAL_DIR).exists() else []
    return {
        "galaxies": len(ids),
        "ready": sum(1 for s in states.values() if s == "ready"),
        "failed_with_reason": sum(1 for pk, s in states.items() if s == "failed" and reasons.get(pk)),
        "lost": sum(1 for s in states.values() if s not in ("ready", "failed")),
        "stored_twice": sum(1 for n in per_galaxy.values() if n > 1),
        "ready_without_image": sum(1 for pk, s in states.items() if s == "ready" and pk not in per_galaxy),
        "bad_checksums": bad_checksums,
        "files_on_disk": len(stored_files),
        "image_rows": len(images),
        "partial_files": len(partial),
        "failure_reasons": sorted(set(reasons.values()))[:5],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--throughput", type=int, default=600, help="galaxies in the throughput run")
    parser.add_argument("--faults", type=int, default=1000, help="galaxies in the 20%%-failure run")
    parser.add_argument("--outside", type=int, default=20, help="of those, outside the footprint (permanent)")
    parser.add_argument("--naive", type=int, default=100, help="galaxies in the naive sequential loop")
    parser.add_argument("--rate-limit", default="20/s", help="SDSS requests per second per worker process")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--threads", type=int, default=1, help="threads per worker process (1: --pool=solo)")
    parser.add_argument("--pool", type=int, default=16, help="pre-rendered galaxies served by the stand-in")
    parser.add_argument("--database", default="postgres://postgres@127.0.0.1:5432/giz_acquisition_bench")
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/13")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    data_dir = Path(tempfile.mkdtemp(prefix="giz-bench-acq-"))
    port = port_free()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("GIZ_", "DJANGO_", "CELERY_", "DATABASE_"))},
        "DJANGO_SETTINGS_MODULE": "giz_site.settings.local",
        "DJANGO_SECRET_KEY": "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "GIZ_DATA_DIR": str(data_dir),
        "DATABASE_URL": args.database,
        "CELERY_BROKER_URL": args.broker,
        "GIZ_SDSS_CUTOUT_BASE_URL": f"http://127.0.0.1:{port}",
        "GIZ_SDSS_FRAMES_BASE_URL": f"http://127.0.0.1:{port}/sas",
        "GIZ_SDSS_FETCH_FITS": "false",
        "GIZ_SDSS_RATE_LIMIT": args.rate_limit,
        "GIZ_SDSS_TIMEOUT_S": "5",
        "GIZ_SDSS_BACKOFF_BASE_S": "0.5",
        "GIZ_SDSS_MAX_RETRIES": "10",
        "GIZ_LOG_LEVEL": "WARNING",
    }
    ensure_database(args.database)
    import redis

    redis.Redis.from_url(args.broker).flushdb()
    os.environ.update(env)
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    media_root = Path(settings.MEDIA_ROOT)

    standin_log = (data_dir / "standin.log").open("w")
    standin = subprocess.Popen(
        [PYTHON, "manage.py", "sdss_standin", "--port", str(port), "--pool", str(args.pool), "--slow-s", "6"],
        cwd=REPO, env=env, stdout=standin_log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    processes = [standin]
    try:
        wait_port(port)
        import requests

        base = env["GIZ_SDSS_CUTOUT_BASE_URL"]
        naive_loop(base_url=base, count=4 * args.pool, out_dir=data_dir / "warm")  # fill the stand-in's pool
        naive = naive_loop(base_url=base, count=args.naive, out_dir=data_dir / "naive")
        print(f"naive sequential loop: {naive:.1f} cutouts/s")

        processes += start_workers(env, args.workers, data_dir, args.threads)
        galaxies = make_galaxies(start_pgc=5_000_000, count=args.throughput)
        elapsed, job = run_job(galaxies, "throughput", timeout=600)
        wall = args.throughput / elapsed
        sustained = sustained_rate(galaxies)
        throughput_check = check_outcome(galaxies, media_root)
        print(f"workers: {wall:.1f} cutouts/s wall clock, {sustained:.1f}/s sustained; {throughput_check}")

        rates = {"500": 0.05, "503": 0.05, "reset": 0.04, "truncated": 0.04, "html": 0.02}
        requests.post(f"{base}/_faults", json={"rates": rates, "retry_after": 1}, timeout=5)
        requests.post(f"{base}/_stats/reset", timeout=5)
        faulty = make_galaxies(start_pgc=6_000_000, count=args.faults, outside=args.outside)
        fault_elapsed, fault_job = run_job(faulty, "20% faults", timeout=900)
        stats = requests.get(f"{base}/_stats", timeout=5).json()
        outcome = check_outcome(faulty, media_root)
        print(f"faults run: {fault_elapsed:.1f}s; {outcome}; stand-in: {stats}")
    finally:
        stop(processes[1:])
        stop(processes[:1])

    injected = sum(v for k, v in stats.items() if ":fault:" in k)
    answered = sum(stats.values())
    ok = (
        outcome["lost"] == 0
        and outcome["stored_twice"] == 0
        and outcome["partial_files"] == 0
        and outcome["bad_checksums"] == 0
        and outcome["files_on_disk"] - throughput_check["files_on_disk"] == outcome["image_rows"]
        and outcome["ready"] + outcome["failed_with_reason"] == outcome["galaxies"]
    )
    today = datetime.date.today().isoformat()
    load = f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after the run"
    new_files = outcome["files_on_disk"] - throughput_check["files_on_disk"]
    pool = f"`--pool=threads --concurrency={args.threads}`" if args.threads > 1 else "`--pool=solo`"
    print(
        f"""
### Acquisition ({today})

Machine: {machine()}, Python {platform.python_version()}; {load} (other processes share the CPUs).
Command: `.venv/bin/python -m bench.bench_acquisition --throughput {args.throughput} --faults {args.faults} \
--rate-limit {args.rate_limit} --threads {args.threads}`. PostgreSQL + Redis, {args.workers} Celery worker processes
({pool}), stand-in in its own process serving {args.pool} pre-rendered galaxies; colour cutouts only
(480 px requests resampled to the 512 px stamp, checksummed, written aside then moved).

| measurement | ours ({args.workers} workers, rate limit {args.rate_limit} each) | naive sequential loop | ratio |
|---|---|---|---|
| cutouts/s, {args.throughput} galaxies (wall clock incl. fan-out) | {wall:.1f} | {naive:.1f} | {wall / naive:.2f}x |
| cutouts per second, sustained (10th-90th percentile of store times) | {sustained:.1f} | | |

Fault run: {args.faults} galaxies ({args.outside} outside the footprint), {sum(rates.values()):.0%} of requests
failing transiently at random ({", ".join(f"{k} {v:.0%}" for k, v in rates.items())}; 503s carry Retry-After 1 s),
backoff base 0.5 s, up to 10 retries: {injected} faults injected in {answered} requests, {fault_elapsed:.0f} s.

| check | result |
|---|---|
| stored | {outcome["ready"]} |
| recorded as failures with a reason | {outcome["failed_with_reason"]} ({"; ".join(outcome["failure_reasons"])}) |
| lost (neither) | {outcome["lost"]} |
| stored twice | {outcome["stored_twice"]} |
| files on disk vs image rows | {new_files} vs {outcome["image_rows"]} |
| checksum mismatches / partial files | {outcome["bad_checksums"]} / {outcome["partial_files"]} |
| verdict | {"PASS" if ok else "FAIL"} |
"""
    )


if __name__ == "__main__":
    main()
