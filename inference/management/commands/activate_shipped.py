"""Activate the ensemble committed in inference/shipped/ (seconds, instead of training for minutes)."""

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from inference import ensemble as ensemble_holder
from inference import shipped
from inference.models import ModelVersion


class Command(BaseCommand):
    help = (
        "Check the shipped members against their manifest (sha256), register them as model versions and make "
        "them the active regression ensemble. A file that does not match is refused and nothing changes."
    )

    def add_arguments(self, parser):
        parser.add_argument("--if-empty", action="store_true", help="do nothing when a regression model is active")

    def handle(self, *args, **options):
        active = ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE, kind=ModelVersion.Kind.REGRESSION)
        if options["if_empty"] and active.exists():
            self.stdout.write("A regression ensemble is active already; nothing to do.")
            return
        try:
            manifest = shipped.verify()
        except shipped.ManifestError as exc:
            raise CommandError(f"Refused the shipped ensemble: {exc} The active ensemble is unchanged.") from exc
        versions = []
        with transaction.atomic():
            for member in manifest["members"]:
                # The checksum in the name: a new shipped ensemble never collides with an older one.
                name = f"shipped-{member['name']}-{member['sha256'][:8]}"
                version = ModelVersion.objects.filter(name=name).first()
                if version is None:
                    data = (shipped.SHIPPED_DIR / member["file"]).read_bytes()  # verified above
                    stored = default_storage.save(f"models/shipped/{member['file']}", ContentFile(data))
                    version = ModelVersion.objects.create(
                        name=name,
                        kind=ModelVersion.Kind.REGRESSION,
                        architecture=member["architecture"],
                        file=stored,
                        format=ModelVersion.Format.KERAS,
                        input_size=member["input_size"],
                        input_mode=member["input_mode"],
                        output=ModelVersion.Output.DEGREES,
                        notes=f"Shipped ensemble ({manifest['created']}), trained on {', '.join(member['sources'])}.",
                        metrics={"shipped": manifest["metrics"], "sigma_scale": manifest["sigma_scale"]},
                    )
                versions.append(version)
            # Only regression members are replaced: an active rejection classifier stays.
            active.exclude(pk__in=[v.pk for v in versions]).update(status=ModelVersion.Status.RETIRED)
            ModelVersion.objects.filter(pk__in=[v.pk for v in versions]).exclude(
                status=ModelVersion.Status.ACTIVE
            ).update(status=ModelVersion.Status.ACTIVE, activated_at=timezone.now())
            transaction.on_commit(ensemble_holder.invalidate)
        self.stdout.write(self.style.SUCCESS(f"Active: {', '.join(v.name for v in versions)}"))
