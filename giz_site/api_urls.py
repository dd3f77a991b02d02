"""All API URLs under /api/: the schema and its viewers, auth, galaxies, votes, inference, models, alarms,
and the IncliNET compatibility layer (/api/pgc/<id>, /api/objname/<name>, /api/file)."""

from django.urls import path, re_path, register_converter
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from acquisition import apis as acquisition_apis
from giz_site import api_auth
from inference import apis as inference_apis
from inference import catalog_apis, catalog_vo, survey_apis, table_job_apis
from inference import compat as inference_compat
from labeling import apis as labeling_apis


class PgcConverter:
    """PGC numbers as path parts; at most 18 digits so they always fit the database's bigint."""

    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


class IdConverter(PgcConverter):
    """Row ids, bounded like PGC numbers (a 30-digit id must be a 404, not a database error)."""


register_converter(PgcConverter, "pgc")
register_converter(IdConverter, "id")

app_name = "api"

urlpatterns = [
    # Schema and documentation
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="swagger-ui"),
    path("redoc/", SpectacularRedocView.as_view(url_name="api:schema"), name="redoc"),
    # Auth
    path("auth/token/", api_auth.TokenObtainApi.as_view(), name="token-obtain"),
    path("auth/token/current/", api_auth.TokenRevokeApi.as_view(), name="token-revoke"),
    # Galaxies and standards
    path("galaxies/", labeling_apis.GalaxyListApi.as_view(), name="galaxy-list"),
    path("galaxies/<pgc:pgc>/", inference_apis.GalaxyDetailApi.as_view(), name="galaxy-detail"),
    path("galaxies/<pgc:pgc>/acquire/", acquisition_apis.GalaxyAcquireApi.as_view(), name="galaxy-acquire"),
    path("standards/", acquisition_apis.StandardListApi.as_view(), name="standard-list"),
    # Surveys the galaxies come from (the list, with each survey's latest evaluation, is served by inference below)
    path("surveys/<slug:slug>/", labeling_apis.SurveyDetailApi.as_view(), name="survey-detail"),
    # The catalogue: file exports, and the IVOA cone search with its VOSI endpoints (VOTable/XML answers)
    path("catalog/", catalog_apis.CatalogExportApi.as_view(), name="catalog-export"),
    path("catalog/exports/", catalog_apis.CatalogExportJobListApi.as_view(), name="catalog-exports"),
    path(
        "catalog/exports/<id:export_id>/", catalog_apis.CatalogExportJobDetailApi.as_view(), name="catalog-export-job"
    ),
    path(
        "catalog/exports/<id:export_id>/file/",
        catalog_apis.CatalogExportJobFileApi.as_view(),
        name="catalog-export-file",
    ),
    path("catalog/cone/", catalog_vo.cone_search_view, name="catalog-cone"),
    path("catalog/vosi/capabilities/", catalog_vo.vosi_capabilities, name="catalog-vosi-capabilities"),
    path("catalog/vosi/availability/", catalog_vo.vosi_availability, name="catalog-vosi-availability"),
    path("research/votes/", catalog_apis.ResearchVotesExportApi.as_view(), name="research-votes"),
    path("research/volunteers/", catalog_apis.ResearchVolunteersExportApi.as_view(), name="research-volunteers"),
    # Volunteering
    path("assignments/next/", acquisition_apis.AssignmentNextApi.as_view(), name="assignment-next"),
    path("assignments/reshuffle/", labeling_apis.AssignmentReshuffleApi.as_view(), name="assignment-reshuffle"),
    path("votes/", labeling_apis.VoteListApi.as_view(), name="vote-list"),
    path("votes/<id:vote_id>/", labeling_apis.VoteDetailApi.as_view(), name="vote-detail"),
    # Inference
    path("inference/upload/", inference_apis.InferenceUploadApi.as_view(), name="inference-upload"),
    path("inference/pgc/<pgc:pgc>/", inference_apis.InferenceByPgcApi.as_view(), name="inference-pgc"),
    path("inference/position/", inference_apis.InferenceByPositionApi.as_view(), name="inference-position"),
    path("jobs/", inference_apis.JobListApi.as_view(), name="job-list"),
    path("jobs/table/", table_job_apis.TableJobCreateApi.as_view(), name="job-table-create"),
    path("jobs/<id:job_id>/", inference_apis.JobDetailApi.as_view(), name="job-detail"),
    path("jobs/<id:job_id>/table/", table_job_apis.TableJobResultApi.as_view(), name="job-table"),
    path("jobs/<id:job_id>/results/", inference_apis.JobResultsApi.as_view(), name="job-results"),
    # Models and alarms
    path("models/", inference_apis.ModelVersionListApi.as_view(), name="model-list"),
    path("models/<id:model_id>/", inference_apis.ModelVersionDetailApi.as_view(), name="model-detail"),
    path("models/<id:model_id>/activate/", inference_apis.ModelVersionActivateApi.as_view(), name="model-activate"),
    path("alarms/", inference_apis.AlarmListApi.as_view(), name="alarm-list"),
    path("alarms/<id:alarm_id>/resolve/", inference_apis.AlarmResolveApi.as_view(), name="alarm-resolve"),
    # Surveys: the models' latest evaluation on each, evaluations and adaptation runs to start (staff) and poll
    path("surveys/", survey_apis.SurveyListApi.as_view(), name="survey-list"),
    path("surveys/<slug:slug>/evaluations/", survey_apis.SurveyEvaluationListApi.as_view(), name="survey-evaluations"),
    path(
        "surveys/<slug:slug>/evaluations/<id:evaluation_id>/",
        survey_apis.SurveyEvaluationDetailApi.as_view(),
        name="survey-evaluation",
    ),
    path("surveys/<slug:slug>/adaptations/", survey_apis.SurveyAdaptationListApi.as_view(), name="survey-adaptations"),
    path(
        "surveys/<slug:slug>/adaptations/<id:run_id>/",
        survey_apis.SurveyAdaptationDetailApi.as_view(),
        name="survey-adaptation",
    ),
    # The original IncliNET service's URLs (compatibility layer; no trailing slash, as there)
    path("pgc/<pgc:pgc>", inference_compat.CompatPgcApi.as_view(), name="compat-pgc"),
    path("objname/<str:objname>", inference_compat.CompatObjnameApi.as_view(), name="compat-objname"),
    path("file", inference_compat.CompatFileApi.as_view(), name="compat-file"),
    # Anything else under /api/ is a JSON 404, not the website's HTML page.
    re_path(r"^.*$", api_auth.ApiNotFound.as_view(), name="not-found"),
]
