"""CPU time per call (time.process_time: every thread of this process, not PostgreSQL), for comparing two
versions of the code on a shared machine, where wall time mostly measures the other processes.

Run it from the root of the tree to measure (it imports that tree's code), e.g. against an old commit:

    git worktree add /tmp/old d0f426b && cd /tmp/old
    /path/to/.venv/bin/python /path/to/bench/bench_cpu_time.py inference
    /path/to/.venv/bin/python /path/to/bench/bench_cpu_time.py vote --database giz_bench_old

`inference`: the preloaded ensemble on one image, preparing a 512 px JPEG, both, and a batch of 64 (untrained
members). `vote`: assignment_next + vote_submit as service calls, and the /label/ page + form post through
Django's test client, on a database filled by bench.bench_labeling (`--database` as given to it).
"""

import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.getcwd())


def cpu_ms(fn, n: int, repeats: int = 5) -> float:
    """Median over `repeats` of the mean CPU ms of n calls, after one warm-up call."""
    fn()
    means = []
    for _ in range(repeats):
        started = time.process_time()
        for _ in range(n):
            fn()
        means.append((time.process_time() - started) / n * 1000)
    return sorted(means)[repeats // 2]


def inference() -> None:
    import numpy as np

    try:
        from acquisition import renderer as synthetic
    except ImportError:  # trees before the renderer had its name
        from acquisition import synthetic
    from inference import architectures, imaging
    from inference.ensemble import compile_group, load_keras_file

    folder = tempfile.TemporaryDirectory()
    paths = []
    for arch in architectures.DEFAULT_REGRESSION_MEMBERS:
        paths.append(Path(folder.name) / f"{arch}.keras")
        architectures.build_regression_model(arch, input_size=128).save(paths[-1])
    paths.append(Path(folder.name) / "rejection.keras")
    architectures.build_rejection_model("vgg_a", input_size=128).save(paths[-1])
    fn = compile_group([load_keras_file(str(p)) for p in paths], 128)
    params = synthetic.draw_params(np.random.default_rng(7), inclination=70.0)
    jpeg = synthetic.to_color_jpeg(synthetic.render_galaxy(params, size=512, seed=7))

    def prepare():
        return imaging.prepare_for_model(jpeg, size=128, position_angle=params.position_angle)

    image = prepare()[None]
    batch = np.random.default_rng(0).random((64, 128, 128, 3), dtype=np.float32)
    print(
        f"CPU ms: ensemble, one image {cpu_ms(lambda: fn(image).numpy(), 20):.2f}; prepare {cpu_ms(prepare, 10):.2f}; "
        f"end to end {cpu_ms(lambda: fn(prepare()[None]).numpy(), 10):.2f}; "
        f"batch of 64, per image {cpu_ms(lambda: fn(batch).numpy(), 2) / 64:.2f}"
    )


def vote(database: str, volunteers: int = 30, rounds: int = 5) -> None:
    sys.argv = [sys.argv[0], "--database", database]
    from bench import bench_labeling as labeling  # noqa: I001 (first: it sets Django up on that database)
    from django.test import Client

    random.seed(1)
    users = random.sample(labeling.volunteers(), 2 * volunteers)
    service_cpu, service_votes = 0.0, 0
    for user in users[:volunteers]:
        for _ in range(rounds):
            started = time.process_time()
            ok = labeling.one_round(user, [], [])
            service_cpu += time.process_time() - started
            service_votes += ok
    web_cpu, web_votes = 0.0, 0
    for user in users[volunteers:]:
        client = Client(HTTP_HOST="127.0.0.1")
        client.force_login(user)
        for _ in range(rounds):
            started = time.process_time()
            match = labeling.PAGE_DATA.search(client.get("/label/").content.decode())
            if not match:
                continue
            data = json.loads(match.group(1))
            shown = sorted(data["standards"].values(), key=lambda s: s["inclination"])
            k = random.randrange(1, len(shown))
            form = {
                "token": data["token"],
                "galaxy": str(data["galaxy"]["id"]),
                "inclination": f"{(shown[k - 1]['inclination'] + shown[k]['inclination']) / 2:.1f}",
                "left_standard": str(shown[k - 1]["id"]),
                "right_standard": str(shown[k]["id"]),
                "flag": "",
                "seconds_taken": "30",
            }
            response = client.post("/label/vote/", data=form)
            web_cpu += time.process_time() - started
            web_votes += response.status_code == 302
    print(
        f"CPU ms per vote: assignment_next + vote_submit {service_cpu / max(service_votes, 1) * 1000:.2f} "
        f"({service_votes} votes); /label/ page + post {web_cpu / max(web_votes, 1) * 1000:.2f} ({web_votes} votes)"
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["inference"]:
        inference()
    elif sys.argv[1:2] == ["vote"] and len(sys.argv) == 4 and sys.argv[2] == "--database":
        vote(sys.argv[3])
    else:
        raise SystemExit(__doc__)
