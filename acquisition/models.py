"""Images of galaxies (from SDSS, synthetic renders or uploads) and the jobs that fetch them."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from giz_site.models import BackgroundRun
from labeling.models import Galaxy, Survey, default_survey_id


def image_upload_to(instance: "GalaxyImage", filename: str) -> str:
    # Shard by PGC so no folder holds a million files.
    pgc = instance.galaxy.pgc
    return f"images/{pgc % 1000:03d}/{pgc}/{filename}"


class GalaxyImage(models.Model):
    class Band(models.TextChoices):
        COLOR = "color", "gri colour composite"
        G = "g", "g band"
        R = "r", "r band"
        I = "i", "i band"  # noqa: E741
        GRI = "gri", "g, r and i bands in one file"

    class Format(models.TextChoices):
        JPEG = "jpeg", "JPEG"
        PNG = "png", "PNG"
        FITS = "fits", "FITS"

    galaxy = models.ForeignKey(Galaxy, on_delete=models.CASCADE, related_name="images")
    band = models.CharField(max_length=8, choices=Band.choices)
    format = models.CharField(max_length=8, choices=Format.choices)
    file = models.FileField(upload_to=image_upload_to, max_length=255)
    source = models.CharField(max_length=16, choices=Galaxy.Source.choices)
    # The survey the pixels came from (usually the galaxy's; a galaxy may also have images of other surveys).
    survey = models.ForeignKey(Survey, on_delete=models.PROTECT, related_name="images", default=default_survey_id)
    pixel_scale = models.FloatField("arcsec/pixel", null=True, blank=True)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    checksum = models.CharField(max_length=64, help_text="SHA-256 of the stored bytes.")
    acquired_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["galaxy", "band", "format"], name="one_image_per_galaxy_band_format"),
            models.CheckConstraint(condition=Q(width__gt=0) & Q(height__gt=0), name="image_size_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.galaxy} {self.band} {self.format}"


class AcquisitionJob(BackgroundRun):
    """A batch of galaxies whose images are being fetched (`done` counts the fetched, `failed` the others)."""

    description = models.CharField(max_length=255, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)

    def __str__(self) -> str:
        return f"Acquisition job {self.pk} ({self.status})"


class AcquisitionJobItem(models.Model):
    """One galaxy of a job. Its outcome is set once, so a redelivered task never counts twice."""

    class Outcome(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    job = models.ForeignKey(AcquisitionJob, on_delete=models.CASCADE, related_name="items")
    galaxy = models.ForeignKey(Galaxy, on_delete=models.CASCADE, related_name="acquisition_items")
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.PENDING)
    reason = models.TextField(blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job", "galaxy"], name="one_item_per_job_galaxy")]
        indexes = [models.Index(fields=["job", "outcome"], name="acq_item_job_outcome_idx")]

    def __str__(self) -> str:
        return f"{self.job} / {self.galaxy}: {self.outcome}"
