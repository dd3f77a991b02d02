"""REST API for inference (upload, by PGC, by position, batch jobs), model versions, alarms, and a galaxy's
detail (it shows images and predictions, so it lives in the app that sees both).

The original IncliNET service's URLs are in inference.compat. Every view is thin: validate, call a service in
inference/ or acquisition/, serialise.
"""

from django.conf import settings
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from acquisition.apis import ImageOutputSerializer
from giz_site.api_pagination import paginated_response, paginated_serializer, pagination_parameters
from giz_site.api_permissions import IsStaff, IsVolunteer
from giz_site.api_schema import pgc_path_parameter
from giz_site.exceptions import ApplicationError
from inference.models import (
    DiscrepancyAlarm,
    EnsemblePrediction,
    InferenceJob,
    InferenceJobItem,
    ModelVersion,
    TrainingRun,
)
from inference.selectors import (
    ensemble_key_ids,
    ensemble_predictions_latest,
    inference_job_results,
    model_version_names,
)
from inference.services import (
    alarm_resolve,
    galaxy_color_image_ensure,
    inference_job_create,
    model_version_activate,
    model_version_upload,
    predict_galaxy,
    predict_image_bytes,
)
from labeling.apis import AnswerHidingMixin, GalaxySummaryOutputSerializer
from labeling.models import Galaxy, StandardGalaxy
from labeling.selectors import gold_answers_hidden

# A pasted catalog of PGC numbers; larger sets are a "catalog" job.
MAX_JOB_PGCS = 10_000
MAX_FOV_ARCMIN = 120.0  # what galaxy_from_position accepts
BATCH_JOB_KINDS = [("pgc_list", "A list of PGC numbers"), ("catalog", "Every catalogued galaxy")]


# ------------------------------------------------------------------------------ shared pieces


class ModelVersionRefOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    url = serializers.SerializerMethodField(help_text="The model version: its training run, data and metrics.")

    class Meta:
        ref_name = "ModelVersionRef"

    def get_url(self, ref) -> str:
        # A dict (the provenance of a prediction) or a ModelVersion (a version's origin).
        return reverse("api:model-detail", args=[ref["id"] if isinstance(ref, dict) else ref.pk])


class PredictionProvenanceOutputSerializer(serializers.Serializer):
    """Where an ensemble inclination comes from: the model versions that answered and when."""

    model_versions = ModelVersionRefOutputSerializer(many=True)
    predicted_at = serializers.DateTimeField(allow_null=True)

    class Meta:
        ref_name = "PredictionProvenance"


def _version_refs(ids_by_name: dict[str, int]) -> list[dict]:
    return [{"id": pk, "name": name} for name, pk in sorted(ids_by_name.items(), key=lambda item: item[1])]


class EnsembleResultOutputSerializer(serializers.Serializer):
    """What the active ensemble says about one image."""

    members = serializers.DictField(child=serializers.FloatField(), help_text="Model name -> inclination (deg).")
    median = serializers.FloatField(help_text="Median of the members (deg): the answer.")
    mean = serializers.FloatField()
    spread = serializers.FloatField(help_text="Standard deviation of the members (deg).")
    sigma = serializers.FloatField(
        allow_null=True,
        help_text=(
            "1-sigma uncertainty (deg): learned per-image sigma and the spread combined, widened toward 13 deg "
            "(any inclination 45-90) as the rejection likelihood rises."
        ),
    )
    rejection_likelihood = serializers.FloatField(
        allow_null=True, help_text="Probability (0-1) that a volunteer would reject this image."
    )
    rejection_members = serializers.DictField(child=serializers.FloatField())
    alarm_raised = serializers.BooleanField(help_text="True when the members disagree enough to ask staff to look.")
    model_versions = serializers.ListField(child=serializers.CharField())
    provenance = serializers.SerializerMethodField()

    class Meta:
        ref_name = "EnsembleResult"

    @extend_schema_field(PredictionProvenanceOutputSerializer)
    def get_provenance(self, result) -> dict:
        return PredictionProvenanceOutputSerializer(
            {"model_versions": _version_refs(result.model_version_ids), "predicted_at": result.predicted_at}
        ).data


class EnsembleOutputSerializer(serializers.ModelSerializer):
    """A stored ensemble prediction; give `version_names` (id -> name) in the context to name its models."""

    members = serializers.DictField(child=serializers.FloatField(), help_text="Model name -> inclination (deg).")
    provenance = serializers.SerializerMethodField()

    class Meta:
        model = EnsemblePrediction
        fields = [
            "id",
            "median",
            "mean",
            "spread",
            "sigma",
            "rejection_likelihood",
            "n_models",
            "members",
            "created_at",
            "provenance",
        ]
        ref_name = "EnsemblePrediction"

    @extend_schema_field(PredictionProvenanceOutputSerializer)
    def get_provenance(self, prediction) -> dict:
        names = self.context.get("version_names", {})
        # A deleted model version keeps its id in the key and loses its name.
        refs = [{"id": pk, "name": names.get(pk, "")} for pk in ensemble_key_ids(prediction.ensemble_key)]
        provenance = {"model_versions": refs, "predicted_at": prediction.created_at}
        return PredictionProvenanceOutputSerializer(provenance).data


# ------------------------------------------------------------------------------ galaxy detail


class GalaxyDetailApi(APIView):
    """One galaxy by PGC number: its images, consensus and the latest predictions."""

    permission_classes = [AllowAny]
    PREDICTIONS_SHOWN = 10

    class OutputSerializer(GalaxySummaryOutputSerializer):
        images = ImageOutputSerializer(many=True)
        predictions = serializers.SerializerMethodField(help_text="Latest ensemble predictions, newest first.")
        standard_inclination = serializers.SerializerMethodField()
        known_inclination = serializers.SerializerMethodField(
            help_text="Synthetic truth or gold reference; hidden from volunteers for gold and unretired galaxies."
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
            if gold_answers_hidden(galaxy=galaxy, user=self._user()):
                return []
            ids = {pk for p in galaxy.latest_ensembles for pk in ensemble_key_ids(p.ensemble_key)}
            context = {"version_names": model_version_names(ids=ids)}
            return EnsembleOutputSerializer(galaxy.latest_ensembles, many=True, context=context).data

        def get_known_inclination(self, galaxy) -> float | None:
            return galaxy.known_inclination  # null for volunteers while the answer is hidden (ANSWER_FIELDS)

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
        galaxy.latest_ensembles = ensemble_predictions_latest(galaxy=galaxy, limit=self.PREDICTIONS_SHOWN)
        return Response(self.OutputSerializer(galaxy, context={"request": request}).data)


# ------------------------------------------------------------------------------ shared by inference views


class GalaxyBriefOutputSerializer(AnswerHidingMixin, serializers.ModelSerializer):
    class Meta:
        model = Galaxy
        fields = ["pgc", "name", "ra", "dec", "d25_arcmin", "position_angle", "source", "state"]
        ref_name = "GalaxyBrief"


def read_upload(upload, *, max_bytes: int) -> bytes:
    """The uploaded bytes, refusing oversized files before reading them into memory."""
    if upload.size > max_bytes:
        raise ApplicationError(
            f"The file is {upload.size / 2**20:.1f} MB; the limit is {max_bytes / 2**20:.1f} MB.",
            code="too_large",
            details={"field": "file", "max_bytes": max_bytes},
            status_code=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    return upload.read()


def predict_stored_galaxy(galaxy: Galaxy):
    """The ensemble on a galaxy's stored colour image, fetching the images first when there are none."""
    galaxy_color_image_ensure(galaxy=galaxy)
    return predict_galaxy(galaxy=galaxy)


class UploadInputSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="JPEG, PNG, GIF, TIFF or FITS (optionally gzip/bzip2-compressed).")

    class Meta:
        ref_name = "ImageUpload"


# ------------------------------------------------------------------------------ inference


class InferenceUploadApi(APIView):
    """POST an image (multipart field `file`) and get every active model's inclination and the ensemble summary."""

    permission_classes = [AllowAny]
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        operation_id="inference_upload",
        request={"multipart/form-data": UploadInputSerializer},
        responses=EnsembleResultOutputSerializer,
        tags=["inference"],
    )
    def post(self, request):
        serializer = UploadInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = read_upload(serializer.validated_data["file"], max_bytes=settings.GIZ_IMAGE_MAX_BYTES)
        result = predict_image_bytes(data=data)
        return Response(EnsembleResultOutputSerializer(result).data)


class InferenceByPgcApi(APIView):
    """The ensemble on a catalogued galaxy's stored image (acquired first when missing); saved as a prediction.

    A gold galaxy's prediction approaches its known answer: for everyone but staff the result is null.
    """

    permission_classes = [AllowAny]

    class OutputSerializer(serializers.Serializer):
        galaxy = GalaxyBriefOutputSerializer()
        result = EnsembleResultOutputSerializer(allow_null=True, help_text="Null for a gold galaxy, except for staff.")

        class Meta:
            ref_name = "GalaxyInference"

    @extend_schema(
        operation_id="inference_by_pgc",
        parameters=[pgc_path_parameter()],
        responses=OutputSerializer,
        tags=["inference"],
    )
    def get(self, request, pgc: int):
        galaxy = get_object_or_404(Galaxy, pgc=pgc)
        result = None if gold_answers_hidden(galaxy=galaxy, user=request.user) else predict_stored_galaxy(galaxy)
        return Response(self.OutputSerializer({"galaxy": galaxy, "result": result}, context={"request": request}).data)


# ------------------------------------------------------------------------------ jobs (position and batch)


class JobOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    status = serializers.ChoiceField(choices=InferenceJob.Status.choices)
    total = serializers.IntegerField()
    done = serializers.IntegerField(help_text="Galaxies predicted.")
    failed = serializers.IntegerField()
    progress = serializers.FloatField(help_text="Fraction finished, 0-1.")
    params = serializers.JSONField()
    error = serializers.CharField(required=False, allow_blank=True, default="")
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True, required=False, default=None)
    url = serializers.SerializerMethodField()
    results_url = serializers.SerializerMethodField()

    class Meta:
        ref_name = "InferenceJob"

    def get_url(self, job) -> str:
        return self.context["request"].build_absolute_uri(reverse("api:job-detail", args=[job.pk]))

    def get_results_url(self, job) -> str:
        return self.context["request"].build_absolute_uri(reverse("api:job-results", args=[job.pk]))


def _job_accepted(request, job) -> Response:
    """202 Accepted with the job and a Location header to poll."""
    body = JobOutputSerializer(job, context={"request": request}).data
    return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": body["url"]})


class InferenceByPositionApi(APIView):
    """POST a sky position and field of view; answers 202 with a job URL to poll for the result."""

    permission_classes = [IsVolunteer]

    class InputSerializer(serializers.Serializer):
        ra = serializers.FloatField(min_value=0, max_value=360, help_text="Right ascension (deg, J2000), 0-360.")
        dec = serializers.FloatField(min_value=-90, max_value=90, help_text="Declination (deg, J2000), -90-90.")
        fov_arcmin = serializers.FloatField(
            min_value=0.1, max_value=MAX_FOV_ARCMIN, help_text="Field of view (arcmin), e.g. 1.5-3 x D25."
        )

        class Meta:
            ref_name = "PositionInferenceInput"

        def validate_ra(self, value: float) -> float:
            return value % 360.0  # 360 is RA 0

    @extend_schema(
        operation_id="inference_by_position",
        request=InputSerializer,
        responses={202: JobOutputSerializer},
        tags=["inference"],
    )
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        job = inference_job_create(kind="position", user=request.user, **serializer.validated_data)
        return _job_accepted(request, job)


def _jobs_visible_to(user):
    """A user's own jobs; staff see everyone's. Others' jobs answer 404, never 403 (no existence leak)."""
    jobs = InferenceJob.objects.all()
    return jobs if user.is_staff else jobs.filter(created_by=user)


class JobListApi(APIView):
    """GET: the signed-in user's inference jobs. POST: a batch job over a list of PGC numbers or the whole catalog."""

    permission_classes = [IsVolunteer]

    class InputSerializer(serializers.Serializer):
        kind = serializers.ChoiceField(choices=BATCH_JOB_KINDS)
        pgcs = serializers.ListField(
            child=serializers.IntegerField(min_value=1, max_value=2**63 - 1),
            required=False,
            max_length=MAX_JOB_PGCS,
            help_text=f"For kind=pgc_list: up to {MAX_JOB_PGCS:,} PGC numbers.",
        )

        class Meta:
            ref_name = "BatchJobInput"

        def validate(self, attrs):
            if attrs["kind"] == "pgc_list":
                if not attrs.get("pgcs"):
                    raise serializers.ValidationError({"pgcs": ["Give at least one PGC number for a pgc_list job."]})
                attrs["pgcs"] = list(dict.fromkeys(attrs["pgcs"]))  # keep order, drop repeats
            elif attrs.get("pgcs"):
                raise serializers.ValidationError({"pgcs": ["A catalog job runs over every galaxy; leave pgcs out."]})
            return attrs

    @extend_schema(
        operation_id="jobs_list",
        parameters=pagination_parameters(),
        responses=paginated_serializer(JobOutputSerializer, name="InferenceJobPage"),
        tags=["inference"],
    )
    def get(self, request):
        return paginated_response(
            queryset=_jobs_visible_to(request.user),
            serializer_class=JobOutputSerializer,
            request=request,
            view=self,
            ordering="-id",
        )

    @extend_schema(
        operation_id="jobs_create", request=InputSerializer, responses={202: JobOutputSerializer}, tags=["inference"]
    )
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if data["kind"] == "catalog" and not request.user.is_staff:
            raise ApplicationError(
                "Only staff may run a job over the whole catalog.", code="permission_denied", status_code=403
            )
        job = inference_job_create(kind=data["kind"], user=request.user, pgcs=data.get("pgcs"))
        return _job_accepted(request, job)


class JobDetailApi(APIView):
    """One job's status and progress (poll until status is succeeded or failed)."""

    permission_classes = [IsVolunteer]

    @extend_schema(operation_id="jobs_retrieve", responses=JobOutputSerializer, tags=["inference"])
    def get(self, request, job_id: int):
        job = get_object_or_404(_jobs_visible_to(request.user), pk=job_id)
        return Response(JobOutputSerializer(job, context={"request": request}).data)


class JobResultsApi(APIView):
    """A job's results, one item per galaxy, page by page."""

    permission_classes = [IsVolunteer]

    class OutputSerializer(serializers.Serializer):
        pgc = serializers.IntegerField()
        status = serializers.CharField(help_text="ok, or failed with a reason.")
        reason = serializers.CharField(allow_blank=True, required=False, default="")
        median = serializers.FloatField(allow_null=True, required=False, default=None)
        mean = serializers.FloatField(allow_null=True, required=False, default=None)
        spread = serializers.FloatField(allow_null=True, required=False, default=None)
        rejection_likelihood = serializers.FloatField(allow_null=True, required=False, default=None)
        members = serializers.DictField(child=serializers.FloatField(), required=False, default=dict)
        alarm_raised = serializers.BooleanField(required=False, default=False)
        provenance = serializers.SerializerMethodField(help_text="Null for a failed row.")

        class Meta:
            ref_name = "JobResult"

        @extend_schema_field(PredictionProvenanceOutputSerializer(allow_null=True))
        def get_provenance(self, item) -> dict | None:
            if item.status != InferenceJobItem.Status.OK:
                return None
            ids = ensemble_key_ids(item.ensemble_key)
            # The page's rows share one context; a job's rows mostly share one ensemble: one query per ensemble.
            names = self.context.setdefault("version_names", {})
            if not set(ids) <= names.keys():
                names.update(model_version_names(ids=ids))
            refs = [{"id": pk, "name": names.get(pk, "")} for pk in ids]
            provenance = {"model_versions": refs, "predicted_at": item.predicted_at}
            return PredictionProvenanceOutputSerializer(provenance).data

    @extend_schema(
        operation_id="jobs_results",
        parameters=pagination_parameters(),
        responses=paginated_serializer(OutputSerializer, name="JobResultPage"),
        tags=["inference"],
    )
    def get(self, request, job_id: int):
        job = get_object_or_404(_jobs_visible_to(request.user), pk=job_id)
        return paginated_response(
            queryset=inference_job_results(job=job),
            serializer_class=self.OutputSerializer,
            request=request,
            view=self,
            ordering="id",
        )


# ------------------------------------------------------------------------------ model versions


class ModelVersionOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = ModelVersion
        fields = [
            "id",
            "name",
            "kind",
            "architecture",
            "format",
            "input_size",
            "input_mode",
            "output",
            "status",
            "metrics",
            "n_labels",
            "n_synthetic",
            "training_run",
            "notes",
            "created_at",
            "activated_at",
        ]
        ref_name = "ModelVersion"


class TrainingRunBriefOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = TrainingRun
        fields = [
            "id",
            "trigger",
            "status",
            "n_labels",
            "n_synthetic",
            "labels_cutoff",
            "created_at",
            "started_at",
            "finished_at",
        ]
        ref_name = "TrainingRunBrief"


class ModelVersionDetailApi(APIView):
    """One model version traced to its training run (trigger, status, dates), its data and its metrics."""

    permission_classes = [AllowAny]

    class OutputSerializer(ModelVersionOutputSerializer):
        training_run = TrainingRunBriefOutputSerializer(
            allow_null=True, help_text="The run that trained it; null for an uploaded model."
        )
        initialized_from = ModelVersionRefOutputSerializer(
            allow_null=True,
            help_text="The active version whose weights its training started from (fine-tuning); null: from scratch.",
        )

        class Meta(ModelVersionOutputSerializer.Meta):
            fields = [*ModelVersionOutputSerializer.Meta.fields, "initialized_from"]
            ref_name = "ModelVersionDetail"

    @extend_schema(operation_id="models_retrieve", responses=OutputSerializer, tags=["models"])
    def get(self, request, model_id: int):
        version = get_object_or_404(
            ModelVersion.objects.select_related("training_run", "initialized_from"), pk=model_id
        )
        return Response(self.OutputSerializer(version).data)


class ModelVersionListApi(APIView):
    """GET: model versions with their metrics (anyone). POST: upload a .keras/.h5 model file (staff)."""

    parser_classes = [MultiPartParser, FormParser]

    class FilterSerializer(serializers.Serializer):
        kind = serializers.ChoiceField(choices=ModelVersion.Kind.choices, required=False)
        status = serializers.ChoiceField(choices=ModelVersion.Status.choices, required=False)

        class Meta:
            ref_name = "ModelVersionFilter"

    class InputSerializer(serializers.Serializer):
        file = serializers.FileField(help_text="A Keras model saved as .keras (or legacy .h5).")
        name = serializers.CharField(max_length=100)
        kind = serializers.ChoiceField(choices=ModelVersion.Kind.choices, default=ModelVersion.Kind.REGRESSION)
        output = serializers.ChoiceField(
            choices=ModelVersion.Output.choices,
            default=ModelVersion.Output.DEGREES,
            help_text="'scaled' for the original service's models ([-1, 1] over 45-90 deg).",
        )
        notes = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")

        class Meta:
            ref_name = "ModelVersionUpload"

    def get_permissions(self):
        return [IsStaff()] if self.request.method == "POST" else [AllowAny()]

    @extend_schema(
        operation_id="models_list",
        parameters=[FilterSerializer, *pagination_parameters()],
        responses=paginated_serializer(ModelVersionOutputSerializer, name="ModelVersionPage"),
        tags=["models"],
    )
    def get(self, request):
        filters = self.FilterSerializer(data=request.query_params.dict())
        filters.is_valid(raise_exception=True)
        queryset = ModelVersion.objects.filter(**filters.validated_data)
        return paginated_response(
            queryset=queryset,
            serializer_class=ModelVersionOutputSerializer,
            request=request,
            view=self,
            ordering="-id",
        )

    @extend_schema(
        operation_id="models_upload",
        request={"multipart/form-data": InputSerializer},
        responses={201: ModelVersionOutputSerializer},
        tags=["models"],
    )
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        version = model_version_upload(user=request.user, **serializer.validated_data)
        return Response(ModelVersionOutputSerializer(version).data, status=status.HTTP_201_CREATED)


class ModelVersionActivateApi(APIView):
    """Make a model version part of the active ensemble (staff)."""

    permission_classes = [IsStaff]

    @extend_schema(
        operation_id="models_activate", request=None, responses=ModelVersionOutputSerializer, tags=["models"]
    )
    def post(self, request, model_id: int):
        version = get_object_or_404(ModelVersion, pk=model_id)
        model_version_activate(model_version=version, user=request.user)
        version.refresh_from_db()
        return Response(ModelVersionOutputSerializer(version).data)


# ------------------------------------------------------------------------------ alarms


class AlarmOutputSerializer(serializers.ModelSerializer):
    pgc = serializers.IntegerField(source="galaxy.pgc")
    resolved_by = serializers.CharField(source="resolved_by.username", allow_null=True, default=None)

    class Meta:
        model = DiscrepancyAlarm
        fields = [
            "id",
            "pgc",
            "kind",
            "status",
            "ensemble_median",
            "ensemble_spread",
            "consensus_inclination",
            "details",
            "created_at",
            "resolved_at",
            "resolved_by",
            "resolution_note",
        ]
        ref_name = "Alarm"


class AlarmListApi(APIView):
    """Discrepancy alarms, newest first (staff)."""

    permission_classes = [IsStaff]

    class FilterSerializer(serializers.Serializer):
        status = serializers.ChoiceField(choices=DiscrepancyAlarm.Status.choices, required=False)
        kind = serializers.ChoiceField(choices=DiscrepancyAlarm.Kind.choices, required=False)

        class Meta:
            ref_name = "AlarmFilter"

    @extend_schema(
        operation_id="alarms_list",
        parameters=[FilterSerializer, *pagination_parameters()],
        responses=paginated_serializer(AlarmOutputSerializer, name="AlarmPage"),
        tags=["alarms"],
    )
    def get(self, request):
        filters = self.FilterSerializer(data=request.query_params.dict())
        filters.is_valid(raise_exception=True)
        queryset = DiscrepancyAlarm.objects.filter(**filters.validated_data).select_related("galaxy", "resolved_by")
        return paginated_response(
            queryset=queryset, serializer_class=AlarmOutputSerializer, request=request, view=self, ordering="-id"
        )


class AlarmResolveApi(APIView):
    """Mark an alarm resolved with a note (staff)."""

    permission_classes = [IsStaff]

    class InputSerializer(serializers.Serializer):
        note = serializers.CharField(max_length=2000, allow_blank=True, required=False, default="")

        class Meta:
            ref_name = "AlarmResolveInput"

    @extend_schema(
        operation_id="alarms_resolve", request=InputSerializer, responses=AlarmOutputSerializer, tags=["alarms"]
    )
    def post(self, request, alarm_id: int):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        alarm = get_object_or_404(DiscrepancyAlarm, pk=alarm_id)
        alarm_resolve(alarm=alarm, user=request.user, note=serializer.validated_data["note"])
        alarm = DiscrepancyAlarm.objects.select_related("galaxy", "resolved_by").get(pk=alarm.pk)
        return Response(AlarmOutputSerializer(alarm).data)
