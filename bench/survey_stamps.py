"""The benchmark's simulated new survey: GalSim stamps in a look the shipped ensemble never saw (Django-free).

Rendered once and cached as uint8 .npz under var/bench_surveys/ (GalSim costs ~0.3 s of CPU per stamp):

    nice -n 10 .venv/bin/python -m bench.survey_stamps          # 2,000 survey stamps + the reference test sets
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import time
from pathlib import Path

import numpy as np

from acquisition import population
from acquisition.population import SurveyLook
from inference import training_sets

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / "var" / "bench_surveys"
# A ground-based survey unlike SDSS: coarser pixels, worse seeing, a noisier, redder composite with sky left in
# and a harder stretch. The shipped ensemble's training looks (inference.survey_look) do not cover it.
BENCH_LOOK = SurveyLook(
    pixel_scale=0.9,
    seeing=(1.8, 2.8),
    stretch=0.6,
    softening=0.5,
    band_scales=(0.6, 1.0, 1.8),
    noise=1.6,
    sky_level=0.06,
)
SURVEY_SEED = 7301
N_STAMPS = 2000  # 1,000 to label, 1,000 held out
RENDER_SIZE = 256


def _one(job: tuple) -> tuple[np.ndarray, float, float]:
    seed, index, look = job
    rng = np.random.default_rng([seed, index, 7])
    draw = population.draw_population(rng, inclination=float(rng.uniform(45.0, 90.0)), look=look)
    stamp = training_sets.render_stamp(
        "galsim", draw, seed=int(seed * 1_000_003 + index), render_size=RENDER_SIZE, survey=look
    )
    return stamp, draw.inclination, draw.position_angle


def survey_stamps(n: int, *, seed: int = SURVEY_SEED, look: SurveyLook = BENCH_LOOK, processes: int = 2):
    """(stamps uint8 N x 256 x 256 x 3, true inclination, position angle) of the simulated survey, cached."""
    # The GalSim renderer's cache version in the key: a changed renderer renders its stamps again.
    version = training_sets.SOURCE_CACHE_VERSION["galsim"]
    key = hashlib.sha256(repr((n, seed, look, RENDER_SIZE, version)).encode()).hexdigest()[:16]
    path = CACHE / f"survey-{key}.npz"
    if path.exists():
        with np.load(path) as data:
            return data["stamps"], data["inclination"], data["position_angle"]
    jobs = [(seed, i, look) for i in range(n)]
    started = time.time()
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        results = []
        for result in pool.imap(_one, jobs, chunksize=4):
            results.append(result)
            if len(results) % 100 == 0:
                print(f"  {len(results)}/{n} survey stamps, {time.time() - started:.0f} s", flush=True)
    stamps = np.stack([r[0] for r in results])
    inclination = np.array([r[1] for r in results], np.float32)
    angle = np.array([r[2] for r in results], np.float32)
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, stamps=stamps, inclination=inclination, position_angle=angle)
    tmp.replace(path)
    return stamps, inclination, angle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=N_STAMPS)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    started = time.time()
    survey_stamps(args.n, processes=args.processes)
    print(f"survey stamps: {time.time() - started:.0f} s", flush=True)
    from inference import shipped

    for source, (n, seed) in shipped.TEST_SETS.items():
        started = time.time()
        training_sets.cached_source_set(shipped.CACHE_DIR, source, n, seed=seed, processes=args.processes)
        print(f"reference test set {source}: {time.time() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
