from django.contrib import admin

from acquisition.models import AcquisitionJob, GalaxyImage
from labeling.admin import LargeTableAdmin, image_thumbnail


@admin.register(GalaxyImage)
class GalaxyImageAdmin(LargeTableAdmin):
    list_display = ["galaxy", "thumbnail", "band", "format", "source", "width", "height", "pixel_scale", "acquired_at"]
    list_filter = ["band", "format", "source"]
    search_fields = ["=galaxy__pgc", "^galaxy__name"]
    list_select_related = ["galaxy"]
    raw_id_fields = ["galaxy"]
    readonly_fields = ["checksum", "acquired_at", "preview"]

    @admin.display(description="image")
    def thumbnail(self, image: GalaxyImage) -> str:
        return image_thumbnail(image) if image.format != GalaxyImage.Format.FITS else "FITS"

    @admin.display(description="preview")
    def preview(self, image: GalaxyImage) -> str:
        return image_thumbnail(image, size=384) if image.format != GalaxyImage.Format.FITS else "FITS"


@admin.register(AcquisitionJob)
class AcquisitionJobAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "description",
        "status",
        "progress_display",
        "succeeded",
        "failed",
        "total",
        "created_at",
        "finished_at",
    ]
    list_filter = ["status"]
    readonly_fields = ["created_at", "finished_at"]
    raw_id_fields = ["created_by"]

    @admin.display(description="progress")
    def progress_display(self, job: AcquisitionJob) -> str:
        return f"{job.progress:.0%}"
