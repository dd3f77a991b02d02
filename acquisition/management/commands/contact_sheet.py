from pathlib import Path

import numpy as np
from django.core.management import BaseCommand, CommandError
from tqdm import tqdm

from acquisition import renderer as synthetic
from acquisition.contact_sheet import contact_sheet


class Command(BaseCommand):
    help = "Render a contact sheet PNG: synthetic galaxies in rows of increasing inclination."

    def add_arguments(self, parser):
        parser.add_argument("--out", type=Path, required=True)
        parser.add_argument(
            "--inclinations", default="0,30,45,55,65,75,85,90", help="Comma-separated inclinations, one row each."
        )
        parser.add_argument("--per-row", type=int, default=6)
        parser.add_argument("--seed", type=int, default=11)
        parser.add_argument("--tile", type=int, default=160)

    def handle(self, *args, out: Path, inclinations: str, per_row: int, seed: int, tile: int, **options):
        try:
            angles = [float(value) for value in inclinations.split(",")]
        except ValueError:
            raise CommandError("--inclinations must be numbers separated by commas.") from None
        if any(not 0 <= angle <= 90 for angle in angles) or per_row < 1:
            raise CommandError("Inclinations must lie in 0-90 and --per-row must be at least 1.")
        rng = np.random.default_rng(seed)
        renderings, labels = [], []
        with tqdm(total=len(angles) * per_row, desc="rendering", unit="galaxy", file=self.stderr) as bar:
            for angle in angles:
                for _ in range(per_row):
                    params = synthetic.draw_params(rng, inclination=angle)
                    renderings.append(synthetic.render_galaxy(params, seed=int(rng.integers(2**62))))
                    labels.append(f"i = {angle:.0f} deg")
                    bar.update()
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(contact_sheet(renderings, labels, columns=per_row, tile=tile))
        self.stdout.write(self.style.SUCCESS(f"Wrote {out}"))
