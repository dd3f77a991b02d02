"""Train a new ensemble on the consensus labels plus synthetic galaxies."""

from django.core.management.base import BaseCommand

from inference.management.commands._training import run_training
from inference.models import TrainingRun


class Command(BaseCommand):
    help = (
        "Train on consensus labels + synthetic galaxies, starting from the active members' weights where they fit; "
        "the new ensemble is activated only if no worse."
    )

    def add_arguments(self, parser):
        parser.add_argument("--profile", choices=["quick", "standard", "tiny"], help="default: GIZ_TRAINING_PROFILE")
        parser.add_argument("--synthetic", type=int, help="synthetic training galaxies")
        parser.add_argument("--epochs", type=int)
        parser.add_argument("--minutes-per-member", type=float)
        parser.add_argument(
            "--from-scratch",
            action="store_true",
            help="fresh weights for every member (default: fine-tune the active members of the same architecture)",
        )
        parser.add_argument("--queue", action="store_true", help="send it to a Celery worker instead")

    def handle(self, *args, **options):
        config = {}
        for option, key in (
            ("profile", "profile"),
            ("synthetic", "n_synthetic"),
            ("epochs", "epochs"),
            ("minutes_per_member", "minutes_per_member"),
        ):
            if options[option] is not None:
                config[key] = options[option]
        if options["from_scratch"]:
            config["from_scratch"] = True
        run_training(self, trigger=TrainingRun.Trigger.MANUAL, config=config, queue=options["queue"])
