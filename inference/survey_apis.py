"""The surveys galaxies come from, with their label counts (API). In inference, beside the evaluations that
extend SurveyOutputSerializer: a survey's accuracy is the models' business, its rows are labeling's."""

from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.models import Survey
from labeling.selectors import surveys_list


class SurveyOutputSerializer(serializers.ModelSerializer):
    """A survey the galaxies come from: its image source, pixel scale and bands, and how many labels it has."""

    # The counts are annotations of labeling.selectors.surveys_list(): serialise its rows, not bare surveys.
    galaxies_count = serializers.IntegerField(read_only=True, help_text="Galaxies catalogued in the survey.")
    labels_count = serializers.IntegerField(read_only=True, help_text="Consensus labels of any status.")
    accepted_labels_count = serializers.IntegerField(
        read_only=True, help_text="Consensus labels with an inclination: what evaluations and adaptation use."
    )

    class Meta:
        model = Survey
        fields = [
            "slug",
            "name",
            "pixel_scale",
            "bands",
            "source_kind",
            "hips_id",
            "url_template",
            "data_release",
            "is_reference",
            "needs_adaptation",
            "adaptation_reason",
            "galaxies_count",
            "labels_count",
            "accepted_labels_count",
        ]
        ref_name = "Survey"


class SurveyListApi(APIView):
    """Every survey (the reference one first) with its galaxy and consensus-label counts; a handful of rows,
    so the list is not paginated."""

    permission_classes = [AllowAny]
    output_serializer = SurveyOutputSerializer

    @extend_schema(operation_id="surveys_list", responses=SurveyOutputSerializer(many=True), tags=["surveys"])
    def get(self, request):
        return Response(self.output_serializer(surveys_list(), many=True, context={"request": request}).data)


class SurveyDetailApi(APIView):
    """One survey by its slug, with its counts."""

    permission_classes = [AllowAny]
    output_serializer = SurveyOutputSerializer

    @extend_schema(operation_id="surveys_retrieve", responses=SurveyOutputSerializer, tags=["surveys"])
    def get(self, request, slug: str):
        survey = surveys_list().filter(slug=slug).first()
        if survey is None:
            raise Http404(f"No survey {slug!r}.")
        return Response(self.output_serializer(survey, context={"request": request}).data)
