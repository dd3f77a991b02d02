"""Catalogue exports in the admin: start one with filters (or from selected galaxies), watch it, download it."""

from django import forms
from django.contrib import admin, messages
from django.utils.html import format_html

from giz_site.admin import BackgroundRunAdmin
from inference.catalog_apis import CatalogFilterSerializer
from inference.catalog_services import catalog_export_create, catalog_export_queue
from labeling.models import CatalogExport, ConsensusLabel, Galaxy

# A selection is stored as a PGC list in the export's filters; larger exports take filters instead.
MAX_SELECTED = 100_000

_FILTER_FIELDS = [
    "status",
    "source",
    "state",
    "inclination_min",
    "inclination_max",
    "ra_min",
    "ra_max",
    "dec_min",
    "dec_max",
    "cone_ra",
    "cone_dec",
    "cone_radius",
]


def _blank(choices) -> list:
    return [("", "any"), *choices]


class CatalogExportForm(forms.ModelForm):
    """The format plus the API's filters; validated by the same serializer as GET /api/catalog/."""

    status = forms.ChoiceField(choices=_blank(ConsensusLabel.Status.choices), required=False)
    source = forms.ChoiceField(choices=_blank(Galaxy.Source.choices), required=False)
    state = forms.ChoiceField(choices=_blank(Galaxy.State.choices), required=False)
    inclination_min = forms.FloatField(required=False, help_text="deg")
    inclination_max = forms.FloatField(required=False, help_text="deg")
    ra_min = forms.FloatField(required=False, help_text="deg; above ra_max wraps across RA 0")
    ra_max = forms.FloatField(required=False, help_text="deg")
    dec_min = forms.FloatField(required=False, help_text="deg")
    dec_max = forms.FloatField(required=False, help_text="deg")
    cone_ra = forms.FloatField(required=False, help_text="deg (ICRS)")
    cone_dec = forms.FloatField(required=False, help_text="deg (ICRS)")
    cone_radius = forms.FloatField(required=False, help_text="deg")

    class Meta:
        model = CatalogExport
        fields = ["format"]

    def clean(self):
        cleaned = super().clean()
        raw = {name: cleaned[name] for name in _FILTER_FIELDS if cleaned.get(name) not in (None, "")}
        serializer = CatalogFilterSerializer(data=raw)
        if not serializer.is_valid():
            for field, errors in serializer.errors.items():
                self.add_error(field if field in self.fields else None, [str(e) for e in errors])
            return cleaned
        self.instance.filters = {key: value for key, value in serializer.validated_data.items() if value is not None}
        return cleaned


@admin.register(CatalogExport)
class CatalogExportAdmin(BackgroundRunAdmin):
    """Background catalogue exports: add one to start it; the list shows progress and the file once done."""

    form = CatalogExportForm
    list_display = ["id", "format", "status", "progress_display", "total", "download", "created_by", "created_at"]
    list_filter = ["status", "format"]
    list_select_related = ["created_by"]
    readonly_fields = [
        "filters",
        "status",
        "total",
        "done",
        "download",
        "error",
        "created_by",
        "created_at",
        "started_at",
        "finished_at",
    ]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["format", *_FILTER_FIELDS]
        return ["format", *self.readonly_fields]

    def get_readonly_fields(self, request, obj=None):
        return ["format", *self.readonly_fields] if obj else []

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)

    def save_model(self, request, obj, form, change):
        obj.created_by = request.user
        obj.save()
        catalog_export_queue(export=obj)

    @admin.display(description="file")
    def download(self, export: CatalogExport) -> str:
        if export.status != CatalogExport.Status.SUCCEEDED or not export.file:
            return "-"
        return format_html('<a href="{}" download>{}</a>', export.file.url, export.file.name.rsplit("/", 1)[-1])


def _export_selected(fmt: str):
    @admin.action(description=f"Export the selected galaxies as a catalogue ({fmt.upper()}, in the background)")
    def action(modeladmin, request, queryset):
        pgcs = list(queryset.order_by().values_list("pgc", flat=True)[: MAX_SELECTED + 1])
        if len(pgcs) > MAX_SELECTED:
            modeladmin.message_user(
                request,
                f"More than {MAX_SELECTED:,} galaxies selected: add a catalogue export with filters instead.",
                messages.ERROR,
            )
            return
        export = catalog_export_create(fmt=fmt, filters={"pgcs": sorted(pgcs)}, user=request.user)
        modeladmin.message_user(
            request, f"Catalogue export {export.id} of {len(pgcs)} galaxies started: see Catalogue exports."
        )

    action.__name__ = f"export_catalogue_{fmt}"
    return action


EXPORT_ACTIONS = [_export_selected(fmt) for fmt in ("ecsv", "votable", "fits", "csv")]
