"""Benchmark the synthetic galaxy renderer on one core; prints a Markdown block.

    .venv/bin/python bench/bench_synthetic.py --n 200

Threads are pinned to 1 before NumPy loads. Rates come from process CPU time (robust to other
jobs on a shared machine) and wall time. The comparison is a plain per-pixel Python loop over
the same disk + arms + bulge model (no PSF, noise, stars), timed on small stamps and scaled
to 512 x 512 per pixel: a lower bound on what a non-vectorised renderer would cost.
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from acquisition import renderer as synthetic  # noqa: E402


def naive_render(params: synthetic.GalaxyParams, size: int) -> list[list[float]]:
    """The smooth disk, spiral arms and Sersic bulge of `params`, one pixel at a time."""
    scale = params.stamp_scale(size)
    inc, pa = math.radians(params.inclination), math.radians(params.position_angle)
    q = math.sqrt(math.cos(inc) ** 2 + (params.q0 * math.sin(inc)) ** 2)
    qb = math.sqrt(math.cos(inc) ** 2 + (params.bulge_q0 * math.sin(inc)) ** 2)
    h, re = params.disk_scale / scale, params.bulge_re / scale
    b_n = 2 * params.bulge_n - 1 / 3
    k = params.winding * params.n_arms / math.tan(math.radians(params.pitch_angle))
    image = []
    for row in range(size):
        line = []
        for col in range(size):
            x, y = col - (size - 1) / 2, (size - 1) / 2 - row
            u = -x * math.sin(pa) + y * math.cos(pa)
            v = x * math.cos(pa) + y * math.sin(pa)
            radius = math.hypot(u, v / q)
            phase = params.n_arms * math.atan2(v / q, u) - k * math.log(radius + 0.5) + params.arm_phase
            arms = ((1 + math.cos(phase)) / 2) ** params.arm_width
            disk = math.exp(-radius / h) * (1 - params.arm_strength + params.arm_strength * arms)
            rb = math.hypot(u, v / qb) / re
            bulge = math.exp(-b_n * (rb ** (1 / params.bulge_n) - 1))
            line.append(disk + params.bulge_fraction * bulge)
        image.append(line)
    return image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200, help="galaxies to render at full size")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--naive-n", type=int, default=3, help="stamps for the per-pixel loop")
    parser.add_argument("--naive-size", type=int, default=96)
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    params = [synthetic.draw_params(rng) for _ in range(args.n)]
    synthetic.render_galaxy(params[0], size=args.size, seed=0)  # warm caches (grids, FFT plans)

    cpu, wall = time.process_time(), time.perf_counter()
    for index, p in enumerate(params):
        synthetic.render_galaxy(p, size=args.size, seed=index)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall

    jpeg_cpu = time.process_time()
    for index, p in enumerate(params[:20]):
        synthetic.to_color_jpeg(synthetic.render_galaxy(p, size=args.size, seed=index))
    jpeg_cpu = (time.process_time() - jpeg_cpu) / min(20, args.n)

    naive_cpu = time.process_time()
    for p in params[: args.naive_n]:
        naive_render(p, args.naive_size)
    naive_cpu = (time.process_time() - naive_cpu) / args.naive_n * (args.size / args.naive_size) ** 2

    per_galaxy = cpu / args.n
    print(f"### Synthetic generator speed ({args.size}x{args.size}, g/r/i, one core)\n")
    print(f"- Command: `.venv/bin/python bench/bench_synthetic.py --n {args.n} --size {args.size}`")
    print(
        f"- Machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}, "
        f"NumPy {np.__version__}, threads pinned to 1\n"
    )
    print("| measure | value |")
    print("|---|---|")
    print(f"| galaxies rendered | {args.n} |")
    print(f"| CPU time per galaxy | {per_galaxy * 1e3:.1f} ms |")
    print(f"| **galaxies per second (CPU)** | **{1 / per_galaxy:.1f}** |")
    print(f"| galaxies per second (wall, shared machine) | {args.n / wall:.1f} |")
    print(f"| render + colour JPEG, per galaxy | {jpeg_cpu * 1e3:.1f} ms ({1 / jpeg_cpu:.1f}/s) |")
    print(
        f"| per-pixel Python loop, smooth model only, scaled to {args.size}x{args.size} | "
        f"{naive_cpu:.2f} s per galaxy |"
    )
    print(f"| speed-up of the vectorised renderer over the loop | {naive_cpu / per_galaxy:.0f}x |")


if __name__ == "__main__":
    main()
