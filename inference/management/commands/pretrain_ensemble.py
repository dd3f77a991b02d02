"""Pretrain the ensemble on synthetic galaxies, so a fresh site has working models within minutes."""

from django.core.management import call_command
from django.core.management.base import BaseCommand
from tqdm import tqdm

from inference.management.commands._training import run_training
from inference.models import ModelVersion, TrainingRun


class Command(BaseCommand):
    help = (
        "Train 3 regression members and a rejection classifier on synthetic galaxies (the 'quick' profile: "
        "a few minutes on two cores) and activate them if no better ensemble is active. "
        "--profile shipped reproduces the shipped ensemble instead (inference/shipped/: every member, the "
        "sigma calibration and manifest, the rejection classifier; hours, resumable) and activates it."
    )

    def add_arguments(self, parser):
        parser.add_argument("--count", type=int, help="synthetic training galaxies (quick profile: 1000)")
        parser.add_argument("--epochs", type=int, help="maximum epochs per member (quick profile: 12)")
        parser.add_argument(
            "--minutes-per-member", type=float, help="time budget per member (quick: 2, shipped: 60 of wall time)"
        )
        parser.add_argument("--profile", default="quick", choices=["quick", "standard", "tiny", "shipped"])
        parser.add_argument("--if-empty", action="store_true", help="do nothing when a model is already active")
        parser.add_argument("--queue", action="store_true", help="send it to a Celery worker instead")
        shipped = parser.add_argument_group("--profile shipped")
        shipped.add_argument("--rejection-minutes", type=float, default=30.0, help="the rejection classifier's budget")
        shipped.add_argument("--no-rejection", action="store_true", help="keep the shipped rejection classifier")
        shipped.add_argument("--restart", action="store_true", help="forget an interrupted reproduction's progress")

    def handle(self, *args, **options):
        active = ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE, kind=ModelVersion.Kind.REGRESSION)
        if options["if_empty"] and active.exists():
            self.stdout.write("An ensemble is active already; nothing to do.")
            return
        if options["profile"] == "shipped":
            self._reproduce_shipped(options)
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

    def _reproduce_shipped(self, options) -> None:
        # Imported here: TensorFlow loads only when this profile trains.
        from inference import shipped

        steps = shipped.reproduce_steps(with_rejection=not options["no_rejection"])
        bar = tqdm(total=len(steps), desc="shipped ensemble", unit="step", file=self.stderr)

        def progress(done: int, total: int, message: str) -> None:
            bar.update(done - bar.n)
            bar.set_postfix_str(message[:60])

        minutes = options["minutes_per_member"] if options["minutes_per_member"] is not None else 60.0
        manifest = shipped.reproduce(
            minutes_per_member=minutes,
            rejection_minutes=options["rejection_minutes"],
            with_rejection=not options["no_rejection"],
            restart=options["restart"],
            progress=progress,
        )
        bar.close()
        figures = ", ".join(f"{source} {m['rms']:.2f} deg" for source, m in manifest["metrics"].items())
        self.stdout.write(f"Shipped ensemble reproduced in {shipped.SHIPPED_DIR}: test RMS {figures}.")
        call_command("activate_shipped", stdout=self.stdout, stderr=self.stderr)
