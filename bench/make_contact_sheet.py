"""Render docs/contact_sheet.png: synthetic galaxies in rows of increasing inclination.

.venv/bin/python bench/make_contact_sheet.py --out docs/contact_sheet.png
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from acquisition import renderer as synthetic
from acquisition.contact_sheet import contact_sheet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("docs/contact_sheet.png"))
    parser.add_argument("--inclinations", default="0,15,30,45,60,70,80,90")
    parser.add_argument("--per-row", type=int, default=6)
    parser.add_argument("--tile", type=int, default=192)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    renderings, labels = [], []
    for inclination in (float(value) for value in args.inclinations.split(",")):
        for _ in range(args.per_row):
            params = synthetic.draw_params(rng, inclination=inclination)
            renderings.append(synthetic.render_galaxy(params, seed=int(rng.integers(2**31))))
            labels.append(f"i={inclination:.0f}  PA={params.position_angle:.0f}  q0={params.q0:.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(contact_sheet(renderings, labels, columns=args.per_row, tile=args.tile))
    print(f"wrote {args.out} ({len(renderings)} galaxies)")


if __name__ == "__main__":
    main()
