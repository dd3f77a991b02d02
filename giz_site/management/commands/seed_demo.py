"""Fill a fresh site with demo data: accounts, standard galaxies, a synthetic catalog and trained models.

Idempotent: each step is skipped when its data is already there, so the start script can run it every time.
"""

import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import BaseCommand, call_command

from acquisition.services import acquisition_job_create, catalog_import
from inference.models import ModelVersion
from labeling.models import Galaxy, StandardGalaxy
from labeling.services.surveys import known_survey_ensure

DEMO_CATALOG = Path(__file__).resolve().parents[2] / "demo" / "catalog.csv"
# Southern galaxies SDSS never covered, from the Legacy Surveys through hips2fits (the stand-in's in the demo).
DEMO_SOUTH_CATALOG = DEMO_CATALOG.with_name("catalog_south.csv")

DEMO_ACCOUNTS = [
    ("staff", {"is_staff": True, "is_superuser": True}),
    ("volunteer", {}),
]


class Command(BaseCommand):
    help = "Create demo accounts, standard galaxies, a synthetic catalog and a pretrained ensemble."

    def add_arguments(self, parser):
        parser.add_argument("--galaxies", type=int, default=300, help="Synthetic target galaxies to render.")
        parser.add_argument("--standards-per-degree", type=int, default=3)
        parser.add_argument("--seed", type=int, default=2026)
        parser.add_argument("--skip-models", action="store_true", help="Do not pretrain the ensemble.")

    def handle(self, *args, galaxies: int, standards_per_degree: int, seed: int, skip_models: bool, **options):
        logins_file = settings.DATA_DIR / "demo-logins.txt"
        self._accounts(logins_file)

        if not StandardGalaxy.objects.exists():
            self.stdout.write("Rendering standard galaxies ...")
            call_command(
                "create_standards", seed=seed, per_degree=standards_per_degree, stdout=self.stdout, stderr=self.stderr
            )
        targets = Galaxy.objects.filter(standard__isnull=True, source=Galaxy.Source.SYNTHETIC).count()
        if targets < galaxies:
            self.stdout.write(f"Rendering {galaxies - targets} synthetic galaxies for volunteers ...")
            call_command(
                "render_synthetic",
                count=galaxies - targets,
                seed=seed + targets + 1,
                gold_fraction=0.1,
                stdout=self.stdout,
                stderr=self.stderr,
            )
        if not Galaxy.objects.filter(source=Galaxy.Source.SDSS, survey__is_reference=True).exists():
            self._sdss_catalog()
        if not Galaxy.objects.filter(survey__slug="legacy").exists():
            self._southern_catalog()
        if not skip_models and not ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).exists():
            self.stdout.write("Pretraining the ensemble on synthetic galaxies ...")
            call_command("pretrain_ensemble", stdout=self.stdout, stderr=self.stderr)
        self.stdout.write(self.style.SUCCESS("Demo data ready."))
        self.stdout.write(logins_file.read_text())

    def _sdss_catalog(self) -> None:
        """Import a small SDSS-like catalog; the worker fetches its images from the SDSS stand-in."""
        result = catalog_import(data=DEMO_CATALOG.read_bytes(), filename=DEMO_CATALOG.name)
        job = acquisition_job_create(galaxy_ids=result.galaxy_ids, description="Demo catalog from the SDSS stand-in")
        self.stdout.write(f"Imported the demo catalog; acquisition job {job.pk} queued for {job.total} galaxies.")

    def _southern_catalog(self) -> None:
        """Import a few southern galaxies into a second survey (Legacy Surveys, a HiPS survey)."""
        legacy = known_survey_ensure("legacy")
        result = catalog_import(data=DEMO_SOUTH_CATALOG.read_bytes(), filename=DEMO_SOUTH_CATALOG.name, survey=legacy)
        job = acquisition_job_create(galaxy_ids=result.galaxy_ids, description=f"Demo southern catalog from {legacy}")
        self.stdout.write(f"Imported the southern demo catalog ({legacy}); acquisition job {job.pk} queued.")

    def _accounts(self, logins_file) -> None:
        """Create the demo accounts with fresh random passwords, kept in the data folder for the console."""
        User = get_user_model()
        usernames = [username for username, _ in DEMO_ACCOUNTS]
        if logins_file.exists() and User.objects.filter(username__in=usernames).count() == len(usernames):
            return
        lines = []
        for username, flags in DEMO_ACCOUNTS:
            password = secrets.token_urlsafe(9)
            user = User.objects.filter(username=username).first() or User(username=username, **flags)
            user.email = f"{username}@example.org"
            user.set_password(password)
            user.save()
            lines.append(f"  {username:<10} password: {password}" + ("   (staff: admin access)" if flags else ""))
        logins_file.write_text("Demo logins:\n" + "\n".join(lines) + "\n")
        logins_file.chmod(0o600)
