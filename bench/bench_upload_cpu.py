"""CPU time of each step of an upload's prediction, in-process: what a shared machine's load distorts least.

    .venv/bin/python -m bench.bench_upload_cpu                # the bench_api 512 px JPEG, the shipped ensemble

Wall times on a busy machine say more about the neighbours than about the code; CPU seconds of this process
(time.process_time, all threads) per call do not. For the JPEG that bench.bench_api uploads, the median over
--n calls (after warm-up) of
  1. decoding it for a 128 px model (imaging.decode_for_model),
  2. measuring its position angle (as services.predictions.image_position_angle does), on its own,
  3. preparing the model input turned by that angle (imaging.prepare_batch), on its own,
  4. the three in sequence on one decoded image, as a request does them (2 and 3 may share work there),
  5. the shipped ensemble's forward pass with 8-fold test-time augmentation (one compiled call, 4 members).
Django-free.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.machine import machine  # noqa: E402


def cpu_ms(function, n: int) -> float:
    """Median CPU milliseconds (all threads of this process) of `function()` over n calls after 5 warm-ups."""
    for _ in range(5):
        function()
    times = []
    for _ in range(n):
        started = time.process_time()
        function()
        times.append(time.process_time() - started)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=300, help="calls per step")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from bench.bench_api import galaxy_jpeg_512
    from inference import baseline, ensemble, imaging, shipped

    data = galaxy_jpeg_512()
    size = 128

    def angle_of(decoded):
        # services.predictions.image_position_angle without Django (it reads no setting).
        try:
            return baseline.measure_axial_ratio(imaging.prepare_for_model(decoded, size=size)).position_angle
        except ValueError:
            return None

    def preparation():
        decoded = imaging.decode_for_model(data, size=size)
        return imaging.prepare_batch([decoded], size=size, position_angles=[angle_of(decoded)])

    decoded = imaging.decode_for_model(data, size=size)
    angle = angle_of(decoded)

    def fresh():
        # A new decoded image each call, as each upload has: nothing computed on it yet.
        return imaging.DecodedImage(decoded.pixels, decoded.kind, decoded.format)

    steps = {
        "decode (512 px JPEG at 1/2 scale)": lambda: imaging.decode_for_model(data, size=size),
        "position angle, alone": lambda: angle_of(fresh()),
        "model input turned by the angle, alone": lambda: imaging.prepare_batch(
            [fresh()], size=size, position_angles=[angle]
        ),
        "image preparation, decode + angle + model input": preparation,
    }
    results = {name: cpu_ms(step, args.n) for name, step in steps.items()}

    manifest = shipped.load_manifest()
    models = [ensemble.load_keras_file(str(shipped.SHIPPED_DIR / m["file"])) for m in manifest["members"]]
    rejection = manifest.get("rejection") or {}
    if rejection.get("file"):
        models.append(ensemble.load_keras_file(str(shipped.SHIPPED_DIR / rejection["file"])))
    function = ensemble.compile_group(models, size)
    batch = preparation()
    results[f"forward pass, {len(models)} members x 8 views"] = cpu_ms(lambda: function(batch).numpy(), args.n)

    load = os.getloadavg()
    lines = [
        f"Command: `.venv/bin/python -m bench.bench_upload_cpu --n {args.n}`; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; "
        f"{machine()}; load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}",
        "",
        "| step (median CPU ms per call, all threads) | value |",
        "|---|---|",
        *[f"| {name} | {value:.2f} |" for name, value in results.items()],
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
