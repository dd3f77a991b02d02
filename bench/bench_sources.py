"""How SDSS-like the two galaxy sources look: the GIZ.md stamp statistics, and a contact sheet.

    .venv/bin/python -m bench.bench_sources --n 60

Renders n stamps per source from the shared population (acquisition.population, 45-90 deg), in the
standard SDSS look (no survey-look randomisation), and measures them exactly as GIZ.md's last table
measured 21 real GIZ stamps: on the mean of R, G and B after resizing to 512 and to 128 px, sky = median,
noise = 1.4826 x MAD, peak = maximum of the 2-px Gaussian-smoothed central 20 x 20 px minus sky, G/R =
mean green over mean red inside the galaxy's thresholded region. Quartiles 25% / median / 75%.
Writes docs/sources_contact_sheet.png: one row per source, inclination rising left to right, then a
row of the same galaxies with the survey look applied (what training sees).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from bench.machine import machine

REPO = Path(__file__).resolve().parents[1]
REAL = {  # GIZ.md, last table: real SDSS stamps of GIZ galaxies
    "sky level, 512 px": "4 / 5 / 15",
    "sky noise, 512 px": "3.0 / 3.0 / 4.5",
    "core peak / noise, 512 px": "36 / 45 / 51",
    "sky level, 128 px": "4 / 5 / 15",
    "sky noise, 128 px": "1.5 / 2.0 / 2.5",
    "core peak / noise, 128 px": "40 / 59 / 74",
    "G/R colour of the galaxy": "0.89 / 0.96 / 1.00",
}


def stamp_statistics(rgb: np.ndarray) -> list[float]:
    """[sky, noise, peak/noise] at 512 px, the same at 128 px, and G/R (GIZ.md's definitions)."""
    out = []
    noise_512 = 0.0
    for size in (512, 128):
        image = np.asarray(Image.fromarray(rgb).resize((size, size), Image.LANCZOS), dtype=np.float64)
        grey = image.mean(axis=-1)
        sky = float(np.median(grey))
        noise = float(1.4826 * np.median(np.abs(grey - sky)))
        c = size // 2
        peak = float(ndimage.gaussian_filter(grey, 2)[c - 10 : c + 10, c - 10 : c + 10].max()) - sky
        out += [sky, noise, peak / max(noise, 1e-3)]
        if size == 512:
            noise_512 = noise
    image = np.asarray(Image.fromarray(rgb).resize((512, 512), Image.LANCZOS), dtype=np.float64)
    grey = image.mean(axis=-1)
    region = grey > np.median(grey) + 3 * max(noise_512, 1.0)
    out.append(float(image[..., 1][region].mean() / max(image[..., 0][region].mean(), 1e-3)) if region.any() else 1.0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=60, help="stamps per source")
    parser.add_argument("--sheet", default=str(REPO / "docs" / "sources_contact_sheet.png"))
    args = parser.parse_args()

    from acquisition import population
    from inference import survey_look, training_sets

    started = time.process_time()
    stats, rows = {}, []
    for source in training_sets.SOURCES:
        values, clean, looked = [], [], []
        for i in range(args.n):
            rng = np.random.default_rng([77, i])
            inclination = 45.0 + 45.0 * i / max(args.n - 1, 1)
            draw = population.draw_population(rng, inclination=inclination)
            stamp = training_sets.render_stamp(source, draw, seed=7700 + i, look=False)
            values.append(stamp_statistics(stamp))
            if i % max(args.n // 8, 1) == 0 and len(clean) < 8:
                clean.append(stamp)
                looked.append(survey_look.randomise_stamp(stamp, np.random.default_rng(i), strength=2.0)[0])
        stats[source] = np.percentile(np.array(values), [25, 50, 75], axis=0)
        rows += [np.concatenate(clean, axis=1), np.concatenate(looked, axis=1)]
    Image.fromarray(np.concatenate(rows, axis=0)).resize((8 * 128, len(rows) * 128), Image.LANCZOS).save(args.sheet)

    def fmt(q, k, digits):
        return " / ".join(f"{q[j, k]:.{digits}f}" for j in range(3))

    lines = [
        f"- Command: `.venv/bin/python -m bench.bench_sources --n {args.n}`",
        f"- Machine: {machine()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"CPU {time.process_time() - started:.0f} s",
        "",
        "| statistic (25% / median / 75%) | real SDSS (GIZ.md) | ours | galsim |",
        "|---|---|---|---|",
    ]
    for k, (name, real) in enumerate(REAL.items()):
        digits = 2 if k == 6 else 1
        lines.append(f"| {name} | {real} | {fmt(stats['ours'], k, digits)} | {fmt(stats['galsim'], k, digits)} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
