"""REST API for galaxies, votes and reshuffles (thin: validate, call a service or selector, serialise).

Endpoints that show images live in acquisition.apis, those that show predictions in inference.apis.
"""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from giz_site.api_pagination import paginated_response, paginated_serializer, pagination_parameters
from giz_site.api_permissions import IsVolunteer
from labeling.models import ConsensusLabel, Galaxy, Survey, Vote
from labeling.selectors import (
    CONSENSUS_METHOD,
    answer_hidden,
    consensus_run_in_force,
    consensus_runs_published,
    galaxy_list_filtered,
    gold_answers_hidden,
    standards_shown,
    surveys_list,
    votes_of,
)
from labeling.services import assignment_reshuffle, vote_submit

# ------------------------------------------------------------------------------ shared output pieces

DATETIME = serializers.DateTimeField()  # how the API writes a date and time (ISO 8601, Z for UTC)


class ConsensusRunRefOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)

    class Meta:
        ref_name = "ConsensusRunRef"


class ConsensusProvenanceOutputSerializer(serializers.Serializer):
    method = serializers.CharField(help_text="How volunteers' votes became this label.")
    computed_at = serializers.DateTimeField(help_text="When the label was last computed.")
    consensus_run = ConsensusRunRefOutputSerializer(
        allow_null=True,
        help_text="The volunteer-model refit whose fitted figures the label used; null before the first refit.",
    )

    class Meta:
        ref_name = "ConsensusProvenance"


class ConsensusOutputSerializer(serializers.ModelSerializer):
    """A consensus label; give `consensus_runs` (consensus_runs_published()) in the context to name its run."""

    provenance = serializers.SerializerMethodField()

    class Meta:
        model = ConsensusLabel
        fields = ["status", "inclination", "uncertainty", "n_votes", "updated_at", "provenance"]
        ref_name = "Consensus"

    @extend_schema_field(ConsensusProvenanceOutputSerializer)
    def get_provenance(self, label) -> dict:
        runs = self.context.get("consensus_runs")
        if runs is None:
            runs = consensus_runs_published()
        provenance = {
            "method": CONSENSUS_METHOD,
            "computed_at": label.updated_at,
            "consensus_run": consensus_run_in_force(runs=runs, at=label.updated_at),
        }
        return ConsensusProvenanceOutputSerializer(provenance).data


class AnswerHidingMixin:
    """Nulls what gives an unretired or gold galaxy's inclination away, for everyone but staff (answer_hidden)."""

    ANSWER_FIELDS = ("position_angle", "axial_ratio", "known_inclination")

    def _user(self):
        request = self.context.get("request")
        return request.user if request else None

    def to_representation(self, galaxy):
        data = super().to_representation(galaxy)
        if answer_hidden(galaxy=galaxy, user=self._user()):
            data.update({name: None for name in self.ANSWER_FIELDS if name in data})
        return data


class GalaxySummaryOutputSerializer(AnswerHidingMixin, serializers.ModelSerializer):
    consensus = serializers.SerializerMethodField()
    survey = serializers.SlugRelatedField(slug_field="slug", read_only=True, help_text="The survey's slug.")

    class Meta:
        model = Galaxy
        fields = [
            "pgc",
            "name",
            "ra",
            "dec",
            "d25_arcmin",
            "position_angle",
            "axial_ratio",
            "source",
            "survey",
            "state",
            "votes_count",
            "consensus",
        ]
        ref_name = "GalaxySummary"

    @extend_schema(responses=ConsensusOutputSerializer(allow_null=True))
    def get_consensus(self, galaxy) -> dict | None:
        if gold_answers_hidden(galaxy=galaxy, user=self._user()):
            return None
        try:
            consensus = galaxy.consensus
        except ConsensusLabel.DoesNotExist:
            return None
        # A list shares one context: the refits are read once per page, not once per galaxy.
        if "consensus_runs" not in self.context:
            self.context["consensus_runs"] = consensus_runs_published()
        return ConsensusOutputSerializer(consensus, context={"consensus_runs": self.context["consensus_runs"]}).data


# ------------------------------------------------------------------------------ galaxies


class GalaxyListApi(APIView):
    """Galaxies with filters; cursor-paginated by PGC number."""

    permission_classes = [AllowAny]

    class FilterSerializer(serializers.Serializer):
        state = serializers.ChoiceField(choices=Galaxy.State.choices, required=False)
        source = serializers.ChoiceField(choices=Galaxy.Source.choices, required=False)
        survey = serializers.SlugField(required=False, help_text="Only galaxies of this survey (its slug).")
        has_consensus = serializers.BooleanField(required=False, allow_null=True, default=None)
        inclination_min = serializers.FloatField(required=False, min_value=0, max_value=90)
        inclination_max = serializers.FloatField(required=False, min_value=0, max_value=90)
        ra_min = serializers.FloatField(required=False, min_value=0, max_value=360, help_text="deg")
        ra_max = serializers.FloatField(
            required=False, min_value=0, max_value=360, help_text="deg; below ra_min wraps across RA 0"
        )
        dec_min = serializers.FloatField(required=False, min_value=-90, max_value=90, help_text="deg")
        dec_max = serializers.FloatField(required=False, min_value=-90, max_value=90, help_text="deg")
        pgc = serializers.IntegerField(required=False, min_value=0, max_value=2**63 - 1)
        search = serializers.CharField(required=False, max_length=64, help_text="Name or PGC number")

        class Meta:
            ref_name = "GalaxyFilter"

        def validate(self, attrs):
            lo, hi = attrs.get("inclination_min"), attrs.get("inclination_max")
            if lo is not None and hi is not None and lo > hi:
                raise serializers.ValidationError({"inclination_min": ["Must not exceed inclination_max."]})
            lo, hi = attrs.get("dec_min"), attrs.get("dec_max")
            if lo is not None and hi is not None and lo > hi:
                raise serializers.ValidationError({"dec_min": ["Must not exceed dec_max."]})
            return attrs

    class OutputSerializer(GalaxySummaryOutputSerializer):
        class Meta(GalaxySummaryOutputSerializer.Meta):
            ref_name = "GalaxyListItem"

    @extend_schema(
        operation_id="galaxies_list",
        parameters=[FilterSerializer, *pagination_parameters()],
        responses=paginated_serializer(OutputSerializer, name="GalaxyPage"),
        tags=["galaxies"],
    )
    def get(self, request):
        filters = self.FilterSerializer(data=request.query_params.dict())
        filters.is_valid(raise_exception=True)
        return paginated_response(
            queryset=galaxy_list_filtered(filters=filters.validated_data, hide_gold_answers=not request.user.is_staff),
            serializer_class=self.OutputSerializer,
            request=request,
            view=self,
            ordering="pgc",
        )


# ------------------------------------------------------------------------------ votes


class VoteOutputSerializer(serializers.ModelSerializer):
    pgc = serializers.IntegerField(source="galaxy.pgc")

    class Meta:
        model = Vote
        fields = [
            "id",
            "pgc",
            "inclination",
            "flag",
            "not_sure",
            "note",
            "left_standard",
            "right_standard",
            "seconds_taken",
            "created_at",
        ]
        ref_name = "Vote"

    def to_representation(self, vote) -> dict:
        # Written out (the fields above, same values): every recorded vote answers with it, and DRF builds a
        # ModelSerializer's fields afresh for each instance.
        return {
            "id": vote.id,
            "pgc": vote.galaxy.pgc,
            "inclination": vote.inclination,
            "flag": vote.flag,
            "not_sure": vote.not_sure,
            "note": vote.note,
            "left_standard": vote.left_standard_id,
            "right_standard": vote.right_standard_id,
            "seconds_taken": vote.seconds_taken,
            "created_at": DATETIME.to_representation(vote.created_at),
        }


class VoteInputSerializer(serializers.Serializer):
    """A vote as the API and the website's form send it (the website names the standards without `_id`)."""

    token = serializers.CharField(max_length=200, help_text="The one-time token from /api/assignments/next/.")
    inclination = serializers.FloatField(
        required=False, allow_null=True, default=None, error_messages={"invalid": "This is not a number."}
    )
    flag = serializers.ChoiceField(
        choices=Vote.Flag.choices,
        required=False,
        allow_blank=True,
        default="",
        error_messages={"invalid_choice": "Unknown flag {input!r}."},
    )
    not_sure = serializers.BooleanField(required=False, default=False)
    note = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")
    left_standard_id = serializers.IntegerField(
        required=False, allow_null=True, default=None, min_value=1, max_value=2**63 - 1
    )
    right_standard_id = serializers.IntegerField(
        required=False, allow_null=True, default=None, min_value=1, max_value=2**63 - 1
    )
    seconds_taken = serializers.FloatField(
        required=False, allow_null=True, default=None, min_value=0, error_messages={"invalid": "This is not a number."}
    )

    class Meta:
        ref_name = "VoteInput"


class VoteListApi(APIView):
    """GET: the signed-in volunteer's own votes, newest first. POST: submit a vote with an assignment token."""

    permission_classes = [IsVolunteer]

    InputSerializer = VoteInputSerializer

    @extend_schema(
        operation_id="votes_list",
        parameters=pagination_parameters(),
        responses=paginated_serializer(VoteOutputSerializer, name="VotePage"),
        tags=["votes"],
    )
    def get(self, request):
        return paginated_response(
            queryset=votes_of(volunteer=request.user),
            serializer_class=VoteOutputSerializer,
            request=request,
            view=self,
            ordering=("-created_at", "-id"),
        )

    @extend_schema(
        operation_id="votes_create",
        request=InputSerializer,
        responses={201: VoteOutputSerializer},
        tags=["votes"],
    )
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        vote = vote_submit(volunteer=request.user, **serializer.validated_data)
        return Response(VoteOutputSerializer(vote).data, status=status.HTTP_201_CREATED)


class VoteDetailApi(APIView):
    """One of the signed-in volunteer's own votes; another volunteer's answers 404."""

    permission_classes = [IsVolunteer]

    @extend_schema(operation_id="votes_retrieve", responses=VoteOutputSerializer, tags=["votes"])
    def get(self, request, vote_id: int):
        vote = get_object_or_404(Vote.objects.select_related("galaxy"), pk=vote_id, volunteer=request.user)
        return Response(VoteOutputSerializer(vote).data)


# ------------------------------------------------------------------------------ assignments


class StandardShownOutputSerializer(serializers.Serializer):
    """A standard as the labeling page lays it on the grid."""

    id = serializers.IntegerField()
    inclination = serializers.FloatField()
    url = serializers.CharField(
        help_text="Its colour image turned so the major axis is horizontal (as observed until that copy exists); "
        "empty while it has none."
    )
    unrotated_url = serializers.CharField(help_text="Its colour image as observed; empty while it has none.")

    class Meta:
        ref_name = "StandardShown"


class AssignmentReshuffleApi(APIView):
    """Draw other standards for some grid points (degrees 45-90) of the open assignment.

    The labeling page's Reshuffle button calls it with the session; the answer is laid out as the page's grid.
    """

    permission_classes = [IsVolunteer]

    class InputSerializer(serializers.Serializer):
        token = serializers.CharField(max_length=200)
        degrees = serializers.ListField(
            child=serializers.IntegerField(min_value=45, max_value=90), min_length=1, max_length=46
        )

        class Meta:
            ref_name = "ReshuffleInput"

    class OutputSerializer(serializers.Serializer):
        standards = serializers.DictField(
            child=StandardShownOutputSerializer(), help_text="Grid degree -> the standard now shown there."
        )

        class Meta:
            ref_name = "ReshuffleOutput"

    @extend_schema(
        operation_id="assignments_reshuffle", request=InputSerializer, responses=OutputSerializer, tags=["votes"]
    )
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        drawn = assignment_reshuffle(volunteer=request.user, **serializer.validated_data)
        shown = standards_shown(standard_ids=drawn.values())
        return Response({"standards": {str(d): shown[sid] for d, sid in drawn.items() if sid in shown}})


# ------------------------------------------------------------------------------ surveys


class SurveyOutputSerializer(serializers.ModelSerializer):
    """A survey the galaxies come from: its image source, pixel scale and bands, and how many labels it has."""

    # The counts are annotations of labeling.selectors.surveys_list(): serialise its rows, not bare surveys.
    # inference extends this serializer with the models' latest evaluation on the survey.
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

    @extend_schema(operation_id="surveys_list", responses=SurveyOutputSerializer(many=True), tags=["surveys"])
    def get(self, request):
        return Response(SurveyOutputSerializer(surveys_list(), many=True).data)


class SurveyDetailApi(APIView):
    """One survey by its slug, with its counts."""

    permission_classes = [AllowAny]

    @extend_schema(operation_id="surveys_retrieve", responses=SurveyOutputSerializer, tags=["surveys"])
    def get(self, request, slug: str):
        survey = get_object_or_404(surveys_list(), slug=slug)
        return Response(SurveyOutputSerializer(survey).data)
