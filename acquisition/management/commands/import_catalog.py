from pathlib import Path

from django.core.management import BaseCommand, CommandError
from tqdm import tqdm

from acquisition.services import acquisition_job_create, catalog_import
from giz_site.exceptions import ApplicationError
from labeling.services.surveys import REFERENCE_SLUG, get_survey


class Command(BaseCommand):
    help = (
        "Import a galaxy catalog (CSV or ECSV: PGC, name, RA, Dec, D25 or logD25, PA, b/a). Bad rows are "
        "reported with their line numbers and skipped; re-importing updates galaxies by PGC."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("--acquire", action="store_true", help="Queue a job fetching their images.")
        parser.add_argument(
            "--survey",
            default=REFERENCE_SLUG,
            help="Slug of the survey new galaxies belong to, whose images they get (default: %(default)s).",
        )

    def handle(self, *args, file: Path, acquire: bool, survey: str, **options):
        try:
            chosen = get_survey(survey, status_code=400)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise CommandError(f"Cannot read {file}: {exc.strerror}") from exc
        bar = tqdm(desc="importing", unit="row", file=self.stderr)

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done)

        try:
            result = catalog_import(data=data, filename=file.name, survey=chosen, progress=progress)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        finally:
            bar.close()
        for error in result.errors:
            self.stderr.write(f"{file.name}: {error}")
        summary = (
            f"Imported {result.imported} galaxies ({result.created} new, {result.updated} updated, "
            f"{result.unchanged} unchanged); {len(result.errors)} bad rows skipped. Survey: {result.survey}."
        )
        if result.other_survey:
            summary += f" {result.other_survey} were already catalogued under another survey and stay there."
        self.stdout.write(self.style.SUCCESS(summary) if not result.errors else self.style.WARNING(summary))
        if acquire and result.galaxy_ids:
            job = acquisition_job_create(galaxy_ids=result.galaxy_ids, description=f"import of {file.name}")
            self.stdout.write(f"Acquisition job {job.pk} queued for {job.total} galaxies.")
