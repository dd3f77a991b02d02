"""Contract tests for model versions (list with metrics; staff upload and activation) and alarms (staff)."""

import pytest

from inference.models import DiscrepancyAlarm, ModelVersion, TrainingRun
from tests.api_fixtures import (  # noqa: F401
    assert_error,
    ensemble_upload,
    fresh_ensemble,
    tiny_model_file,
    token_client,
    upload,
)
from tests.factories import GalaxyFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_ensemble")]


class TestModelVersions:
    def test_anyone_lists_versions_with_their_metrics(self, api_client):
        ModelVersion.objects.create(
            name="vgg_a-1", architecture="vgg_a", file="models/a.keras", metrics={"rmse": 3.4, "mae": 2.5}
        )
        ModelVersion.objects.create(name="rej-1", kind="rejection", architecture="vgg_a", file="models/r.keras")
        body = api_client.get("/api/models/").json()
        assert [m["name"] for m in body["results"]] == ["rej-1", "vgg_a-1"]
        assert body["results"][1]["metrics"] == {"rmse": 3.4, "mae": 2.5}
        assert [m["name"] for m in api_client.get("/api/models/?kind=rejection").json()["results"]] == ["rej-1"]
        assert_error(api_client.get("/api/models/?status=excellent"), 400, "invalid")

    def test_a_version_is_traced_to_its_training_run_data_and_metrics(self, api_client):
        run = TrainingRun.objects.create(trigger="new_labels", status="succeeded", n_labels=120, n_synthetic=3000)
        trained = ModelVersion.objects.create(
            name="vgg_a-2",
            architecture="vgg_a",
            file="models/a2.keras",
            metrics={"rmse": 3.1},
            n_labels=120,
            n_synthetic=3000,
            training_run=run,
        )
        uploaded = ModelVersion.objects.create(name="legacy", architecture="vgg_a", file="models/l.h5")
        body = api_client.get(f"/api/models/{trained.pk}/").json()
        assert (body["name"], body["metrics"], body["n_labels"], body["n_synthetic"]) == (
            "vgg_a-2",
            {"rmse": 3.1},
            120,
            3000,
        )
        assert body["training_run"]["id"] == run.pk
        assert (body["training_run"]["trigger"], body["training_run"]["status"]) == ("new_labels", "succeeded")
        assert {"created_at", "started_at", "finished_at"} <= body["training_run"].keys()
        assert api_client.get(f"/api/models/{uploaded.pk}/").json()["training_run"] is None
        listed = {m["name"]: m["training_run"] for m in api_client.get("/api/models/").json()["results"]}
        assert listed == {"vgg_a-2": run.pk, "legacy": None}  # the list keeps the bare id
        assert_error(api_client.get("/api/models/999999/"), 404, "not_found")

    def test_staff_upload_and_activate(self, bob):
        versions = ensemble_upload(token_client(bob), members=2, rejection=False)
        assert [v["status"] for v in versions] == ["active", "active"]
        assert ModelVersion.objects.filter(status="active").count() == 2

    def test_volunteers_may_not_upload_or_activate(self, alice):
        client = token_client(alice)
        data = {"file": upload("m.keras", tiny_model_file("regression", seed=0)), "name": "mine", "kind": "regression"}
        assert_error(client.post("/api/models/", data, format="multipart"), 403, "permission_denied")
        version = ModelVersion.objects.create(name="x", architecture="tiny", file="models/x.keras")
        assert_error(client.post(f"/api/models/{version.pk}/activate/"), 403, "permission_denied")
        assert not ModelVersion.objects.filter(status="active").exists()

    @pytest.mark.parametrize(
        "data, field_name",
        [
            ({"name": "no-file", "kind": "regression"}, "file"),
            ({"file": "x", "name": "", "kind": "regression"}, "name"),
            ({"file": "x", "name": "ok", "kind": "astrology"}, "kind"),
        ],
    )
    def test_missing_or_bad_fields_are_named(self, bob, data, field_name):
        if data.get("file") == "x":
            data = data | {"file": upload("m.keras", tiny_model_file("regression", seed=0))}
        response = token_client(bob).post("/api/models/", data, format="multipart")
        assert field_name in assert_error(response, 400, "invalid")["details"]

    def test_a_file_that_is_not_a_model_is_a_4xx(self, bob):
        data = {"file": upload("m.keras", b"definitely not a zip"), "name": "broken", "kind": "regression"}
        response = token_client(bob).post("/api/models/", data, format="multipart")
        assert 400 <= response.status_code < 500
        assert_error(response, response.status_code)
        assert not ModelVersion.objects.filter(name="broken").exists()

    def test_activating_an_unknown_version_is_a_404(self, bob):
        assert_error(token_client(bob).post("/api/models/424242/activate/"), 404, "not_found")


@pytest.fixture
def alarms():
    galaxy = GalaxyFactory(pgc=99)
    spread = DiscrepancyAlarm.objects.create(
        galaxy=galaxy, kind="ensemble_spread", ensemble_median=70, ensemble_spread=7
    )
    human = DiscrepancyAlarm.objects.create(
        galaxy=galaxy, kind="human_disagreement", ensemble_median=70, consensus_inclination=55
    )
    return spread, human


class TestAlarms:
    def test_staff_list_alarms_newest_first_and_filter(self, bob, alarms):
        client = token_client(bob)
        body = client.get("/api/alarms/").json()
        assert [a["kind"] for a in body["results"]] == ["human_disagreement", "ensemble_spread"]
        assert body["results"][0]["pgc"] == 99
        only = client.get("/api/alarms/?kind=ensemble_spread").json()["results"]
        assert [a["id"] for a in only] == [alarms[0].pk]

    def test_staff_resolve_an_alarm_with_a_note(self, bob, alarms):
        client = token_client(bob)
        response = client.post(f"/api/alarms/{alarms[0].pk}/resolve/", {"note": "bad image"}, format="json")
        assert response.status_code == 200, response.content[:500]
        body = response.json()
        assert body["status"] == "resolved" and body["resolved_by"] == "bob" and body["resolution_note"] == "bad image"
        assert [a["id"] for a in client.get("/api/alarms/?status=open").json()["results"]] == [alarms[1].pk]

    def test_volunteers_may_not_see_or_resolve_alarms(self, alice, alarms):
        client = token_client(alice)
        assert_error(client.get("/api/alarms/"), 403)
        assert_error(client.post(f"/api/alarms/{alarms[0].pk}/resolve/", {}, format="json"), 403)
        assert DiscrepancyAlarm.objects.filter(status="open").count() == 2

    def test_resolving_an_unknown_alarm_is_a_404(self, bob):
        assert_error(token_client(bob).post("/api/alarms/424242/resolve/", {}, format="json"), 404, "not_found")
