"""Test the active ensemble on a survey's consensus labels, or fine-tune it to the survey, with a progress bar."""

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from giz_site.exceptions import ApplicationError
from inference import services
from inference.management.commands._training import follow_training
from inference.models import SurveyEvaluation
from labeling.services import get_survey


class Command(BaseCommand):
    help = (
        "survey evaluate SLUG: the active ensemble's RMS, bias and outliers on the survey's consensus labels (marks "
        "it as needing adaptation when worse than the reference survey). survey adapt SLUG: fine-tune the active "
        "members to the survey; promoted only if better there and no worse elsewhere."
    )

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["evaluate", "adapt"])
        parser.add_argument("slug", help="the survey's slug (see /api/surveys/)")
        parser.add_argument(
            "--profile", choices=["quick", "standard", "tiny"], help="adapt: default GIZ_TRAINING_PROFILE"
        )
        parser.add_argument("--minutes-per-member", type=float, help="adapt: fine-tuning time per member")
        parser.add_argument(
            "--learning-rate", type=float, help="adapt: peak fine-tuning learning rate (GIZ_SURVEY_ADAPT_LEARNING_RATE)"
        )
        parser.add_argument("--queue", action="store_true", help="send it to a Celery worker instead")

    def handle(self, *args, **options):
        try:
            survey = get_survey(options["slug"])
            if options["action"] == "evaluate":
                self._evaluate(survey, queue=options["queue"])
            else:
                config = {"profile": options["profile"]} if options["profile"] else {}
                if options["minutes_per_member"] is not None:
                    config["minutes_per_member"] = options["minutes_per_member"]
                if options["learning_rate"] is not None:
                    config["learning_rate"] = options["learning_rate"]
                run = services.survey_adaptation_create(survey=survey, config=config, queue=options["queue"])
                if options["queue"]:
                    self.stdout.write(
                        f"Queued adaptation run {run.pk}: /api/surveys/{survey.slug}/adaptations/{run.pk}/."
                    )
                    return
                run = follow_training(self, run)
                promotion = (run.metrics or {}).get("promotion") or {}
                for name, numbers in (promotion.get("numbers") or {}).items():
                    self.stdout.write(f"  {name}: {numbers['before']} -> {numbers['after']} deg RMS")
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc

    def _evaluate(self, survey, *, queue: bool) -> None:
        evaluation = services.survey_evaluation_request(survey=survey, queue=queue)
        if queue:
            self.stdout.write(f"Queued evaluation {evaluation.pk} of {survey.name}.")
            return
        bar = tqdm(desc=f"evaluation of {survey.slug}", unit="label", file=self.stderr)

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(max(0, done - bar.n))

        evaluation = services.survey_evaluation_run(evaluation_id=evaluation.pk, progress_callback=progress)
        bar.close()
        if evaluation is None or evaluation.status != SurveyEvaluation.Status.SUCCEEDED:
            raise CommandError(f"Evaluation failed: {evaluation.error if evaluation else 'taken by another process'}")
        self.stdout.write(self.style.SUCCESS(f"{survey.name}: {evaluation.message} in {evaluation.seconds:.1f} s"))
        if evaluation.n_labels:
            self.stdout.write(
                f"  bias {evaluation.bias:+.2f} deg, {100 * evaluation.outlier_rate:.1f}% more than 10 deg off"
                + (
                    f", rejection agreement {100 * evaluation.rejection_agreement:.1f}%"
                    if evaluation.rejection_agreement is not None
                    else ""
                )
            )
            for row in evaluation.bins:
                self.stdout.write(
                    f"  {row['lo']:.0f}-{row['hi']:.0f} deg: n={row['n']} RMS {row['rms']:.2f} bias {row['bias']:+.2f}"
                )
        self.stdout.write(f"  {evaluation.verdict}")
