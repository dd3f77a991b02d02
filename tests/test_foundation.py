"""The platform's foundation: settings parsing, system checks, admin, migrations, and a real worker."""

import os
import subprocess
import sys
from io import StringIO

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.urls import reverse

from acquisition.models import GalaxyImage
from giz_site.models import WorkerHeartbeat
from tests.factories import GalaxyFactory, VoteFactory
from tests.services import broker_url, celery_worker, require_postgres, send_task, wait_for

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "GIZ_", "CELERY_", "DATABASE_"))}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env={**base, **env}, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def data_dir(tmp_path):
    return {"GIZ_DATA_DIR": str(tmp_path)}


class TestStrictSettings:
    def test_a_bad_boolean_stops_start_up_and_names_the_variable(self, data_dir):
        result = run_manage("check", env={**data_dir, "DJANGO_DEBUG": "maybe"})
        assert result.returncode != 0
        assert "DJANGO_DEBUG='maybe' is not a boolean" in result.stderr

    def test_a_bad_number_names_the_variable(self, data_dir):
        result = run_manage("check", env={**data_dir, "GIZ_RETRAIN_AFTER_LABELS": "lots"})
        assert result.returncode != 0
        assert "GIZ_RETRAIN_AFTER_LABELS='lots' is not a whole number" in result.stderr

    def test_production_has_no_default_secret_key(self, data_dir):
        env = {
            **data_dir,
            "DJANGO_SETTINGS_MODULE": "giz_site.settings.production",
            "DJANGO_ALLOWED_HOSTS": "giz.example.org",
        }
        result = run_manage("check", env=env)
        assert result.returncode != 0
        assert "Set the environment variable DJANGO_SECRET_KEY" in result.stderr

    def test_production_settings_pass_the_deployment_checklist(self, data_dir):
        env = {
            **data_dir,
            "DJANGO_SETTINGS_MODULE": "giz_site.settings.production",
            "DJANGO_SECRET_KEY": "x" * 20 + "a-long-random-production-secret-key-0123456789",
            "DJANGO_ALLOWED_HOSTS": "giz.example.org",
            "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/giz",
            "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
        }
        result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=env)
        assert result.returncode == 0, result.stderr + result.stdout
        assert "System check identified no issues" in result.stdout

    def test_debug_is_off_unless_asked_for(self, data_dir):
        result = run_manage("shell", "-c", "from django.conf import settings; print(settings.DEBUG)", env=data_dir)
        assert result.stdout.strip().splitlines()[-1] == "False", result.stderr

    def test_the_embedded_brokers_polling_moves_tasks_fast(self, data_dir):
        # kombu's default of 1 s moved about 2 tasks/s (bench/bench_broker.py measures the effect).
        code = "from django.conf import settings; print(settings.CELERY_BROKER_TRANSPORT_OPTIONS['polling_interval'])"
        result = run_manage("shell", "-c", code, env=data_dir)
        assert float(result.stdout.strip().splitlines()[-1]) <= 0.05, result.stderr


class TestSystemChecks:
    def test_unwritable_storage_is_reported(self, settings, tmp_path):
        blocker = tmp_path / "a-file"
        blocker.write_text("not a folder")
        settings.MEDIA_ROOT = str(blocker / "media")
        with pytest.raises(Exception) as excinfo:
            call_command("check")
        assert "giz.E001" in str(excinfo.value)

    @pytest.mark.parametrize("url", ["redis//localhost", "kafka://broker:9092", "redis://:notaport/0"])
    def test_malformed_broker_url_is_reported(self, settings, url):
        settings.CELERY_BROKER_URL = url
        with pytest.raises(Exception) as excinfo:
            call_command("check")
        assert "giz.E002" in str(excinfo.value)

    def test_a_good_configuration_passes(self):
        out = StringIO()
        call_command("check", stdout=out)
        assert "no issues" in out.getvalue()


def test_migrations_match_the_models(db):
    out = StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


class TestAdmin:
    MODELS = [
        "labeling/galaxy",
        "labeling/survey",
        "labeling/standardgalaxy",
        "labeling/vote",
        "labeling/consensuslabel",
        "labeling/volunteerprofile",
        "acquisition/galaxyimage",
        "acquisition/acquisitionjob",
        "inference/modelversion",
        "inference/trainingrun",
        "inference/prediction",
        "inference/ensembleprediction",
        "inference/discrepancyalarm",
        "giz_site/workerheartbeat",
    ]

    @pytest.mark.parametrize("model", MODELS)
    def test_every_list_page_opens_for_staff(self, bob_client, model):
        response = bob_client.get(f"/admin/{model}/")
        assert response.status_code == 200

    def test_volunteers_cannot_open_the_admin(self, alice_client):
        response = alice_client.get("/admin/labeling/galaxy/")
        assert response.status_code == 302
        assert "/admin/login/" in response["Location"]

    def test_galaxy_search_by_pgc_and_name(self, bob_client):
        GalaxyFactory(pgc=4242, name="NGC 7331")
        GalaxyFactory(pgc=9999, name="UGC 1")
        by_pgc = bob_client.get("/admin/labeling/galaxy/", {"q": "4242"}).content.decode()
        by_name = bob_client.get("/admin/labeling/galaxy/", {"q": "NGC 73"}).content.decode()
        assert "NGC 7331" in by_pgc and "UGC 1" not in by_pgc
        assert "NGC 7331" in by_name and "UGC 1" not in by_name

    def test_list_queries_do_not_grow_with_rows(self, bob_client, django_assert_max_num_queries):
        for galaxy in GalaxyFactory.create_batch(30):
            VoteFactory(galaxy=galaxy)
            GalaxyImage.objects.create(
                galaxy=galaxy,
                band="color",
                format="jpeg",
                file=f"images/{galaxy.pgc}.jpg",
                source="sdss",
                width=512,
                height=512,
                checksum="0" * 64,
            )
        for url in ["/admin/labeling/galaxy/", "/admin/labeling/vote/", "/admin/acquisition/galaxyimage/"]:
            with django_assert_max_num_queries(12):
                assert bob_client.get(url).status_code == 200

    def test_galaxy_list_shows_thumbnails(self, bob_client):
        galaxy = GalaxyFactory()
        GalaxyImage.objects.create(
            galaxy=galaxy,
            band="color",
            format="jpeg",
            file="images/x/colour.jpg",
            source="sdss",
            width=512,
            height=512,
            checksum="0" * 64,
        )
        html = bob_client.get(reverse("admin:labeling_galaxy_changelist")).content.decode()
        assert '<img src="/media/images/x/colour.jpg"' in html


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", ["redis", "amqp"])
def test_a_real_worker_takes_a_task_through_the_broker_and_writes_to_postgres(kind):
    require_postgres()
    url = broker_url(kind)
    with celery_worker(broker=url, queues=f"heartbeat-{kind}"):
        send_task(url, "giz_site.tasks.worker_heartbeat", queue=f"heartbeat-{kind}")
        heartbeat = wait_for(lambda: WorkerHeartbeat.objects.first(), timeout=60, what="the worker's heartbeat row")
    assert heartbeat.hostname.startswith("celery@")


QUEUES = {"acquisition", "inference", "training", "maintenance"}


def test_every_task_has_one_of_the_four_queues_and_beat_checks_on_maintenance():
    from giz_site.celery import app

    app.loader.import_default_modules()
    routed = {
        name: app.amqp.router.route({}, name)["queue"].name for name in app.tasks if not name.startswith("celery.")
    }
    assert set(routed.values()) <= QUEUES
    assert set(routed) <= set(django_settings.CELERY_TASK_ROUTES)  # named in the routes, not left to the default
    assert routed["acquisition.tasks.acquire_galaxy"] == "acquisition"
    assert routed["inference.tasks.train_task"] == "training"
    assert routed["inference.tasks.inference_job_task"] == "inference"
    # Beat's checks never wait behind bulk work; its prediction backstop is bulk work itself.
    beat = {entry["task"] for entry in django_settings.CELERY_BEAT_SCHEDULE.values()} - {
        "inference.tasks.predict_missing"
    }
    assert {routed[name] for name in beat} == {"maintenance"}


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_worker_started_without_queues_consumes_all_four():
    require_postgres()
    url = broker_url("redis")
    with celery_worker(broker=url):
        for queue in sorted(QUEUES):
            before = WorkerHeartbeat.objects.values_list("last_seen", flat=True).first()
            send_task(url, "giz_site.tasks.worker_heartbeat", queue=queue)
            wait_for(
                lambda before=before: WorkerHeartbeat.objects.exclude(last_seen=before).exists(),
                timeout=30,
                what=f"a task from the {queue} queue",
            )
