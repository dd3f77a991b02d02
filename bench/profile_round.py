"""CPU time of one volunteer round through the API, in one process: where the server's time goes.

    PYTHONPATH=. GIZ_CACHE_URL=redis://127.0.0.1:6379/12 DATABASE_URL=postgres://postgres@127.0.0.1:5432/giz_bench \
        .venv/bin/python -m bench.profile_round --rounds 300 [--profile out.prof]

Drives Django's WSGI handler directly (no HTTP server, no network client): GET /api/assignments/next/ then
POST /api/votes/ between two neighbouring standards, as bench.bench_labeling's API client does, for volunteers
of a database that bench.bench_labeling filled. Prints the process's CPU time per round (user + system, so the
database's own work is not in it) and, with --profile, writes a cProfile of the timed rounds.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import sys
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "giz_site.settings.local")
os.environ["GIZ_RETRAIN_AFTER_LABELS"] = str(10**9)  # no training run in the middle of the measurement


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--volunteers", type=int, default=50)
    parser.add_argument("--profile", help="write a cProfile of the timed rounds to this file")
    parser.add_argument("--sql", action="store_true", help="print the statements of one round")
    return parser.parse_args()


def main():
    args = parse_args()
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.handlers.wsgi import WSGIHandler
    from rest_framework.authtoken.models import Token

    handler = WSGIHandler()
    users = list(get_user_model().objects.filter(username__startswith="v").order_by("id")[: args.volunteers])
    tokens = [Token.objects.get_or_create(user=u)[0].key for u in users]

    def call(method: str, path: str, token: str, body: bytes = b"") -> tuple[int, bytes]:
        environ = {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_HOST": "127.0.0.1:8000",
            "HTTP_AUTHORIZATION": f"Token {token}",
            "CONTENT_TYPE": "application/json",
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body),
            "wsgi.url_scheme": "http",
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        }
        status = []
        chunks = handler(environ, lambda s, h, e=None: status.append(s))
        data = b"".join(chunks)
        if hasattr(chunks, "close"):
            chunks.close()
        return int(status[0].split()[0]), data

    def one_round(token: str) -> int:
        status, data = call("GET", "/api/assignments/next/", token)
        if status != 200:
            return status
        page = json.loads(data)
        shown = sorted(page["standards"], key=lambda s: s["inclination"])
        k = random.randrange(1, len(shown))
        form = {
            "token": page["token"],
            "inclination": round((shown[k - 1]["inclination"] + shown[k]["inclination"]) / 2, 1),
            "left_standard_id": shown[k - 1]["id"],
            "right_standard_id": shown[k]["id"],
            "flag": "",
            "seconds_taken": 30,
        }
        status, data = call("POST", "/api/votes/", token, json.dumps(form).encode())
        if status != 201:
            print(status, data[:300], file=sys.stderr)
        return status

    for i in range(args.warmup):
        one_round(tokens[i % len(tokens)])
    if args.sql:
        from django.db import connection

        def show(execute, sql, params, many, context):
            print(" ".join(sql.split())[:300])
            return execute(sql, params, many, context)

        with connection.execute_wrapper(show):
            one_round(tokens[0])
        return
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile(time.process_time)  # CPU, not waits on the database
    outcomes: dict[int, int] = {}
    cpu0, wall0 = time.process_time(), time.perf_counter()
    if profiler:
        profiler.enable()
    for i in range(args.rounds):
        status = one_round(tokens[i % len(tokens)])
        outcomes[status] = outcomes.get(status, 0) + 1
    if profiler:
        profiler.disable()
        profiler.dump_stats(args.profile)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    print(
        f"{args.rounds} rounds: {cpu / args.rounds * 1000:.2f} ms CPU per round, "
        f"{wall / args.rounds * 1000:.2f} ms wall;"
        f" outcomes {outcomes}; load {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
