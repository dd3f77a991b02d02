from django.core.management import BaseCommand, CommandError
from tqdm import tqdm

from acquisition.synthetic_source import standard_set_create


class Command(BaseCommand):
    help = "Create the standard-galaxy set for the labeling site: several per degree from 45 to 90, plus face-on."

    def add_arguments(self, parser):
        parser.add_argument("--per-degree", type=int, default=3)
        parser.add_argument("--face-on", type=int, default=12, help="Face-on examples below 45 deg.")
        parser.add_argument("--seed", type=int, default=7)

    def handle(self, *args, per_degree, face_on, seed, **options):
        if per_degree < 1 or face_on < 0:
            raise CommandError("--per-degree must be at least 1 and --face-on at least 0.")
        total = per_degree * 46 + face_on
        standards = standard_set_create(seed=seed, per_degree=per_degree, face_on_examples=face_on)
        created = sum(1 for _ in tqdm(standards, total=total, desc="standards", unit="galaxy", file=self.stderr))
        self.stdout.write(self.style.SUCCESS(f"Created {created} standard galaxies."))
