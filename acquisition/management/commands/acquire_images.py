import time

from django.core.management import BaseCommand, CommandError
from tqdm import tqdm

from acquisition.models import AcquisitionJob
from acquisition.selectors import galaxies_missing_images
from acquisition.services import acquisition_job_create
from labeling.models import Galaxy


class Command(BaseCommand):
    help = "Queue an acquisition job (SDSS images) and follow its progress until it is done."

    def add_arguments(self, parser):
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--all-missing", action="store_true", help="Every SDSS galaxy without images yet.")
        which.add_argument("--pgc", type=int, nargs="+", help="These PGC numbers.")
        parser.add_argument("--retry-failed", action="store_true", help="With --all-missing: failed ones too.")
        parser.add_argument("--no-wait", action="store_true", help="Queue the job and return.")
        parser.add_argument("--timeout", type=float, default=0, help="Stop following after this many seconds.")

    def handle(self, *args, all_missing, pgc, retry_failed, no_wait, timeout, **options):
        if all_missing:
            galaxies = galaxies_missing_images(failed=retry_failed)
            description = "all galaxies without images"
        else:
            galaxies = Galaxy.objects.filter(pgc__in=pgc)
            missing = set(pgc) - set(galaxies.values_list("pgc", flat=True))
            if missing:
                raise CommandError(f"Unknown PGC numbers: {', '.join(map(str, sorted(missing)))}")
            description = f"PGC {', '.join(map(str, pgc[:5]))}{' ...' if len(pgc) > 5 else ''}"
        job = acquisition_job_create(galaxy_ids=galaxies.values_list("pk", flat=True), description=description)
        self.stdout.write(f"Acquisition job {job.pk}: {job.total} galaxies.")
        if no_wait:
            return
        deadline = time.monotonic() + timeout if timeout > 0 else None
        with tqdm(total=job.total, desc=f"job {job.pk}", unit="galaxy", file=self.stderr) as bar:
            while True:
                job.refresh_from_db(fields=["status", "done", "failed"])
                bar.update(job.done + job.failed - bar.n)
                bar.set_postfix(stored=job.done, failed=job.failed)
                if job.status in (AcquisitionJob.Status.SUCCEEDED, AcquisitionJob.Status.FAILED):
                    break
                if deadline is not None and time.monotonic() > deadline:
                    raise CommandError(f"Job {job.pk} still running after {timeout:g}s; it goes on in the workers.")
                time.sleep(0.5)
        self.stdout.write(self.style.SUCCESS(f"Job {job.pk} done: {job.done} stored, {job.failed} failed."))
        for item in job.items.filter(outcome="failed").select_related("galaxy")[:20]:
            self.stderr.write(f"  {item.galaxy}: {item.reason}")
