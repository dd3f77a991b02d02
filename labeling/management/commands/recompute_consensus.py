"""Recompute volunteer calibrations and every consensus label now (the nightly Celery task, in the foreground)."""

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from labeling import services


class Command(BaseCommand):
    help = "Recompute volunteer calibrations and all consensus labels in batches, with a progress bar."

    def add_arguments(self, parser):
        parser.add_argument("--batch", type=int, default=20000, help="galaxy ids per batch (default 20000)")

    def handle(self, *args, batch: int, **options):
        total = services.consensus_recompute_total()
        with tqdm(total=total, unit="id", desc="consensus", disable=options["verbosity"] == 0) as bar:
            run = services.consensus_recompute_run(batch_galaxies=batch, progress=bar.update)
        if run is None:
            raise CommandError("Another consensus recomputation is running; see the admin's consensus runs.")
        self.stdout.write(self.style.SUCCESS(f"Done: {run.stats}"))
