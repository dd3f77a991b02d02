"""What the worst uploads within the image budget cost: CPU time and peak memory of the upload pipeline.

    .venv/bin/python bench/bench_upload_budget.py

Each case is an image at the default budget (Limits().max_pixels = 2048 x 2048, all planes counted) made
as hard to decode as its format allows (noise does not compress), plus the decompression bombs the budget
refuses. Every case runs in a fresh process so its peak resident memory is its own: the figure is the growth
of the peak over the process after imports and reading the file. The pipeline is what an upload costs before
the CNN (whose cost does not depend on the upload): decode at the model's needs, measure the position angle,
prepare the colour and band inputs at 128 px. Prints a Markdown table.
"""

import argparse
import io
import json
import resource
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SIDE = 2048


def _noise(shape, dtype="uint8"):
    import numpy as np

    rng = np.random.default_rng(0)
    if dtype == "uint8":
        return rng.integers(0, 256, shape, dtype=np.uint8)
    if dtype == "uint16":
        return rng.integers(0, 65536, shape, dtype=np.uint16)
    return rng.normal(0, 1, shape).astype(dtype)


def _pillow(array, fmt, mode=None, **save) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    (Image.fromarray(array, mode) if mode else Image.fromarray(array)).save(buffer, format=fmt, **save)
    return buffer.getvalue()


def _fits(hdus) -> bytes:
    from astropy.io import fits

    buffer = io.BytesIO()
    fits.HDUList(hdus).writeto(buffer)
    return buffer.getvalue()


def _cases() -> dict:
    import numpy as np
    from astropy.io import fits
    from PIL import Image

    def animated_gif():
        frames = [Image.fromarray(_noise((SIDE, SIDE)), "L") for _ in range(3)]
        buffer = io.BytesIO()
        frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
        return buffer.getvalue()

    def gzip_fits_zeros():
        compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        raw = _fits([fits.PrimaryHDU(np.zeros((SIDE, SIDE), np.float32))])
        return compressor.compress(raw) + compressor.flush()

    strip = (362 * 32, 362)  # 32:1, the widest accepted, 4.19 Mpx
    return {
        "PNG RGBA noise 2048x2048": lambda: _pillow(_noise((SIDE, SIDE, 4)), "PNG"),
        "PNG 16-bit grey noise 2048x2048": lambda: _pillow(_noise((SIDE, SIDE), "uint16"), "PNG"),
        "JPEG noise 2048x2048 q95": lambda: _pillow(_noise((SIDE, SIDE, 3)), "JPEG", quality=95),
        "GIF animated, 3 frames 2048x2048": animated_gif,
        "TIFF float32 2048x2048": lambda: _pillow(_noise((SIDE, SIDE), "float32"), "TIFF", mode="F"),
        "PNG RGB noise 32:1 strip": lambda: _pillow(_noise((strip[1], strip[0], 3)), "PNG"),
        "FITS float32 2048x2048": lambda: _fits([fits.PrimaryHDU(_noise((SIDE, SIDE), "float32"))]),
        "FITS g,r,i cube 3x1182x1182": lambda: _fits([fits.PrimaryHDU(_noise((3, 1182, 1182), "float32"))]),
        "FITS RICE-compressed noise 2048x2048": lambda: _fits(
            [fits.PrimaryHDU(), fits.CompImageHDU(_noise((SIDE, SIDE), "float32"), compression_type="RICE_1")]
        ),
        "FITS gzip zeros 2048x2048": gzip_fits_zeros,
        "refused: FITS RICE zeros 6000x6000": lambda: _fits(
            [fits.PrimaryHDU(), fits.CompImageHDU(np.zeros((6000, 6000), np.float32), compression_type="RICE_1")]
        ),
    }


def _run_one(path: str) -> dict:
    """In a fresh process: the upload pipeline on one file, its CPU time and peak memory growth."""
    # Imported first: their import time is not the upload's cost.
    import astropy.io.fits
    import astropy.visualization  # noqa: F401

    from inference import baseline, imaging

    data = Path(path).read_bytes()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cpu, wall = time.process_time(), time.perf_counter()
    outcome = "prepared"
    try:
        decoded = imaging.decode_for_model(data, size=128)
        try:
            angle = baseline.measure_axial_ratio(imaging.prepare_for_model(decoded, size=128)).position_angle
        except ValueError:
            angle = None
        for mode in ("color", "bands"):
            imaging.prepare_batch([decoded], size=128, mode=mode, position_angles=[angle])
    except imaging.ImageError as exc:
        outcome = f"refused ({exc.code})"
    return {
        "cpu_s": time.process_time() - cpu,
        "wall_s": time.perf_counter() - wall,
        "peak_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024,
        "bytes": len(data),
        "outcome": outcome,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(_run_one(args.one)))
        return

    from bench.machine import machine

    print(f"Machine: {machine()}; each case in a fresh process; CPU time counts every thread.\n")
    print("| upload | file | outcome | CPU s | wall s | peak memory growth MB |")
    print("|---|---|---|---|---|---|")
    worst_cpu = worst_mb = 0.0
    with tempfile.TemporaryDirectory() as folder:
        for name, make in _cases().items():
            path = Path(folder) / "upload"
            path.write_bytes(make())
            result = json.loads(
                subprocess.run(
                    [sys.executable, __file__, "--one", str(path)], capture_output=True, text=True, check=True
                ).stdout.splitlines()[-1]
            )
            worst_cpu, worst_mb = max(worst_cpu, result["cpu_s"]), max(worst_mb, result["peak_mb"])
            print(
                f"| {name} | {result['bytes'] / 2**20:.2f} MB | {result['outcome']} | {result['cpu_s']:.2f} | "
                f"{result['wall_s']:.2f} | {result['peak_mb']:.0f} |"
            )
    print(f"\nWorst: {worst_cpu:.2f} s CPU, {worst_mb:.0f} MB peak memory growth.")


if __name__ == "__main__":
    main()
