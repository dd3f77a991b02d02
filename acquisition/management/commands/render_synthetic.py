from django.core.management import BaseCommand, CommandError
from tqdm import tqdm

from acquisition.synthetic_source import synthetic_catalog_render


class Command(BaseCommand):
    help = "Render synthetic galaxies with known inclinations into storage (galaxies + images + truth)."

    def add_arguments(self, parser):
        parser.add_argument("--count", type=int, required=True)
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--min-inclination", type=float, default=0.0)
        parser.add_argument("--max-inclination", type=float, default=90.0)
        parser.add_argument(
            "--distribution",
            choices=["isotropic", "uniform"],
            default="isotropic",
            help="isotropic: uniform in cos i like real galaxies; uniform: uniform in degrees",
        )
        parser.add_argument("--gold-fraction", type=float, default=0.0, help="Share marked gold for volunteers.")

    def handle(self, *args, count, seed, min_inclination, max_inclination, distribution, gold_fraction, **options):
        if count < 1:
            raise CommandError("--count must be at least 1.")
        if not 0 <= min_inclination <= max_inclination <= 90:
            raise CommandError("Inclinations must satisfy 0 <= --min-inclination <= --max-inclination <= 90.")
        if not 0 <= gold_fraction <= 1:
            raise CommandError("--gold-fraction must be between 0 and 1.")
        galaxies = synthetic_catalog_render(
            count=count,
            seed=seed,
            min_inclination=min_inclination,
            max_inclination=max_inclination,
            distribution=distribution,
            gold_fraction=gold_fraction,
        )
        stored = 0
        for _ in tqdm(galaxies, total=count, desc="rendering", unit="galaxy", file=self.stderr):
            stored += 1
        self.stdout.write(self.style.SUCCESS(f"Stored {stored} synthetic galaxies."))
