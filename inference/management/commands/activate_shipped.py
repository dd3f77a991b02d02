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
        "Check the shipped members and rejection classifier against their manifest (sha256), register them as "
        "model versions and make them the active ensemble. A file that does not match is refused and nothing "
        "changes."
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
                versions.append(
                    _version(
                        member,
                        kind=ModelVersion.Kind.REGRESSION,
                        notes=f"Shipped ensemble ({manifest['created']}), trained on {', '.join(member['sources'])}.",
                        metrics={
                            "shipped": manifest["metrics"],
                            "sigma_scale": manifest["sigma_scale"],
                            **({"calibration": member["calibration"]} if member.get("calibration") else {}),
                        },
                    )
                )
            rejection = manifest.get("rejection")
            replaced = [ModelVersion.Kind.REGRESSION]
            if rejection is not None:
                versions.append(
                    _version(
                        rejection,
                        kind=ModelVersion.Kind.REJECTION,
                        notes="Shipped rejection classifier: clean spirals of both sources against rendered junk.",
                        metrics={"shipped": rejection["metrics"], "threshold": rejection["threshold"]},
                    )
                )
                replaced.append(ModelVersion.Kind.REJECTION)
            # Without a shipped classifier an active one stays; with one, it takes the place of the old.
            ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE, kind__in=replaced).exclude(
                pk__in=[v.pk for v in versions]
            ).update(status=ModelVersion.Status.RETIRED)
            ModelVersion.objects.filter(pk__in=[v.pk for v in versions]).exclude(
                status=ModelVersion.Status.ACTIVE
            ).update(status=ModelVersion.Status.ACTIVE, activated_at=timezone.now())
            transaction.on_commit(ensemble_holder.invalidate)
        self.stdout.write(self.style.SUCCESS(f"Active: {', '.join(v.name for v in versions)}"))


def _version(entry: dict, *, kind: str, notes: str, metrics: dict) -> ModelVersion:
    """The model version of a verified shipped file, registered (and its file stored) once."""
    # The checksum in the name: a new shipped ensemble never collides with an older one.
    name = f"shipped-{entry['name']}-{entry['sha256'][:8]}"
    version = ModelVersion.objects.filter(name=name).first()
    if version is not None:
        if version.metrics != metrics:  # the same file, rescored: its calibration follows the manifest
            version.metrics = metrics
            version.save(update_fields=["metrics"])
        return version
    data = (shipped.SHIPPED_DIR / entry["file"]).read_bytes()  # verified by the caller
    stored = default_storage.save(f"models/shipped/{entry['file']}", ContentFile(data))
    return ModelVersion.objects.create(
        name=name,
        kind=kind,
        architecture=entry["architecture"],
        file=stored,
        format=ModelVersion.Format.KERAS,
        input_size=entry["input_size"],
        input_mode=entry["input_mode"],
        output=ModelVersion.Output.DEGREES,
        notes=notes,
        metrics=metrics,
    )
