"""Refit the volunteer model and rewrite every consensus label now (the nightly Celery task, in the foreground)."""

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from labeling import services


class Command(BaseCommand):
    help = "Refit the volunteer model to all votes and rewrite the labels in batches, with a progress bar."

    def add_arguments(self, parser):
        parser.add_argument(
            "--batch", type=int, default=None, help="changed galaxies written per transaction (default 20000)"
        )

    def handle(self, *args, batch: int, **options):
        total = services.consensus_recompute_total()
        with tqdm(total=total, unit="galaxy", desc="consensus", disable=options["verbosity"] == 0) as bar:
            run = services.consensus_recompute_run(batch_galaxies=batch, progress=bar.update)
        if run is None:
            raise CommandError("Another consensus recomputation is running; see the admin's consensus runs.")
        self.stdout.write(self.style.SUCCESS(f"Done: {run.stats}"))
