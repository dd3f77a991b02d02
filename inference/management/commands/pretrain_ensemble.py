"""Pretrain the ensemble on synthetic galaxies, so a fresh site has working models within minutes."""

from django.core.management.base import BaseCommand

from inference.management.commands._training import run_training
from inference.models import ModelVersion, TrainingRun


class Command(BaseCommand):
    help = (
        "Train 3 regression members and a rejection classifier on synthetic galaxies (the 'quick' profile: "
        "a few minutes on two cores) and activate them if no better ensemble is active."
    )

    def add_arguments(self, parser):
        parser.add_argument("--count", type=int, help="synthetic training galaxies (quick profile: 1000)")
        parser.add_argument("--epochs", type=int, help="maximum epochs per member (quick profile: 12)")
        parser.add_argument("--minutes-per-member", type=float, help="time budget per member (quick: 2)")
        parser.add_argument("--profile", default="quick", choices=["quick", "standard", "tiny"])
        parser.add_argument("--if-empty", action="store_true", help="do nothing when a model is already active")
        parser.add_argument("--queue", action="store_true", help="send it to a Celery worker instead")

    def handle(self, *args, **options):
        active = ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE, kind=ModelVersion.Kind.REGRESSION)
        if options["if_empty"] and active.exists():
            self.stdout.write("An ensemble is active already; nothing to do.")
            return
        config = {"profile": options["profile"]}
        for option, key in (
            ("count", "n_synthetic"),
            ("epochs", "epochs"),
            ("minutes_per_member", "minutes_per_member"),
        ):
            if options[option] is not None:
                config[key] = options[option]
        run_training(self, trigger=TrainingRun.Trigger.PRETRAIN, config=config, queue=options["queue"])
