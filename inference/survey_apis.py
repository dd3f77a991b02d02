"""REST API for surveys as the models see them: the list with each survey's latest evaluation, and starting an
evaluation or an adaptation run (staff), each with its progress to poll.

Surveys are labeling's; their evaluations and adaptation runs are inference's, so the list lives here (labeling
must not import inference). Thin views: validate, call inference.services.surveys, serialise.
"""

from django.db.models import Prefetch
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from giz_site.api_permissions import IsStaff
from inference.models import SurveyEvaluation, TrainingRun
from inference.services import survey_adaptation_create, survey_evaluation_request
from labeling import apis as labeling_apis
from labeling.selectors import surveys_list
from labeling.services import get_survey


class BinOutputSerializer(serializers.Serializer):
    lo = serializers.FloatField()
    hi = serializers.FloatField()
    n = serializers.IntegerField()
    rms = serializers.FloatField()
    bias = serializers.FloatField()
    outlier_rate = serializers.FloatField()

    class Meta:
        ref_name = "SurveyEvaluationBin"


class EvaluationOutputSerializer(serializers.ModelSerializer):
    """One evaluation of the active ensemble on a survey's consensus labels, with its progress."""

    survey = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    progress = serializers.FloatField(help_text="Fraction finished, 0-1.")
    bins = BinOutputSerializer(many=True, help_text="Per 5-deg bin of the consensus inclination.")
    plot = serializers.SerializerMethodField(help_text="Predicted-vs-consensus plot (PNG), once finished.")
    url = serializers.SerializerMethodField()

    class Meta:
        model = SurveyEvaluation
        fields = [
            "id",
            "survey",
            "trigger",
            "status",
            "progress",
            "total",
            "done",
            "failed",
            "message",
            "error",
            "ensemble_key",
            "model_versions",
            "n_labels",
            "rms",
            "bias",
            "outlier_rate",
            "rejection_agreement",
            "bins",
            "reference_rms",
            "needs_adaptation",
            "verdict",
            "plot",
            "seconds",
            "training_run",
            "created_at",
            "finished_at",
            "url",
        ]
        ref_name = "SurveyEvaluation"

    def get_plot(self, evaluation) -> str | None:
        return evaluation.plot.url if evaluation.plot else None

    def get_url(self, evaluation) -> str:
        return reverse("api:survey-evaluation", args=[evaluation.survey.slug, evaluation.pk])


class AdaptationOutputSerializer(serializers.ModelSerializer):
    """An adaptation run: its progress, and once finished the promotion decision with its numbers per set."""

    survey = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    promotion = serializers.SerializerMethodField(
        help_text="promote, reason, and numbers: set -> {before, after, change} RMS in deg."
    )
    url = serializers.SerializerMethodField()

    class Meta:
        model = TrainingRun
        fields = [
            "id",
            "survey",
            "trigger",
            "status",
            "progress",
            "message",
            "error",
            "n_labels",
            "n_synthetic",
            "labels_cutoff",
            "promotion",
            "created_at",
            "started_at",
            "finished_at",
            "url",
        ]
        ref_name = "SurveyAdaptation"

    @extend_schema_field(serializers.JSONField(allow_null=True))
    def get_promotion(self, run) -> dict | None:
        return (run.metrics or {}).get("promotion")

    def get_url(self, run) -> str:
        return reverse("api:survey-adaptation", args=[run.survey.slug, run.pk])


class SurveyOutputSerializer(labeling_apis.SurveyOutputSerializer):
    """labeling's survey (source, scale, bands, label counts) with the models' latest evaluation on it."""

    latest_evaluation = serializers.SerializerMethodField(help_text="The latest finished evaluation (null: none).")

    class Meta(labeling_apis.SurveyOutputSerializer.Meta):
        fields = [*labeling_apis.SurveyOutputSerializer.Meta.fields, "latest_evaluation"]
        ref_name = "SurveyWithEvaluation"

    @extend_schema_field(EvaluationOutputSerializer(allow_null=True))
    def get_latest_evaluation(self, survey) -> dict | None:
        finished = survey.finished_evaluations
        return EvaluationOutputSerializer(finished[0]).data if finished else None


class SurveyListApi(APIView):
    """Every survey (the reference first) with its label counts and the latest evaluation of the models on it."""

    permission_classes = [AllowAny]

    @extend_schema(operation_id="surveys_list", responses=SurveyOutputSerializer(many=True), tags=["surveys"])
    def get(self, request):
        surveys = surveys_list().prefetch_related(
            Prefetch(
                "evaluations",
                queryset=SurveyEvaluation.objects.filter(status=SurveyEvaluation.Status.SUCCEEDED)
                .select_related("survey")
                .order_by("-created_at", "-id"),
                to_attr="finished_evaluations",
            )
        )
        return Response(SurveyOutputSerializer(surveys, many=True).data)


class SurveyEvaluationListApi(APIView):
    """GET: a survey's evaluations, newest first (anyone). POST: evaluate the active ensemble on it now (staff)."""

    def get_permissions(self):
        return [IsStaff()] if self.request.method == "POST" else [AllowAny()]

    @extend_schema(
        operation_id="surveys_evaluations_list", responses=EvaluationOutputSerializer(many=True), tags=["surveys"]
    )
    def get(self, request, slug: str):
        survey = get_survey(slug)
        evaluations = SurveyEvaluation.objects.filter(survey=survey).select_related("survey").order_by("-id")[:50]
        return Response(EvaluationOutputSerializer(evaluations, many=True).data)

    @extend_schema(
        operation_id="surveys_evaluate", request=None, responses={202: EvaluationOutputSerializer}, tags=["surveys"]
    )
    def post(self, request, slug: str):
        evaluation = survey_evaluation_request(survey=get_survey(slug), user=request.user)
        body = EvaluationOutputSerializer(evaluation).data
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": body["url"]})


class SurveyEvaluationDetailApi(APIView):
    """One evaluation: poll its progress until status is succeeded or failed, then read its figures."""

    permission_classes = [AllowAny]

    @extend_schema(operation_id="surveys_evaluation_retrieve", responses=EvaluationOutputSerializer, tags=["surveys"])
    def get(self, request, slug: str, evaluation_id: int):
        evaluation = get_object_or_404(
            SurveyEvaluation.objects.select_related("survey"), survey__slug=slug, pk=evaluation_id
        )
        return Response(EvaluationOutputSerializer(evaluation).data)


class SurveyAdaptationListApi(APIView):
    """GET: a survey's adaptation runs (anyone). POST: fine-tune the active members to it (staff); refused with
    the reason (too few labels, no images, a run already live) and nothing changed."""

    def get_permissions(self):
        return [IsStaff()] if self.request.method == "POST" else [AllowAny()]

    @extend_schema(
        operation_id="surveys_adaptations_list", responses=AdaptationOutputSerializer(many=True), tags=["surveys"]
    )
    def get(self, request, slug: str):
        survey = get_survey(slug)
        runs = TrainingRun.objects.filter(survey=survey).select_related("survey").order_by("-id")[:50]
        return Response(AdaptationOutputSerializer(runs, many=True).data)

    @extend_schema(
        operation_id="surveys_adapt", request=None, responses={202: AdaptationOutputSerializer}, tags=["surveys"]
    )
    def post(self, request, slug: str):
        run = survey_adaptation_create(survey=get_survey(slug))
        body = AdaptationOutputSerializer(run).data
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": body["url"]})


class SurveyAdaptationDetailApi(APIView):
    """One adaptation run: its progress, and the promotion decision with its numbers once it finished."""

    permission_classes = [AllowAny]

    @extend_schema(operation_id="surveys_adaptation_retrieve", responses=AdaptationOutputSerializer, tags=["surveys"])
    def get(self, request, slug: str, run_id: int):
        run = get_object_or_404(TrainingRun.objects.select_related("survey"), survey__slug=slug, pk=run_id)
        return Response(AdaptationOutputSerializer(run).data)
