"""Catalogue export and cone search at catalogue scale (default 1,000,000 galaxies) on PostgreSQL and SQLite.

    .venv/bin/python -m bench.bench_catalog                              # 1M galaxies, PostgreSQL + SQLite
    .venv/bin/python -m bench.bench_catalog --galaxies 200000 --skip-naive
    .venv/bin/python -m bench.bench_catalog --database-url postgres://postgres@127.0.0.1:5432/giz_bench_catalog

Loads a synthetic sky (uniform on the sphere) into its own PostgreSQL database with COPY: every galaxy with an
ensemble prediction of 12 models, 20% with a consensus label (accepted, face-on, rejected). Kept between
runs (reloaded only when the count differs). Then, each in a fresh child process so peak memory is that
process's own (ru_maxrss):
- `manage.py export_catalog`'s code path (catalog_write) to ECSV and FITS: wall and CPU time, rows/s, peak RSS;
- the naive way for comparison: every row in memory, one astropy Table, Table.write;
- IVOA cone searches of radius 1 deg at random positions through the view (query + VOTable): p50/p95;
- the same cone searches on SQLite with the same galaxies.
Prints a Markdown block (and writes it to --out; paste it into docs/BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench.machine import machine

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/giz_bench_catalog"
N_MODELS = 12


def child_env(database_url: str, data_dir: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "GIZ_", "DATABASE_", "CELERY_"))}
    return keep | {
        "DJANGO_SETTINGS_MODULE": "giz_site.settings.local",
        "GIZ_DATA_DIR": str(data_dir),
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": "memory://",
    }


def run_child(env: dict[str, str], *args: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "bench.bench_catalog", "--child", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    if out.returncode:
        raise SystemExit(f"child {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------ synthetic sky


def sky(n: int, seed: int = 15) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "pgc": np.arange(1, n + 1),
        "ra": rng.uniform(0, 360, n),
        "dec": np.degrees(np.arcsin(rng.uniform(-1, 1, n))),
        "d25": rng.uniform(0.5, 3, n),
        "pa": rng.uniform(0, 179.9, n),
        "ba": rng.uniform(0.15, 1, n),
        "incl": rng.uniform(45, 90, n),
        "spread": rng.gamma(2, 1, n),
        "status": rng.choice(["accepted", "accepted", "accepted", "face_on", "rejected"], n),
        "has_consensus": rng.uniform(0, 1, n) < 0.2,
    }


def load_postgres(n: int) -> None:
    """COPY the synthetic sky into the (migrated) database unless it already holds n galaxies."""
    from django.db import connection

    from labeling.models import Galaxy
    from labeling.services.surveys import reference_survey

    if Galaxy.objects.count() == n:
        return
    s = sky(n)
    now = datetime.now(UTC).isoformat()
    survey_id = reference_survey().pk
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE labeling_galaxy, inference_modelversion RESTART IDENTITY CASCADE")
        names = [f"bench_m{i}" for i in range(N_MODELS)]
        for name in names:
            cursor.execute(
                "INSERT INTO inference_modelversion (name, kind, architecture, file, format, input_size, input_mode,"
                " output, plots, status, metrics, n_labels, n_synthetic, notes, created_at)"
                " VALUES (%s, 'regression', 'vgg_a', 'models/x.keras', 'keras', 128, 'color', 'degrees', '{}',"
                " 'retired', '{}', 0, 0, '', now())",
                [name],
            )

        def copy(table: str, columns: str, lines) -> None:
            buffer = io.StringIO()
            for line in lines:
                buffer.write(line)
            buffer.seek(0)
            cursor.cursor.copy_expert(f"COPY {table} ({columns}) FROM STDIN", buffer)

        copy(
            "labeling_galaxy",
            "pgc, name, ra, dec, d25_arcmin, position_angle, axial_ratio, source, state, failure_reason, is_gold,"
            " votes_count, label_priority, extra_votes, created_at, updated_at, survey_id",
            (
                f"{p}\tPGC {p}\t{ra!r}\t{dec!r}\t{d:.3f}\t{pa:.2f}\t{ba:.3f}\tsdss\tready\t\tf\t0\t0\t0\t{now}\t{now}"
                f"\t{survey_id}\n"
                for p, ra, dec, d, pa, ba in zip(
                    s["pgc"].tolist(),
                    s["ra"].tolist(),
                    s["dec"].tolist(),
                    s["d25"].tolist(),
                    s["pa"].tolist(),
                    s["ba"].tolist(),
                    strict=True,
                )
            ),
        )
        members = json.dumps({name: 60.0 for name in names})
        copy(
            "inference_ensembleprediction",
            "galaxy_id, median, mean, spread, rejection_likelihood, n_models, members, created_at",
            (
                f"{gid}\t{i:.2f}\t{i:.2f}\t{sp:.2f}\t0.1\t{N_MODELS}\t{members}\t{now}\n"
                for gid, i, sp in zip(s["pgc"].tolist(), s["incl"].tolist(), s["spread"].tolist(), strict=True)
            ),
        )
        copy(
            "labeling_consensuslabel",
            "galaxy_id, status, inclination, uncertainty, agreement, n_votes, created_at, updated_at",
            (
                f"{gid}\t{st}\t{(f'{i:.1f}' if st == 'accepted' else chr(92) + 'N')}\t"
                f"{('2.5' if st == 'accepted' else chr(92) + 'N')}\t0.8\t7\t{now}\t{now}\n"
                for gid, st, i, c in zip(
                    s["pgc"].tolist(), s["status"].tolist(), s["incl"].tolist(), s["has_consensus"], strict=True
                )
                if c
            ),
        )
        cursor.execute("ANALYZE")


def load_sqlite(n: int) -> None:
    """The same galaxies (no predictions or consensus: the cone search reads the galaxy table) into SQLite."""
    from django.db import connection, transaction

    from labeling.models import Galaxy
    from labeling.services.surveys import reference_survey

    if Galaxy.objects.count() == n:
        return
    s = sky(n)
    now = datetime.now(UTC).isoformat()
    survey_id = reference_survey().pk
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM labeling_galaxy")
        cursor.executemany(
            "INSERT INTO labeling_galaxy (pgc, name, ra, dec, d25_arcmin, position_angle, axial_ratio, source, state,"
            " failure_reason, is_gold, votes_count, label_priority, extra_votes, created_at, updated_at, survey_id)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, 'sdss', 'ready', '', 0, 0, 0, 0, %s, %s, %s)",
            [
                (p, f"PGC {p}", ra, dec, d, pa, ba, now, now, survey_id)
                for p, ra, dec, d, pa, ba in zip(
                    s["pgc"].tolist(),
                    s["ra"].tolist(),
                    s["dec"].tolist(),
                    s["d25"].tolist(),
                    s["pa"].tolist(),
                    s["ba"].tolist(),
                    strict=True,
                )
            ],
        )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


# ------------------------------------------------------------------------------ child measurements


def _usage(start_wall: float, start_cpu: float) -> dict:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "wall_s": time.perf_counter() - start_wall,
        "cpu_s": usage.ru_utime + usage.ru_stime - start_cpu,
        "peak_rss_mb": usage.ru_maxrss / 1024,
    }


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child_export(fmt: str, out: str, naive: bool) -> dict:
    from inference.catalog_selectors import catalog_chunks
    from inference.catalog_services import catalog_meta, catalog_write
    from labeling.catalog_formats import catalog_table

    baseline_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    wall, cpu = time.perf_counter(), _cpu()
    if naive:
        # Every row in memory, one astropy Table, astropy's own writer: what one writes without streaming.
        columns: dict[str, list] = {}
        for chunk in catalog_chunks(filters={}):
            for name, values in chunk.items():
                columns.setdefault(name, []).extend(values)
        table = catalog_table(columns, meta=catalog_meta(filters={}))
        rows = len(table)
        table.write(out, format="ascii.ecsv" if fmt == "ecsv" else "fits", overwrite=True)
    else:
        with open(out, "wb") as file:
            rows = catalog_write(fmt=fmt, out=file, filters={})
    result = _usage(wall, cpu) | {"rows": rows, "bytes": os.path.getsize(out), "import_rss_mb": baseline_rss}
    os.unlink(out)
    return result


def child_cones(n_cones: int, radius: float) -> dict:
    from django.test import Client

    rng = np.random.default_rng(3)
    client = Client(HTTP_HOST="localhost")
    client.get(f"/api/catalog/cone/?RA=10&DEC=10&SR={radius}")  # warm the connection
    times, rows = [], []
    for _ in range(n_cones):
        ra, dec = rng.uniform(0, 360), float(np.degrees(np.arcsin(rng.uniform(-1, 1))))
        start = time.perf_counter()
        response = client.get(f"/api/catalog/cone/?RA={ra:.5f}&DEC={dec:.5f}&SR={radius}")
        times.append(1000 * (time.perf_counter() - start))
        assert response.status_code == 200 and b'value="OK"' in response.content, response.content[:500]
        rows.append(response.content.count(b"<TR>"))
    return {
        "p50_ms": float(np.percentile(times, 50)),
        "p95_ms": float(np.percentile(times, 95)),
        "max_ms": float(max(times)),
        "mean_rows": float(np.mean(rows)),
    }


def child_main(args) -> None:
    import django

    django.setup()
    if args.task == "load-postgres":
        load_postgres(args.galaxies)
        result = {}
    elif args.task == "load-sqlite":
        load_sqlite(args.galaxies)
        result = {}
    elif args.task == "export":
        result = child_export(args.format, args.file, args.naive)
    else:
        result = child_cones(args.cones, args.radius)
    print(json.dumps(result))


# ------------------------------------------------------------------------------ driver


def ensure_postgres_database(url: str) -> None:
    import psycopg2

    name = url.rsplit("/", 1)[1]
    connection = psycopg2.connect(url.rsplit("/", 1)[0] + "/postgres")
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if not cursor.fetchone():
            cursor.execute(f'CREATE DATABASE "{name}"')
    connection.close()


def migrate(env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=REPO, env=env, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--galaxies", type=int, default=1_000_000)
    parser.add_argument("--database-url", default=DEFAULT_DB)
    parser.add_argument("--cones", type=int, default=300)
    parser.add_argument("--radius", type=float, default=1.0)
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--skip-export", action="store_true", help="only the cone searches")
    parser.add_argument("--out", default="")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("task", nargs="?", default="", help=argparse.SUPPRESS)
    parser.add_argument("--format", default="ecsv", help=argparse.SUPPRESS)
    parser.add_argument("--file", default="", help=argparse.SUPPRESS)
    parser.add_argument("--naive", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(args)
        return

    tmp = Path(tempfile.mkdtemp(prefix="giz-bench-catalog-"))
    ensure_postgres_database(args.database_url)
    env = child_env(args.database_url, tmp)
    migrate(env)
    n = str(args.galaxies)
    start = time.perf_counter()
    run_child(env, "load-postgres", "--galaxies", n)
    load_s = time.perf_counter() - start
    print(f"loaded {args.galaxies} galaxies into PostgreSQL in {load_s:.0f} s", file=sys.stderr)

    lines = [
        f"### Catalogue export and cone search ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        f"`.venv/bin/python -m bench.bench_catalog --galaxies {args.galaxies}"
        f"{' --skip-naive' if args.skip_naive else ''}{' --skip-sqlite' if args.skip_sqlite else ''}"
        f"{' --skip-export' if args.skip_export else ''}` on "
        f"{machine()}, PostgreSQL {pg_version(args.database_url)}, shared with other engineers' work (not quiet: "
        "CPU time is the fairer figure). Synthetic sky: every galaxy with a 12-model ensemble prediction, "
        "20% with a consensus label.",
        "",
        "| export | way | rows | wall s | CPU s | rows/s (wall) | peak RSS MB | file MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for fmt in () if args.skip_export else ("ecsv", "fits"):
        ways = [("streamed (catalog_write)", False)] + ([] if args.skip_naive else [("naive: astropy Table", True)])
        for label, naive in ways:
            file = str(tmp / f"export.{fmt}")
            r = run_child(env, "export", "--format", fmt, "--file", file, *(["--naive"] if naive else []))
            print(fmt, label, r, file=sys.stderr)
            lines.append(
                f"| {fmt.upper()} | {label} | {r['rows']} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | "
                f"{r['rows'] / r['wall_s']:,.0f} | {r['peak_rss_mb']:.0f} | {r['bytes'] / 1e6:.0f} |"
            )
    lines += [
        "",
        "| cone search, SR = 1 deg | cones | p50 ms | p95 ms | max ms | rows per cone |",
        "|---|---|---|---|---|---|",
    ]
    cones = [("PostgreSQL", env)]
    if not args.skip_sqlite:
        sqlite_env = child_env(f"sqlite:///{tmp / 'bench.sqlite3'}", tmp)
        migrate(sqlite_env)
        run_child(sqlite_env, "load-sqlite", "--galaxies", n)
        cones.append(("SQLite", sqlite_env))
    for label, cone_env in cones:
        r = run_child(cone_env, "cones", "--cones", str(args.cones), "--radius", str(args.radius))
        print(label, r, file=sys.stderr)
        lines.append(
            f"| {label}, {args.galaxies:,} galaxies | {args.cones} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | "
            f"{r['max_ms']:.1f} | {r['mean_rows']:.0f} |"
        )
    block = "\n".join(lines) + "\n"
    print(block)
    if args.out:
        Path(args.out).write_text(block)


def pg_version(url: str) -> str:
    import psycopg2

    connection = psycopg2.connect(url)
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        version = cursor.fetchone()[0].split()[0]
    connection.close()
    return version


if __name__ == "__main__":
    main()
