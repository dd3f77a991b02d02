from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from acquisition.models import AcquisitionJob, AcquisitionJobItem, GalaxyImage
from acquisition.services import acquisition_job_create, catalog_import
from giz_site.admin import BackgroundRunAdmin
from giz_site.admin_pagination import LargeTableAdmin, image_thumbnail
from giz_site.exceptions import ApplicationError
from labeling.admin import GalaxyAdmin
from labeling.models import Survey
from labeling.services.surveys import reference_survey


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
        return image_thumbnail(image.file, alt=str(image)) if image.format != GalaxyImage.Format.FITS else "FITS"

    @admin.display(description="preview")
    def preview(self, image: GalaxyImage) -> str:
        return (
            image_thumbnail(image.file, size=384, alt=str(image)) if image.format != GalaxyImage.Format.FITS else "FITS"
        )


@admin.register(AcquisitionJob)
class AcquisitionJobAdmin(BackgroundRunAdmin):
    list_display = [
        "id",
        "description",
        "status",
        "progress_display",
        "done",
        "failed",
        "total",
        "created_at",
        "finished_at",
    ]
    list_filter = ["status"]
    readonly_fields = ["progress_display", "done", "failed", "total", "created_at", "finished_at", "failures"]
    raw_id_fields = ["created_by"]
    change_list_template = "admin/acquisition/acquisitionjob/change_list.html"

    def get_urls(self):
        custom = [
            path(
                "import/",
                self.admin_site.admin_view(lambda request: catalog_import_view(request, self.admin_site)),
                name="acquisition_catalog_import",
            )
        ]
        return custom + super().get_urls()

    @admin.display(description="failures (first 50)")
    def failures(self, job: AcquisitionJob) -> str:
        items = job.items.filter(outcome=AcquisitionJobItem.Outcome.FAILED).select_related("galaxy")[:50]
        return format_html_join("", "<div>{}: {}</div>", ((str(i.galaxy), i.reason) for i in items)) or "-"


class CatalogImportForm(forms.Form):
    file = forms.FileField(help_text="CSV or ECSV with PGC, name, RA, Dec, D25 or logD25, PA, b/a.")
    survey = forms.ModelChoiceField(
        queryset=Survey.objects.all(),
        to_field_name="slug",
        required=False,
        empty_label=None,
        help_text="New galaxies belong to it; their images are fetched from it (default: the reference survey).",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["survey"].initial = reference_survey().slug

    acquire = forms.BooleanField(required=False, initial=True, label="Fetch their images afterwards")


def catalog_import_view(request, admin_site):
    """Upload a catalog; show what was imported and every bad row with its line number."""
    if not request.user.has_perm("labeling.add_galaxy"):
        raise PermissionDenied
    result, job, error = None, None, ""
    form = CatalogImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            survey = form.cleaned_data["survey"] or None
            result = catalog_import(data=upload.read(), filename=upload.name, survey=survey)
        except ApplicationError as exc:
            error = exc.message
        else:
            if form.cleaned_data["acquire"] and result.galaxy_ids:
                job = acquisition_job_create(
                    galaxy_ids=result.galaxy_ids, description=f"import of {upload.name}"[:255], user=request.user
                )
    context = {
        **admin_site.each_context(request),
        "title": "Import catalog",
        "form": form,
        "result": result,
        "job": job,
        "error": error,
        "opts": AcquisitionJob._meta,
    }
    # A form refused as a whole (no file, an unknown survey) is a 400; a file read but refused says so on the page.
    refused = request.method == "POST" and bool(form.errors)
    return TemplateResponse(request, "admin/acquisition/catalog_import.html", context, status=400 if refused else 200)


@admin.action(description="Acquire images (from each galaxy's survey)", permissions=["change"])
def acquire_images(modeladmin, request, queryset):
    job = acquisition_job_create(
        galaxy_ids=queryset.values_list("pk", flat=True),
        description=f"admin action on {queryset.count()} galaxies",
        user=request.user,
    )
    url = reverse("admin:acquisition_acquisitionjob_change", args=[job.pk])
    modeladmin.message_user(
        request, format_html('Acquisition job <a href="{}">{}</a> queued for {} galaxies.', url, job.pk, job.total)
    )


# The galaxy admin belongs to labeling; acquisition adds its action to it rather than redefining it.
GalaxyAdmin.actions = [*(GalaxyAdmin.actions or []), acquire_images]
