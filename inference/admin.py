import re

from django import forms
from django.contrib import admin, messages
from django.core.files.storage import default_storage
from django.db.models import Prefetch
from django.http import HttpResponseBadRequest, HttpResponseRedirect
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from acquisition.models import GalaxyImage
from giz_site.admin import BackgroundRunAdmin
from giz_site.admin_pagination import LargeTableAdmin
from giz_site.exceptions import ApplicationError
from inference import services
from inference.catalog_admin import EXPORT_ACTIONS  # also registers the catalogue exports' admin
from inference.models import (
    DiscrepancyAlarm,
    EnsemblePrediction,
    InferenceJob,
    ModelVersion,
    Prediction,
    SurveyEvaluation,
    TrainingRun,
)
from inference.selectors import model_versions_compare
from labeling.admin import GalaxyAdmin, SurveyAdmin


def plots_html(plots: dict) -> str:
    if not plots:
        return "-"
    return format_html_join(
        "",
        '<figure style="display:inline-block;margin:0 1em 1em 0"><img src="{}" style="max-width:520px" alt="{}">'
        "<figcaption>{}</figcaption></figure>",
        ((default_storage.url(p), name, name.replace("_", " ")) for name, p in plots.items()),
    )


def _fmt(value, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


class ModelUploadForm(forms.Form):
    file = forms.FileField(help_text="A .keras file, or a legacy .h5 (the seed's models).")
    name = forms.CharField(max_length=100)
    kind = forms.ChoiceField(choices=ModelVersion.Kind.choices)
    output = forms.ChoiceField(choices=ModelVersion.Output.choices, initial=ModelVersion.Output.DEGREES)
    notes = forms.CharField(widget=forms.Textarea, required=False)


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "kind",
        "architecture",
        "status",
        "test_rms",
        "format",
        "n_labels",
        "n_synthetic",
        "created_at",
        "activated_at",
    ]
    list_filter = ["kind", "status", "format"]
    search_fields = ["name", "architecture"]
    raw_id_fields = ["training_run", "uploaded_by"]
    readonly_fields = [
        "metrics_table",
        "plots_view",
        "status",
        "initialized_from",
        "activated_at",
        "created_at",
    ]
    actions = ["activate", "retire", "compare"]

    @admin.display(description="test RMS (deg)")
    def test_rms(self, version: ModelVersion) -> str:
        return _fmt(version.metrics.get("rms"))

    @admin.display(description="metrics on the fixed test set")
    def metrics_table(self, version: ModelVersion) -> str:
        m = version.metrics or {}
        rows = [(k, _fmt(m.get(k), 3) if isinstance(m.get(k), float) else m.get(k)) for k in m if k not in ("bins",)]
        rows = [(k, v) for k, v in rows if not isinstance(v, dict)]
        bins = m.get("bins", {})
        html = format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows)
        html += format_html_join(
            "",
            "<tr><th>RMS / MAE {}</th><td>{} / {} (n={})</td></tr>",
            ((k, _fmt(v["rms"]), _fmt(v["mae"]), v["n"]) for k, v in bins.items()),
        )
        for key in ("ensemble", "baseline"):
            if isinstance(m.get(key), dict) and "rms" in m[key]:
                html += format_html(
                    "<tr><th>{}</th><td>RMS {} MAE {} &gt;5: {}% &gt;10: {}%</td></tr>",
                    "ensemble (median)" if key == "ensemble" else "axial-ratio baseline, same images",
                    _fmt(m[key]["rms"]),
                    _fmt(m[key]["mae"]),
                    _fmt(100 * m[key]["frac_gt5"], 1),
                    _fmt(100 * m[key]["frac_gt10"], 1),
                )
        return format_html("<table>{}</table>", html)

    @admin.display(description="plots")
    def plots_view(self, version: ModelVersion) -> str:
        return plots_html(version.plots)

    def get_urls(self):
        return [
            path("upload/", self.admin_site.admin_view(self.upload_view), name="inference_modelversion_upload"),
            path("compare/", self.admin_site.admin_view(self.compare_view), name="inference_modelversion_compare"),
            *super().get_urls(),
        ]

    def add_view(self, request, form_url="", extra_context=None):
        return redirect("admin:inference_modelversion_upload")

    def upload_view(self, request):
        if not self.has_add_permission(request):
            return redirect("admin:index")
        form = ModelUploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                version = services.model_version_upload(user=request.user, **form.cleaned_data)
            except ApplicationError as exc:
                form.add_error("file", exc.message)
            else:
                self.message_user(request, f"Uploaded {version.name} as a candidate.", messages.SUCCESS)
                return redirect("admin:inference_modelversion_change", version.pk)
        context = {
            **self.admin_site.each_context(request),
            "form": form,
            "title": "Upload a model version",
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/inference/modelversion/upload.html", context)

    def compare_view(self, request):
        raw = request.GET.get("ids", "")
        # ASCII digits of at most 18: isdigit() accepts "²", which int() refuses, and ids are bigints.
        if raw and not re.fullmatch(r"[0-9]{1,18}(,[0-9]{1,18})*", raw):
            return HttpResponseBadRequest("ids must be model version ids separated by commas, e.g. ?ids=3,7.")
        ids = [int(i) for i in raw.split(",") if i]

        versions = model_versions_compare(ids=ids)
        keys = ["rms", "mae", "bias", "frac_gt5", "frac_gt10", "n", "accuracy", "log_loss", "parameters"]
        bin_keys = sorted({b for v in versions for b in v.metrics.get("bins", {})})
        rows = [
            (
                k,
                [
                    _fmt(v.metrics.get(k), 3) if isinstance(v.metrics.get(k), float) else v.metrics.get(k, "-")
                    for v in versions
                ],
            )
            for k in keys
        ]
        rows += [
            (f"RMS {b}", [_fmt(v.metrics.get("bins", {}).get(b, {}).get("rms")) for v in versions]) for b in bin_keys
        ]
        context = {
            **self.admin_site.each_context(request),
            "title": "Compare model versions",
            "versions": versions,
            "rows": rows,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/inference/modelversion/compare.html", context)

    def _apply(self, request, queryset, service, done: str) -> None:
        """Run a registry service on each selected version, reporting each outcome to the staff member."""
        for version in queryset:
            try:
                service(model_version=version, user=request.user)
            except ApplicationError as exc:
                self.message_user(request, f"{version.name}: {exc.message}", messages.ERROR)
            else:
                self.message_user(request, f"{version.name} {done}.", messages.SUCCESS)

    @admin.action(description="Activate (add to the ensemble)")
    def activate(self, request, queryset):
        self._apply(request, queryset, services.model_version_activate, "is active")

    @admin.action(description="Retire (keep for comparison)")
    def retire(self, request, queryset):
        self._apply(request, queryset, services.model_version_retire, "retired")

    @admin.action(description="Compare selected versions")
    def compare(self, request, queryset):
        ids = ",".join(str(pk) for pk in queryset.values_list("pk", flat=True))
        return HttpResponseRedirect(f"{reverse('admin:inference_modelversion_compare')}?ids={ids}")


def _signed(value) -> str:
    return "-" if value is None else f"{value:+.2f}"


def promotion_html(run: TrainingRun) -> str:
    """An adaptation's decision and its RMS per set, before and after."""
    promotion = (run.metrics or {}).get("promotion")
    if not promotion:
        return "-"
    rows = format_html_join(
        "",
        "<tr><th>{}</th><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (
                name,
                _fmt(n.get("before")),
                _fmt(n.get("after")),
                "-" if n.get("change") is None else f"{n['change']:+.2f}",
            )
            for name, n in (promotion.get("numbers") or {}).items()
        ),
    )
    return format_html(
        "<p><strong>{}</strong>: {}</p><table><tr><th>set</th><th>RMS before (deg)</th><th>after</th>"
        "<th>change</th></tr>{}</table>",
        "Promoted" if promotion.get("promote") else "Not promoted",
        promotion.get("reason", ""),
        rows,
    )


@admin.register(TrainingRun)
class TrainingRunAdmin(BackgroundRunAdmin):
    list_display = [
        "id",
        "status",
        "trigger",
        "survey",
        "progress_display",
        "message",
        "n_labels",
        "n_synthetic",
        "created_at",
        "heartbeat_at",
        "finished_at",
    ]
    list_filter = ["status", "trigger", "survey"]
    list_select_related = ["survey"]
    readonly_fields = [
        "live",
        "progress_display",
        "message",
        "survey",
        "promotion",
        "attempts",
        "worker",
        "worker_pid",
        "metrics",
        "plots_view",
        "error",
        "created_at",
        "started_at",
        "heartbeat_at",
        "finished_at",
    ]
    exclude = ["plots", "history"]

    @admin.display(description="plots")
    def plots_view(self, run: TrainingRun) -> str:
        return plots_html(run.plots)

    @admin.display(description="promotion (judged per survey)")
    def promotion(self, run: TrainingRun) -> str:
        return promotion_html(run)


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


@admin.register(SurveyEvaluation)
class SurveyEvaluationAdmin(BackgroundRunAdmin):
    """The active ensemble tested on each survey's consensus labels: the figures, the bins and the plot."""

    list_display = [
        "id",
        "survey",
        "status",
        "progress_display",
        "trigger",
        "n_labels",
        "rms_display",
        "bias_display",
        "outliers",
        "rejection",
        "reference_display",
        "needs_adaptation",
        "created_at",
    ]
    list_filter = ["survey", "status", "trigger", "needs_adaptation"]
    list_select_related = ["survey"]
    fields = [
        "survey",
        "status",
        "progress_display",
        "message",
        "error",
        "trigger",
        "training_run",
        "created_by",
        "verdict",
        "figures_table",
        "bins_table",
        "plot_view",
        "model_versions",
        "seconds",
        "created_at",
        "finished_at",
    ]
    readonly_fields = fields

    def has_add_permission(self, request):
        return False  # started from the surveys' actions, the command or the API

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="RMS (deg)", ordering="rms")
    def rms_display(self, evaluation: SurveyEvaluation) -> str:
        return _fmt(evaluation.rms)

    @admin.display(description="bias (deg)")
    def bias_display(self, evaluation: SurveyEvaluation) -> str:
        return "-" if evaluation.bias is None else f"{evaluation.bias:+.2f}"

    @admin.display(description="> 10 deg off")
    def outliers(self, evaluation: SurveyEvaluation) -> str:
        return _pct(evaluation.outlier_rate)

    @admin.display(description="rejection agreement")
    def rejection(self, evaluation: SurveyEvaluation) -> str:
        return _pct(evaluation.rejection_agreement)

    @admin.display(description="reference RMS")
    def reference_display(self, evaluation: SurveyEvaluation) -> str:
        return _fmt(evaluation.reference_rms)

    @admin.display(description="figures")
    def figures_table(self, evaluation: SurveyEvaluation) -> str:
        f = evaluation.figures or {}
        sources = f.get("sources") or {}
        rows = [
            ("accepted labels", f.get("n", 0)),
            ("RMS (deg)", _fmt(f.get("rms"))),
            ("bias (deg)", _fmt(f.get("bias"))),
            ("MAE (deg)", _fmt(f.get("mae"))),
            ("> 5 deg off", _pct(f.get("frac_gt5"))),
            ("> 10 deg off (outliers)", _pct(f.get("outlier_rate"))),
            ("rejection agreement", _pct((f.get("rejection") or {}).get("agreement"))),
            ("reference survey RMS (deg)", _fmt(evaluation.reference_rms)),
            (
                "predictions reused / made now",
                f"{sources.get('stored', 0)} / {sources.get('predicted', 0)}",
            ),
        ]
        return format_html("<table>{}</table>", format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows))

    @admin.display(description="per 5-deg bin of the consensus")
    def bins_table(self, evaluation: SurveyEvaluation) -> str:
        if not evaluation.bins:
            return "-"
        rows = format_html_join(
            "",
            "<tr><td>{}-{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    f"{b['lo']:.0f}",
                    f"{b['hi']:.0f}",
                    b["n"],
                    _fmt(b["rms"]),
                    f"{b['bias']:+.2f}",
                    _pct(b["outlier_rate"]),
                )
                for b in evaluation.bins
            ),
        )
        return format_html(
            "<table><tr><th>consensus (deg)</th><th>n</th><th>RMS</th><th>bias</th><th>&gt; 10 deg off</th></tr>{}"
            "</table>",
            rows,
        )

    @admin.display(description="predicted vs consensus")
    def plot_view(self, evaluation: SurveyEvaluation) -> str:
        return plots_html({"predicted_vs_consensus": evaluation.plot.name}) if evaluation.plot else "-"


@admin.register(InferenceJob)
class InferenceJobAdmin(BackgroundRunAdmin):
    list_display = ["id", "kind", "status", "progress_display", "total", "done", "failed", "created_by", "created_at"]
    list_filter = ["status", "kind"]
    list_select_related = ["created_by"]
    readonly_fields = ["progress_display", "total", "done", "failed", "started_at", "finished_at", "created_at"]
    raw_id_fields = ["created_by"]


@admin.register(Prediction)
class PredictionAdmin(LargeTableAdmin):
    list_display = ["galaxy", "model_version", "inclination", "rejection_likelihood", "created_at"]
    search_fields = ["=galaxy__pgc"]
    list_select_related = ["galaxy", "model_version"]
    raw_id_fields = ["galaxy", "image", "model_version"]


@admin.register(EnsemblePrediction)
class EnsemblePredictionAdmin(LargeTableAdmin):
    list_display = ["galaxy", "median", "mean", "spread", "sigma", "rejection_likelihood", "n_models", "created_at"]
    search_fields = ["=galaxy__pgc"]
    list_select_related = ["galaxy"]
    raw_id_fields = ["galaxy", "image"]


def _alarm_images(alarm: DiscrepancyAlarm, size: int) -> str:
    images = getattr(alarm.galaxy, "color_images", None)
    if images is None:
        images = list(alarm.galaxy.images.filter(band=GalaxyImage.Band.COLOR))
    if not images:
        return "-"
    url = images[0].file.url
    # The colour composite, and beside it an inverted grey view (dark on light, as volunteers can
    # switch to) made by the browser from the same file.
    return format_html(
        '<img src="{}" width="{}" height="{}" alt="colour" loading="lazy"> '
        '<img src="{}" width="{}" height="{}" alt="inverted" loading="lazy" style="filter:grayscale(1) invert(1)">',
        url,
        size,
        size,
        url,
        size,
        size,
    )


class AlarmResolveForm(forms.ModelForm):
    class Meta:
        model = DiscrepancyAlarm
        fields = ["resolution_note"]


@admin.register(DiscrepancyAlarm)
class DiscrepancyAlarmAdmin(LargeTableAdmin):
    list_display = [
        "galaxy",
        "images",
        "kind",
        "status",
        "ensemble_median",
        "ensemble_spread",
        "consensus_inclination",
        "members",
        "created_at",
    ]
    list_filter = ["status", "kind"]
    search_fields = ["=galaxy__pgc"]
    list_select_related = ["galaxy", "ensemble_prediction"]
    form = AlarmResolveForm
    readonly_fields = [
        "galaxy",
        "large_images",
        "kind",
        "status",
        "ensemble_median",
        "ensemble_spread",
        "consensus_inclination",
        "members",
        "details",
        "created_at",
        "resolved_at",
        "resolved_by",
    ]
    change_form_template = "admin/inference/discrepancyalarm/change_form.html"

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .prefetch_related(
                Prefetch(
                    "galaxy__images",
                    queryset=GalaxyImage.objects.filter(band=GalaxyImage.Band.COLOR),
                    to_attr="color_images",
                )
            )
        )

    def has_add_permission(self, request):
        return False  # alarms are raised by the models

    @admin.display(description="images")
    def images(self, alarm: DiscrepancyAlarm) -> str:
        return _alarm_images(alarm, 64)

    @admin.display(description="images")
    def large_images(self, alarm: DiscrepancyAlarm) -> str:
        return _alarm_images(alarm, 256)

    @admin.display(description="members (deg)")
    def members(self, alarm: DiscrepancyAlarm) -> str:
        members = (alarm.details or {}).get("members") or {}
        return ", ".join(f"{k}: {v:.1f}" for k, v in members.items() if not k.startswith("reject:")) or "-"

    def save_model(self, request, obj, form, change):
        if "_resolve" in request.POST and obj.status == DiscrepancyAlarm.Status.OPEN:
            try:
                services.alarm_resolve(alarm=obj, user=request.user, note=form.cleaned_data["resolution_note"])
            except ApplicationError as exc:
                self.message_user(request, exc.message, messages.ERROR)
            return
        obj.save(update_fields=["resolution_note"])


# The catalogue export reads predictions, so it lives above labeling; it adds its actions to labeling's
# galaxy list from here rather than have labeling import inference.
GalaxyAdmin.actions = [*GalaxyAdmin.actions, *EXPORT_ACTIONS] if GalaxyAdmin.actions else EXPORT_ACTIONS


# Evaluations and adaptations are inference's, surveys labeling's: the surveys' admin gets these from here (as the
# galaxy list gets the catalogue exports), so labeling never imports inference.
@admin.display(description="latest evaluation")
def latest_evaluation(survey) -> str:
    evaluation = (
        SurveyEvaluation.objects.filter(survey=survey, status=SurveyEvaluation.Status.SUCCEEDED)
        .order_by("-created_at")
        .first()
    )
    if evaluation is None:
        return "-"
    url = reverse("admin:inference_surveyevaluation_change", args=[evaluation.pk])
    return format_html('<a href="{}">RMS {} deg on {} labels</a>', url, _fmt(evaluation.rms), evaluation.n_labels)


@admin.action(description="Evaluate the active models on its consensus labels")
def evaluate_surveys(modeladmin, request, queryset):
    for survey in queryset:
        try:
            evaluation = services.survey_evaluation_request(survey=survey, user=request.user)
        except ApplicationError as exc:
            modeladmin.message_user(request, f"{survey.name}: {exc.message}", messages.ERROR)
        else:
            modeladmin.message_user(request, f"{survey.name}: evaluation {evaluation.pk} queued.", messages.SUCCESS)


@admin.action(description="Adapt the models to it (fine-tune on its labels)")
def adapt_surveys(modeladmin, request, queryset):
    for survey in queryset:
        try:
            run = services.survey_adaptation_create(survey=survey)
        except ApplicationError as exc:
            modeladmin.message_user(request, f"{survey.name}: not started. {exc.message}", messages.ERROR)
        else:
            modeladmin.message_user(request, f"{survey.name}: adaptation run {run.pk} queued.", messages.SUCCESS)


SurveyAdmin.list_display = [*SurveyAdmin.list_display, latest_evaluation]
SurveyAdmin.actions = [*(SurveyAdmin.actions or []), evaluate_surveys, adapt_surveys]
