from django.contrib import admin

from inference.models import DiscrepancyAlarm, EnsemblePrediction, ModelVersion, Prediction, TrainingRun
from labeling.admin import LargeTableAdmin


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "kind",
        "architecture",
        "status",
        "format",
        "n_labels",
        "n_synthetic",
        "created_at",
        "activated_at",
    ]
    list_filter = ["kind", "status", "format"]
    search_fields = ["name", "architecture"]
    raw_id_fields = ["training_run", "uploaded_by"]


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "status",
        "trigger",
        "progress_display",
        "message",
        "n_labels",
        "n_synthetic",
        "created_at",
        "finished_at",
    ]
    list_filter = ["status", "trigger"]
    readonly_fields = ["live", "created_at", "started_at", "heartbeat_at", "finished_at"]

    @admin.display(description="progress")
    def progress_display(self, run: TrainingRun) -> str:
        return f"{run.progress:.0%}"


@admin.register(Prediction)
class PredictionAdmin(LargeTableAdmin):
    list_display = ["galaxy", "model_version", "inclination", "rejection_likelihood", "created_at"]
    search_fields = ["=galaxy__pgc"]
    list_select_related = ["galaxy", "model_version"]
    raw_id_fields = ["galaxy", "image", "model_version"]


@admin.register(EnsemblePrediction)
class EnsemblePredictionAdmin(LargeTableAdmin):
    list_display = ["galaxy", "median", "mean", "spread", "rejection_likelihood", "n_models", "created_at"]
    search_fields = ["=galaxy__pgc"]
    list_select_related = ["galaxy"]
    raw_id_fields = ["galaxy", "image"]


@admin.register(DiscrepancyAlarm)
class DiscrepancyAlarmAdmin(LargeTableAdmin):
    list_display = [
        "galaxy",
        "kind",
        "status",
        "ensemble_median",
        "ensemble_spread",
        "consensus_inclination",
        "created_at",
    ]
    list_filter = ["status", "kind"]
    search_fields = ["=galaxy__pgc"]
    list_select_related = ["galaxy"]
    raw_id_fields = ["galaxy", "ensemble_prediction", "resolved_by"]
