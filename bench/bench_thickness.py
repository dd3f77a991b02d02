"""Do the two galaxy sources agree on how thick a disk of thickness q0 looks?

    .venv/bin/python -m bench.bench_thickness

Both renderers draw the same population (acquisition.population), so a galaxy of intrinsic axial
ratio q0 at inclination i should look equally flat in both; if not, the same truth comes with two
different pictures and an ensemble trained on both answers between them. For large, bright, bulgeless,
dust-free disks at 70-90 deg (four q0 from 0.10 to 0.25, three seeds each), the axial ratio is measured
on the r band with the axial-ratio baseline (inference.baseline: second moments of the thresholded
galaxy) and turned into an inclination with Hubble's formula and that same q0. The table is the mean
of (that inclination - the true one) per true inclination: our renderer, GalSim with scale_height =
q0 h (before), and GalSim with the renderer's current SECH2_HEIGHT_PER_Q0.
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np

from acquisition import galsim_renderer, population, renderer
from bench.machine import machine
from inference import baseline

Q0S = (0.10, 0.15, 0.20, 0.25)
INCLINATIONS = (70.0, 75.0, 80.0, 85.0, 90.0)
SEEDS = (1, 2, 3)
SIZE = 256


def clean_draw(seed: int, inclination: float, q0: float):
    drawn = population.draw_population(np.random.default_rng(seed), inclination=inclination)
    d25 = 3.0  # arcmin: large enough that the seeing barely thickens the disk
    return dataclasses.replace(
        drawn,
        q0=q0,
        bulge_fraction=0.0,
        bar_strength=0.0,
        dust_tau=0.0,
        neighbour=False,
        bright_stars=0,
        star_density=0.0,
        offset_x=0.0,
        offset_y=0.0,
        mu0_r=20.5,
        seeing=1.0,
        d25_arcmin=d25,
        fov_factor=2.0,
        stamp_scale=d25 * 2.0 * 60 / population.STAMP_PX,
    )


def hubble_inclination(q: float, q0: float) -> float:
    cos2 = (q * q - q0 * q0) / (1 - q0 * q0)
    return math.degrees(math.acos(math.sqrt(min(max(cos2, 0.0), 1.0))))


def measured_q(source: str, draw, seed: int, *, height_per_q0: float | None = None) -> float:
    if source == "ours":
        params = renderer.params_from_population(draw, np.random.default_rng(seed))
        params = dataclasses.replace(params, dust_tau=0.0, bulge_fraction=0.0)
        bands = renderer.render_galaxy(params, size=SIZE, seed=seed).bands
    else:
        bands = galsim_renderer.render_bands(draw, size=SIZE, seed=seed, height_per_q0=height_per_q0)
    return baseline.measure_axial_ratio(np.ascontiguousarray(bands[..., 1])).q


def main() -> None:
    started, cpu = time.time(), time.process_time()
    now = galsim_renderer.SECH2_HEIGHT_PER_Q0
    columns = {
        "ours": ("ours", None),
        "galsim, h_s = q0 h (before)": ("galsim", 1.0),
        f"galsim, h_s = {now} q0 h (now)": ("galsim", now),
    }
    rows = []
    for inclination in INCLINATIONS:
        row = []
        for source, height in columns.values():
            offsets = [
                hubble_inclination(measured_q(source, clean_draw(s, inclination, q0), s, height_per_q0=height), q0)
                - inclination
                for q0 in Q0S
                for s in SEEDS
            ]
            row.append(float(np.mean(offsets)))
        rows.append(row)
    print("## How thick a disk of thickness q0 looks in each source (bench/bench_thickness.py)\n")
    print("Command: `.venv/bin/python -m bench.bench_thickness`")
    print(
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; machine: {machine()}; "
        f"wall {time.time() - started:.0f} s, CPU {time.process_time() - cpu:.0f} s\n"
    )
    print("Mean (inclination from the measured axial ratio with Hubble's formula - true inclination), deg:\n")
    print("| true inclination | " + " | ".join(columns) + " |")
    print("|---|" + "---|" * len(columns))
    for inclination, row in zip(INCLINATIONS, rows, strict=True):
        print(f"| {inclination:.0f} | " + " | ".join(f"{v:+.2f}" for v in row) + " |")


if __name__ == "__main__":
    main()
