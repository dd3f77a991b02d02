"""Where the shipped ensemble's error lies, and what combining the members differently would change.

    .venv/bin/python -m bench.bench_error_sources          # ~2 min CPU once the test answers are stored

1. RMS on the held-out test sets of inference.shipped, split by what kind of galaxy each image was: the
   population draw behind every test image is drawn again from its seed (`training_sets.source_draw`), so
   the split uses the truth (type, intrinsic thickness q0, surface brightness, bulge share), not the picture.
2. Each member alone against the ensemble: if the members' errors were independent, the ensemble would be
   much better than its best member; if they are shared, more members of the same kind buy little.
3. Ways of combining the members on the validation and test sets: the mean of the members through their
   curves (what ships), the same weighted by each member's learned sigma, and one curve on the members'
   mean instead of one per member (fitted on the validation galaxies of both sources).
"""

from __future__ import annotations

import os
import time

import numpy as np

from bench.machine import machine


def _rms(error: np.ndarray) -> float:
    return float(np.sqrt(np.mean(error**2)))


def _quartile_rows(label: str, values: dict[str, np.ndarray], errors: dict[str, np.ndarray]) -> list[str]:
    rows = []
    for q in range(4):
        cells = []
        for source, value in values.items():
            edges = np.quantile(value, [0.25 * q, 0.25 * (q + 1)])
            mask = (value >= edges[0]) & (value <= edges[1])
            cells.append(f"{edges[0]:.2f}-{edges[1]:.2f}: {_rms(errors[source][mask]):.2f}")
        rows.append(f"| {label}, quarter {q + 1} | " + " | ".join(cells) + " |")
    return rows


def main() -> None:
    from inference import shipped, training_sets
    from inference.metrics import apply_calibration, fit_calibration

    started = time.perf_counter()
    manifest, models = shipped.load_members()
    curves = shipped.calibrations_of(manifest)
    sources = ("ours", "galsim")
    tests = shipped._sets(shipped.TEST_SETS, list(sources))
    vals = shipped._sets(shipped.VAL_SETS, list(sources))
    # Raw answers (no curve, no clip), from which every combination below is built.
    raw = {}
    for part, sets in (("test", tests), ("val", vals)):
        for source, data in sets.items():
            p = shipped.predict(models, data.images, clip=False)
            raw[part, source] = (p.members, p.member_sigma, data.inclination.astype(np.float64))

    def shipped_answer(members, sigma):
        out = np.array(members)
        for j, curve in enumerate(curves):
            out[:, j] = apply_calibration(members[:, j], sigma[:, j], curve)[0]
        return np.clip(out, 45.0, 90.0)

    errors, draws = {}, {}
    for source in sources:
        members, sigma, true = raw["test", source]
        errors[source] = shipped_answer(members, sigma).mean(axis=1) - true
        seed = shipped.TEST_SETS[source][1]
        draws[source] = [training_sets.source_draw(seed, i)[1] for i in range(len(true))]

    lines = ["| galaxies (test sets) | " + " | ".join(sources) + " |", "|---|---|---|"]
    lines.append("| all | " + " | ".join(f"{_rms(errors[s]):.2f} (n {len(errors[s])})" for s in sources) + " |")
    for morphology in ("Sa", "Sb", "Sc", "Sd"):
        cells = []
        for s in sources:
            mask = np.array([d.morphology == morphology for d in draws[s]])
            cells.append(f"{_rms(errors[s][mask]):.2f} (n {mask.sum()})")
        lines.append(f"| type {morphology} | " + " | ".join(cells) + " |")
    for label, inside in (("45-80", lambda t: t < 80.0), ("80-90", lambda t: t >= 80.0)):
        cells = []
        for s in sources:
            mask = inside(raw["test", s][2])
            cells.append(f"{_rms(errors[s][mask]):.2f} (n {mask.sum()})")
        lines.append(f"| true inclination {label} deg | " + " | ".join(cells) + " |")
    fields = (
        ("q0", "intrinsic thickness q0"),
        ("mu0_r", "disk surface brightness mu0_r"),
        ("bulge_fraction", "bulge fraction"),
    )
    for field, label in fields:
        values = {s: np.array([getattr(d, field) for d in draws[s]], dtype=np.float64) for s in sources}
        lines += _quartile_rows(label, values, errors)

    member_rows = ["| source | " + " | ".join(m["name"] for m in manifest["members"]) + " | ensemble |"]
    member_rows.append("|---|" + "---|" * (len(models) + 1))
    for s in sources:
        members, sigma, true = raw["test", s]
        answers = shipped_answer(members, sigma)
        alone = [f"{_rms(answers[:, j] - true):.2f}" for j in range(len(models))]
        member_rows.append(f"| {s} | " + " | ".join(alone) + f" | {_rms(errors[s]):.2f} |")

    val_members = np.concatenate([raw["val", s][0] for s in sources])
    val_true = np.concatenate([raw["val", s][2] for s in sources])
    mean_curve = fit_calibration(val_members.mean(axis=1), val_true)

    def combinations(members, sigma):
        answers = shipped_answer(members, sigma)
        weights = 1.0 / sigma**2
        one_curve = apply_calibration(members.mean(axis=1), sigma[:, 0], mean_curve)[0]
        return {
            "mean of the members through their curves (shipped)": answers.mean(axis=1),
            "weighted by each member's learned sigma": (answers * weights).sum(axis=1) / weights.sum(axis=1),
            "one curve on the members' mean": np.clip(one_curve, 45.0, 90.0),
        }

    combo = {(part, s): combinations(*raw[part, s][:2]) for part in ("val", "test") for s in sources}
    combo_rows = ["| combination | val ours | val galsim | test ours | test galsim |", "|---|---|---|---|---|"]
    for name in combo["val", "ours"]:
        cells = [f"{_rms(combo[part, s][name] - raw[part, s][2]):.3f}" for part in ("val", "test") for s in sources]
        combo_rows.append(f"| {name} | " + " | ".join(cells) + " |")

    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    print("- Command: `.venv/bin/python -m bench.bench_error_sources`")
    print(
        f"- Machine: {machine()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average at the end "
        f"{load}; wall {time.perf_counter() - started:.0f} s"
    )
    print(f"- Shipped ensemble: {', '.join(m['name'] for m in manifest['members'])}\n")
    print("RMS (deg) of the shipped ensemble by what the galaxy was (quarters: the value range, then the RMS):\n")
    print("\n".join(lines))
    print("\nEach member alone (through its curve, clipped) against the ensemble, RMS (deg) on the test sets:\n")
    print("\n".join(member_rows))
    print("\nCombining the members, RMS (deg):\n")
    print("\n".join(combo_rows))


if __name__ == "__main__":
    main()
