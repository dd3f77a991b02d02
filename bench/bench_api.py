"""Upload inference through gunicorn: end-to-end latency of a 512x512 JPEG and requests/s with 2 and 8 clients.

    .venv/bin/python -m bench.bench_api                       # the real architectures (vgg_a, vgg_b, vgg_c + rejection)
    .venv/bin/python -m bench.bench_api --requests 300 --duration 20 --workers 2

Sets up a throwaway data folder (SQLite), registers and activates an ensemble through the inference
services (untrained weights: the arithmetic, hence the latency, is that of trained ones), starts gunicorn with
giz_site/gunicorn.conf.py when it exists, warms up, then measures:
- sequential end-to-end latency (client -> gunicorn -> Django -> decode -> models -> JSON -> client), p50/p95;
- throughput with 2 and 8 concurrent clients;
- in the same run, the baselines: the same prediction in-process without HTTP (what HTTP costs) and the naive
  service that loads the model files for every request (what loading once at start-up saves).
Prints a Markdown block (and writes it to --out; paste it into docs/BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import requests
from tqdm import tqdm

from bench.machine import machine

REPO = Path(__file__).resolve().parent.parent
TARGET_P50_MS = 40.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def galaxy_jpeg_512(seed: int = 3) -> bytes:
    from acquisition.renderer import draw_params, render_galaxy, to_color_jpeg

    rendering = render_galaxy(draw_params(np.random.default_rng(seed), inclination=68.0), size=512, seed=seed)
    return to_color_jpeg(rendering)


def setup_django(env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=REPO, env=env, check=True)
    os.environ.update(env)
    import django

    django.setup()


def register_ensemble(architectures: list[str], rejection: str | None, tmp: Path) -> list[Path]:
    """Save untrained models of the given architectures and activate them through the services."""
    import keras
    from django.contrib.auth import get_user_model
    from django.core.files import File

    from inference.architectures import build_regression_model, build_rejection_model
    from inference.services import model_version_activate, model_version_upload

    staff, _ = get_user_model().objects.get_or_create(username="bench", defaults={"is_staff": True})
    plan = [("regression", a, build_regression_model) for a in architectures]
    if rejection:
        plan.append(("rejection", rejection, build_rejection_model))
    paths = []
    for i, (kind, arch, build) in enumerate(plan):
        keras.utils.set_random_seed(i)
        path = tmp / f"{kind}-{arch}-{i}.keras"
        build(arch, input_size=128).save(path)
        paths.append(path)
        with path.open("rb") as fh:
            version = model_version_upload(
                file=File(fh, name=path.name), name=f"bench-{kind}-{arch}-{i}", kind=kind, user=staff
            )
        model_version_activate(model_version=version, user=staff)
    return paths


def start_gunicorn(env: dict[str, str], port: int, workers: int) -> subprocess.Popen:
    command = [str(Path(sys.executable).with_name("gunicorn")), "giz_site.wsgi:application"]
    conf = REPO / "giz_site" / "gunicorn.conf.py"
    if conf.exists():
        command += ["-c", str(conf)]
    command += ["-b", f"127.0.0.1:{port}", "-w", str(workers), "--timeout", "300", "--log-level", "warning"]
    log = open(Path(env["GIZ_DATA_DIR"]) / "gunicorn.log", "w")  # noqa: SIM115 - lives as long as the server
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


def post(url: str, data: bytes, session: requests.Session | None = None) -> float:
    started = time.perf_counter()
    response = (session or requests).post(url, files={"file": ("galaxy.jpg", data, "image/jpeg")}, timeout=120)
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"{response.status_code}: {response.text[:500]}")
    return elapsed


def concurrent_run(url: str, data: bytes, clients: int, duration: float) -> tuple[float, list[float]]:
    latencies: list[float] = []
    lock = threading.Lock()
    stop = time.perf_counter() + duration

    def client() -> None:
        session = requests.Session()
        while time.perf_counter() < stop:
            elapsed = post(url, data, session)
            with lock:
                latencies.append(elapsed)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(latencies) / (time.perf_counter() - started), latencies


def naive_per_request(paths: list[Path], data: bytes, repeats: int) -> list[float]:
    """The naive service: load every model file, then predict, on each request."""
    import keras

    from inference.imaging import prepare_for_model

    times = []
    for _ in tqdm(range(repeats), desc="naive (load per request)", leave=False):
        started = time.perf_counter()
        image = prepare_for_model(data, size=128)[None]
        for path in paths:
            keras.models.load_model(path, compile=False).predict(image, verbose=0)
        times.append(time.perf_counter() - started)
    return times


def in_process(data: bytes, repeats: int) -> list[float]:
    from inference.services import predict_image_bytes

    predict_image_bytes(data=data)
    times = []
    for _ in tqdm(range(repeats), desc="in-process service", leave=False):
        started = time.perf_counter()
        predict_image_bytes(data=data)
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200, help="sequential requests measured after warm-up")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per concurrency level")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="gunicorn worker processes")
    parser.add_argument("--architectures", default="vgg_a,vgg_b,vgg_c", help="regression members")
    parser.add_argument("--rejection", default="vgg_a", help="rejection classifier architecture ('' for none)")
    parser.add_argument(
        "--shipped", action="store_true", help="measure the shipped ensemble (manage.py activate_shipped) instead"
    )
    parser.add_argument("--naive-repeats", type=int, default=5)
    parser.add_argument("--out", default="", help="also write the Markdown block to this file")
    args = parser.parse_args()

    load_at_start = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="giz-bench-api-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "GIZ_", "DATABASE_", "CELERY_"))} | {
        "DJANGO_SETTINGS_MODULE": "giz_site.settings.local",
        "GIZ_DATA_DIR": str(tmp),
        "GIZ_THROTTLE_ANON": "1000000/min",
        "GIZ_THROTTLE_USER": "1000000/min",
        "CELERY_BROKER_URL": "memory://",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    setup_django(env)
    architectures = [a for a in args.architectures.split(",") if a]
    if args.shipped:
        from django.core.management import call_command

        from inference import shipped

        call_command("activate_shipped")
        manifest = shipped.load_manifest()
        paths = [shipped.SHIPPED_DIR / m["file"] for m in manifest["members"]]
        architectures = [f"shipped {m['name']}" for m in manifest["members"]]
    else:
        paths = register_ensemble(architectures, args.rejection or None, tmp)
    data = galaxy_jpeg_512()

    port = free_port()
    url = f"http://127.0.0.1:{port}/api/inference/upload/"
    server = start_gunicorn(env, port, args.workers)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                post(url, data)
                break
            except (requests.ConnectionError, RuntimeError) as exc:
                if server.poll() is not None or time.monotonic() > deadline:
                    log = (tmp / "gunicorn.log").read_text()[-3000:]
                    raise SystemExit(f"gunicorn did not come up: {exc}\n{log}") from exc
                time.sleep(0.5)
        for _ in tqdm(range(args.warmup * args.workers), desc="warm-up", leave=False):
            post(url, data)
        session = requests.Session()
        sequential = [post(url, data, session) for _ in tqdm(range(args.requests), desc="sequential")]
        throughput = {}
        for clients in (2, 8):
            throughput[clients] = concurrent_run(url, data, clients, args.duration)
    finally:
        server.terminate()
        server.wait(timeout=30)

    local = in_process(data, max(20, args.requests // 4))
    naive = naive_per_request(paths, data, args.naive_repeats)

    p50, p95 = percentile(sequential, 50) * 1000, percentile(sequential, 95) * 1000
    local_p50 = statistics.median(local) * 1000
    naive_p50 = statistics.median(naive) * 1000
    if (REPO / "giz_site" / "gunicorn.conf.py").exists():
        threads = os.environ.get("GIZ_WEB_THREADS", "4")
        conf_note = f" x {threads} threads (giz_site/gunicorn.conf.py: models loaded and warmed in each worker)"
    else:
        conf_note = " (sync)"
    if args.shipped:
        members = ", ".join(architectures) + " (trained; 8 rotations/flips per member, as served)"
    else:
        members = ", ".join(architectures) + (f" + rejection {args.rejection}" if args.rejection else "")
        members += " (untrained weights, same arithmetic as trained)"
    lines = [
        "## API: upload inference of a 512x512 JPEG through gunicorn",
        "",
        f"Command: `.venv/bin/python -m bench.bench_api --requests {args.requests} --duration {args.duration:g} "
        f"--workers {args.workers}{' --shipped' if args.shipped else ''}`",
        f"Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; machine: {machine()}; Python {platform.python_version()}; "
        f"load average at the start {load_at_start:.1f}, at the end {os.getloadavg()[0]:.1f}.",
        f"Ensemble: {members}; 128 px input; gunicorn {args.workers} workers{conf_note}; SQLite.",
        "",
        "| measurement | value |",
        "|---|---|",
        f"| sequential end-to-end p50 (target <= {TARGET_P50_MS:g} ms) | **{p50:.1f} ms** "
        f"({'met' if p50 <= TARGET_P50_MS else 'NOT met'}) |",
        f"| sequential end-to-end p95 | {p95:.1f} ms |",
    ]
    for clients, (rate, latencies) in throughput.items():
        lines.append(
            f"| {clients} concurrent clients | **{rate:.1f} req/s**, p50 {percentile(latencies, 50) * 1000:.1f} ms, "
            f"p95 {percentile(latencies, 95) * 1000:.1f} ms |"
        )
    lines += [
        f"| baseline: same prediction in-process, no HTTP (p50) | {local_p50:.1f} ms "
        f"(HTTP + multipart + JSON add {p50 - local_p50:.1f} ms) |",
        f"| baseline: naive service loading the models per request (p50) | {naive_p50:.0f} ms "
        f"(**{naive_p50 / p50:.0f}x** slower than ours) |",
        "",
    ]
    block = "\n".join(lines)
    print(block)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(block + "\n")
        print(f"written to {out}")


if __name__ == "__main__":
    main()
