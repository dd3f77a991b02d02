"""REST API for galaxies, standards, assignments and votes (thin: validate, call a service or selector, serialise)."""

from django.db.models import Prefetch
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from acquisition.models import GalaxyImage
from giz_site.api_pagination import paginated_response, paginated_serializer, pagination_parameters
from giz_site.api_permissions import IsVolunteer
from giz_site.api_schema import pgc_path_parameter
from inference.models import EnsemblePrediction
from labeling.models import Assignment, ConsensusLabel, Galaxy, StandardGalaxy, Vote
from labeling.selectors import assignment_page_data, galaxy_list_filtered, votes_of
from labeling.services import assignment_next, assignment_reshuffle, vote_submit

# ------------------------------------------------------------------------------ shared output pieces


class ConsensusOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = ConsensusLabel
        fields = ["status", "inclination", "uncertainty", "n_votes", "updated_at"]
        ref_name = "Consensus"


class ImageOutputSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()

    class Meta:
        model = GalaxyImage
        fields = ["id", "band", "format", "source", "width", "height", "pixel_scale", "url", "acquired_at"]
        ref_name = "GalaxyImage"

    def get_url(self, image) -> str:
        request = self.context.get("request")
        url = image.file.url
        return request.build_absolute_uri(url) if request else url


class EnsembleOutputSerializer(serializers.ModelSerializer):
    members = serializers.DictField(child=serializers.FloatField(), help_text="Model name -> inclination (deg).")

    class Meta:
        model = EnsemblePrediction
        fields = ["id", "median", "mean", "spread", "rejection_likelihood", "n_models", "members", "created_at"]
        ref_name = "EnsemblePrediction"


class GalaxySummaryOutputSerializer(serializers.ModelSerializer):
    consensus = serializers.SerializerMethodField()

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
            "state",
            "votes_count",
            "consensus",
        ]
        ref_name = "GalaxySummary"

    @extend_schema(responses=ConsensusOutputSerializer(allow_null=True))
    def get_consensus(self, galaxy) -> dict | None:
        try:
            consensus = galaxy.consensus
        except ConsensusLabel.DoesNotExist:
            return None
        return ConsensusOutputSerializer(consensus).data


# ------------------------------------------------------------------------------ galaxies


class GalaxyListApi(APIView):
    """Galaxies with filters; cursor-paginated by PGC number."""

    permission_classes = [AllowAny]

    class FilterSerializer(serializers.Serializer):
        state = serializers.ChoiceField(choices=Galaxy.State.choices, required=False)
        source = serializers.ChoiceField(choices=Galaxy.Source.choices, required=False)
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
            queryset=galaxy_list_filtered(filters=filters.validated_data),
            serializer_class=self.OutputSerializer,
            request=request,
            view=self,
            ordering="pgc",
        )


class GalaxyDetailApi(APIView):
    """One galaxy by PGC number: its images, consensus and the latest predictions."""

    permission_classes = [AllowAny]
    PREDICTIONS_SHOWN = 10

    class OutputSerializer(GalaxySummaryOutputSerializer):
        images = ImageOutputSerializer(many=True)
        predictions = serializers.SerializerMethodField(help_text="Latest ensemble predictions, newest first.")
        standard_inclination = serializers.SerializerMethodField()
        known_inclination = serializers.SerializerMethodField(
            help_text="Synthetic truth or gold reference; hidden from volunteers for gold galaxies."
        )

        class Meta(GalaxySummaryOutputSerializer.Meta):
            fields = [
                *GalaxySummaryOutputSerializer.Meta.fields,
                "known_inclination",
                "standard_inclination",
                "images",
                "predictions",
            ]
            ref_name = "GalaxyDetail"

        @extend_schema(responses=EnsembleOutputSerializer(many=True))
        def get_predictions(self, galaxy) -> list:
            return EnsembleOutputSerializer(galaxy.latest_ensembles, many=True).data

        def get_known_inclination(self, galaxy) -> float | None:
            request = self.context.get("request")
            if galaxy.is_gold and not (request and request.user.is_staff):
                return None  # the answer volunteers are scored against
            return galaxy.known_inclination

        def get_standard_inclination(self, galaxy) -> float | None:
            try:
                return galaxy.standard.inclination
            except StandardGalaxy.DoesNotExist:
                return None

    @extend_schema(
        operation_id="galaxies_retrieve",
        parameters=[pgc_path_parameter()],
        responses=OutputSerializer,
        tags=["galaxies"],
    )
    def get(self, request, pgc: int):
        galaxy = get_object_or_404(
            Galaxy.objects.select_related("consensus", "standard").prefetch_related("images"), pgc=pgc
        )
        galaxy.latest_ensembles = list(
            EnsemblePrediction.objects.filter(galaxy=galaxy).order_by("-created_at", "-id")[: self.PREDICTIONS_SHOWN]
        )
        return Response(self.OutputSerializer(galaxy, context={"request": request}).data)


# ------------------------------------------------------------------------------ standards


class StandardListApi(APIView):
    """The active standard galaxies volunteers compare against, by inclination."""

    permission_classes = [AllowAny]

    class OutputSerializer(serializers.ModelSerializer):
        pgc = serializers.IntegerField(source="galaxy.pgc")
        name = serializers.CharField(source="galaxy.name")
        images = ImageOutputSerializer(source="galaxy.images", many=True)

        class Meta:
            model = StandardGalaxy
            fields = ["id", "pgc", "name", "inclination", "inclination_source", "images"]
            ref_name = "Standard"

    @extend_schema(
        operation_id="standards_list",
        parameters=pagination_parameters(),
        responses=paginated_serializer(OutputSerializer, name="StandardPage"),
        tags=["galaxies"],
    )
    def get(self, request):
        queryset = (
            StandardGalaxy.objects.filter(active=True)
            .select_related("galaxy")
            .prefetch_related(Prefetch("galaxy__images", queryset=GalaxyImage.objects.order_by("band", "format")))
        )
        return paginated_response(
            queryset=queryset,
            serializer_class=self.OutputSerializer,
            request=request,
            view=self,
            ordering=("inclination", "id"),
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


class VoteListApi(APIView):
    """GET: the signed-in volunteer's own votes, newest first. POST: submit a vote with an assignment token."""

    permission_classes = [IsVolunteer]

    class InputSerializer(serializers.Serializer):
        token = serializers.CharField(max_length=200, help_text="The one-time token from /api/assignments/next/.")
        inclination = serializers.FloatField(required=False, allow_null=True, default=None)
        flag = serializers.ChoiceField(choices=Vote.Flag.choices, required=False, allow_blank=True, default="")
        not_sure = serializers.BooleanField(required=False, default=False)
        note = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")
        left_standard_id = serializers.IntegerField(
            required=False, allow_null=True, default=None, min_value=1, max_value=2**63 - 1
        )
        right_standard_id = serializers.IntegerField(
            required=False, allow_null=True, default=None, min_value=1, max_value=2**63 - 1
        )
        seconds_taken = serializers.FloatField(required=False, allow_null=True, default=None, min_value=0)

        class Meta:
            ref_name = "VoteInput"

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


class AssignmentGalaxyOutputSerializer(serializers.ModelSerializer):
    """The galaxy to label: no consensus, no known inclination (that would bias or give away the answer)."""

    images = ImageOutputSerializer(many=True)

    class Meta:
        model = Galaxy
        fields = ["pgc", "name", "ra", "dec", "d25_arcmin", "position_angle", "images"]
        ref_name = "AssignmentGalaxy"


class AssignmentNextApi(APIView):
    """The next galaxy for the signed-in volunteer with the standards to compare against and a one-time token.

    POST the answer to /api/votes/ with that token; the website's rules apply (one vote per galaxy, a token is
    used once, cited standards must be among those shown). 204 when nothing is left to label.
    """

    permission_classes = [IsVolunteer]

    class OutputSerializer(serializers.Serializer):
        token = serializers.CharField()
        expires_at = serializers.DateTimeField()
        galaxy = AssignmentGalaxyOutputSerializer()
        standards = serializers.SerializerMethodField()
        grid = serializers.SerializerMethodField(
            help_text="Grid degree (45-90) -> id of the standard to show there, as the website lays them out."
        )

        class Meta:
            ref_name = "Assignment"

        @extend_schema_field(StandardListApi.OutputSerializer(many=True))
        def get_standards(self, assignment) -> list[dict]:
            standards = (
                StandardGalaxy.objects.filter(pk__in=assignment.standard_ids)
                .select_related("galaxy")
                .prefetch_related("galaxy__images")
                .order_by("inclination", "id")
            )
            return StandardListApi.OutputSerializer(standards, many=True, context=self.context).data

        def get_grid(self, assignment) -> dict[str, int]:
            shown = assignment_page_data(assignment=assignment)["standards"]
            return {degree: standard["id"] for degree, standard in shown.items()}

    @extend_schema(operation_id="assignments_next", responses={200: OutputSerializer, 204: None}, tags=["votes"])
    def get(self, request):
        assignment = assignment_next(volunteer=request.user)
        if assignment is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        assignment = (
            Assignment.objects.select_related("galaxy").prefetch_related("galaxy__images").get(pk=assignment.pk)
        )
        return Response(self.OutputSerializer(assignment, context={"request": request}).data)


class AssignmentReshuffleApi(APIView):
    """Draw other standards for some grid points (degrees 45-90) of the open assignment, as the website's button."""

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
            child=serializers.IntegerField(), help_text="Grid degree -> id of the standard now shown there."
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
        return Response({"standards": {str(degree): sid for degree, sid in drawn.items()}})
