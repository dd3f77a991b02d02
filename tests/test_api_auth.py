"""Contract tests for authentication, throttling, CORS, the schema pages and the error format of unknown URLs."""

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.cache import cache
from django.core.checks import Tags, run_checks
from django.core.management import call_command
from rest_framework.authtoken.models import Token
from rest_framework.settings import api_settings
from rest_framework.test import APIClient, APIRequestFactory
from rest_framework.throttling import SimpleRateThrottle

from tests.api_fixtures import assert_error, token_client
from tests.services import broker_url

pytestmark = pytest.mark.django_db


class TestTokens:
    def test_username_and_password_give_a_token_that_authenticates(self, api_client, alice):
        response = api_client.post(
            "/api/auth/token/", {"username": "alice", "password": "correct-horse-battery"}, format="json"
        )
        assert response.status_code == 200, response.content
        token = response.json()["token"]
        assert token == Token.objects.get(user=alice).key
        client = APIClient()
        assert_error(client.get("/api/votes/"), 401, "not_authenticated")
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        assert client.get("/api/votes/").status_code == 200

    def test_a_wrong_password_is_a_400_and_no_token(self, api_client, alice):
        response = api_client.post("/api/auth/token/", {"username": "alice", "password": "nope"}, format="json")
        assert_error(response, 400, "invalid_credentials")
        assert not Token.objects.exists()

    def test_missing_fields_are_named(self, api_client):
        error = assert_error(api_client.post("/api/auth/token/", {}, format="json"), 400, "invalid")
        assert set(error["details"]) == {"username", "password"}

    def test_a_bad_token_is_a_401(self, api_client):
        api_client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
        assert_error(api_client.get("/api/galaxies/"), 401, "authentication_failed")

    def test_revoking_the_token_logs_the_client_out(self, alice):

        client = token_client(alice)
        assert client.delete("/api/auth/token/current/").status_code == 204
        assert_error(client.get("/api/votes/"), 401)

    def test_a_deactivated_account_is_refused_at_once(self, alice):
        client = token_client(alice)
        assert client.get("/api/votes/").status_code == 200
        alice.is_active = False
        alice.save(update_fields=["is_active"])
        error = assert_error(client.get("/api/votes/"), 401, "authentication_failed")
        assert "inactive" in error["message"]

    def test_the_token_authenticates_its_own_account_with_everything_read(self, alice, charlie):
        # The token's lookup is written out (giz_site.authentication): the user it gives must be complete.
        Token.objects.create(user=charlie)
        response = token_client(alice).get("/api/votes/")
        assert response.status_code == 200
        user = response.wsgi_request.user
        assert (user.pk, user.username, user.is_active, user.is_staff) == (alice.pk, "alice", True, False)
        assert user.check_password("correct-horse-battery")

    def test_staff_create_tokens_with_a_management_command(self, bob):
        call_command("drf_create_token", "bob")
        assert Token.objects.filter(user=bob).exists()

    def test_the_website_session_works_for_the_api(self, alice_client):
        assert alice_client.get("/api/votes/").status_code == 200


class TestPermissions:
    def test_staff_only_endpoints_refuse_volunteers_with_403(self, alice):

        client = token_client(alice)
        assert_error(client.get("/api/alarms/"), 403, "permission_denied")
        assert_error(client.post("/api/alarms/1/resolve/", {}, format="json"), 403)
        assert_error(client.post("/api/models/1/activate/"), 403)
        assert_error(client.post("/api/galaxies/1/acquire/"), 403)

    def test_anonymous_clients_get_401_on_volunteer_endpoints(self, api_client):
        assert_error(api_client.get("/api/assignments/next/"), 401)
        assert_error(api_client.post("/api/votes/", {}, format="json"), 401)
        assert_error(api_client.get("/api/jobs/"), 401)
        assert_error(api_client.post("/api/inference/position/", {}, format="json"), 401)


def redis_cache(settings) -> None:
    """The production cache: Redis (the test broker's database), keys of this test only."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": broker_url("redis"),
            "KEY_PREFIX": f"test-{uuid.uuid4().hex}",  # no flush: the broker's database is shared
        }
    }


def anon_throttle():
    """The anonymous throttle the API is configured with."""
    return next(c for c in api_settings.DEFAULT_THROTTLE_CLASSES if c.scope == "anon")()


@pytest.fixture(params=["file", "redis"])
def tight_throttles(request, monkeypatch, settings):
    # DRF reads the rates once at import; patch them where the throttles look them up.
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"anon": "3/min", "user": "5/min"})
    if request.param == "redis":  # the log in one script call (giz_site.throttles)
        redis_cache(settings)
        yield
        return
    cache.clear()
    yield
    cache.clear()


class TestThrottling:
    def test_anonymous_clients_are_throttled_with_a_429_saying_when_to_retry(self, api_client, tight_throttles):
        for _ in range(3):
            assert api_client.get("/api/galaxies/").status_code == 200
        response = api_client.get("/api/galaxies/")
        error = assert_error(response, 429, "throttled")
        assert error["details"]["retry_after_s"] > 0
        assert int(response["Retry-After"]) > 0

    def test_each_user_has_their_own_allowance(self, alice, charlie, tight_throttles):

        alice_api, charlie_api = token_client(alice), token_client(charlie)
        for _ in range(5):
            assert alice_api.get("/api/galaxies/").status_code == 200
        assert_error(alice_api.get("/api/galaxies/"), 429, "throttled")
        assert charlie_api.get("/api/galaxies/").status_code == 200

    def test_a_forged_x_forwarded_for_does_not_buy_a_fresh_allowance(self, api_client, tight_throttles):
        for n in range(3):
            assert api_client.get("/api/galaxies/", HTTP_X_FORWARDED_FOR=f"10.0.0.{n}").status_code == 200
        assert_error(api_client.get("/api/galaxies/", HTTP_X_FORWARDED_FOR="10.0.0.99"), 429, "throttled")

    def test_behind_trusted_proxies_the_address_the_proxy_saw_counts(self, api_client, tight_throttles, settings):
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
        # The proxy appends the address it saw; whatever the client wrote before it is ignored.
        for n in range(3):
            forwarded = f"10.0.0.{n}, 203.0.113.7"
            assert api_client.get("/api/galaxies/", HTTP_X_FORWARDED_FOR=forwarded).status_code == 200
        assert_error(api_client.get("/api/galaxies/", HTTP_X_FORWARDED_FOR="9.9.9.9, 203.0.113.7"), 429)
        assert api_client.get("/api/galaxies/", HTTP_X_FORWARDED_FOR="203.0.113.8").status_code == 200

    def test_with_redis_concurrent_requests_cannot_slip_past_the_limit_together(self, monkeypatch, settings):
        # (A file cache, the embedded default, reads and writes the log in two steps, as DRF does.)
        monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"anon": "3/min", "user": "5/min"})
        redis_cache(settings)
        request = APIRequestFactory().get("/api/galaxies/", REMOTE_ADDR="198.51.100.4")
        request.user = AnonymousUser()
        start = threading.Barrier(12)

        def attempt(_):
            throttle = anon_throttle()
            start.wait()
            return throttle.allow_request(request, None)

        with ThreadPoolExecutor(12) as pool:
            allowed = list(pool.map(attempt, range(12)))
        assert allowed.count(True) == 3
        throttle = anon_throttle()
        assert not throttle.allow_request(request, None)
        assert 0 < throttle.wait() <= 60

    def test_counters_live_in_a_cache_every_web_process_shares(self, settings):
        assert settings.CACHES["default"]["BACKEND"] == "django.core.cache.backends.filebased.FileBasedCache"
        assert settings.CACHES["default"]["LOCATION"].startswith(str(settings.DATA_DIR))

    def test_a_per_process_cache_is_a_deployment_warning(self, settings):
        settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
        found = run_checks(include_deployment_checks=True, tags=[Tags.security])
        assert "giz.W003" in [message.id for message in found]


def login(client, username: str, password: str, address: str):
    return client.post(
        "/api/auth/token/", {"username": username, "password": password}, format="json", REMOTE_ADDR=address
    )


class TestLoginLockout:
    """django-axes counts failed logins per account and per address (GIZ_LOGIN_FAILURE_LIMIT, 10 by default)."""

    def test_an_account_guessed_at_from_many_addresses_is_locked_out(self, api_client, alice):
        for n in range(9):
            assert_error(login(api_client, "alice", f"guess-{n}", f"198.51.100.{n}"), 400, "invalid_credentials")
        assert_error(login(api_client, "alice", "guess-9", "198.51.100.9"), 429, "locked_out")  # the 10th failure
        error = assert_error(login(api_client, "alice", "correct-horse-battery", "192.0.2.1"), 429, "locked_out")
        assert error["details"]["retry_after_s"] == 15 * 60
        assert not Token.objects.exists()

    def test_an_address_guessing_many_accounts_is_locked_out(self, api_client, alice, charlie):
        for n in range(9):
            assert_error(login(api_client, f"user{n}", "guess", "198.51.100.1"), 400, "invalid_credentials")
        assert_error(login(api_client, "user9", "guess", "198.51.100.1"), 429, "locked_out")
        assert_error(login(api_client, "charlie", "correct-horse-battery", "198.51.100.1"), 429, "locked_out")
        assert login(api_client, "charlie", "correct-horse-battery", "198.51.100.2").status_code == 200

    def test_a_few_typos_do_not_lock_anyone_out(self, api_client, alice):
        for n in range(3):
            assert_error(login(api_client, "alice", f"typo-{n}", "198.51.100.1"), 400)
        assert login(api_client, "alice", "correct-horse-battery", "198.51.100.1").status_code == 200

    def test_the_admin_login_is_locked_out_too(self, client, bob):
        for n in range(9):
            response = client.post("/admin/login/", {"username": "bob", "password": f"guess-{n}"})
            assert response.status_code == 200  # the form again, with its error
        assert client.post("/admin/login/", {"username": "bob", "password": "guess-9"}).status_code == 429
        response = client.post("/admin/login/", {"username": "bob", "password": "correct-horse-battery"})
        assert response.status_code == 429
        assert b"Too many failed logins" in response.content
        assert "_auth_user_id" not in client.session


class TestCors:
    def test_cross_origin_requests_are_not_allowed_by_default(self, api_client):
        response = api_client.options(
            "/api/galaxies/", HTTP_ORIGIN="https://evil.example", HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET"
        )
        assert "Access-Control-Allow-Origin" not in response
        response = api_client.get("/api/galaxies/", HTTP_ORIGIN="https://evil.example")
        assert "Access-Control-Allow-Origin" not in response

    def test_a_listed_origin_is_allowed(self, api_client, settings):
        settings.CORS_ALLOWED_ORIGINS = ["https://astro.example"]
        response = api_client.get("/api/galaxies/", HTTP_ORIGIN="https://astro.example")
        assert response["Access-Control-Allow-Origin"] == "https://astro.example"


class TestSchemaAndDocs:
    def test_the_openapi_schema_documents_every_area_and_the_error_format(self, api_client):
        response = api_client.get("/api/schema/?format=json")
        assert response.status_code == 200
        schema = response.json()
        paths = schema["paths"]
        for path in [
            "/api/galaxies/",
            "/api/galaxies/{pgc}/",
            "/api/standards/",
            "/api/votes/",
            "/api/assignments/next/",
            "/api/inference/upload/",
            "/api/inference/pgc/{pgc}/",
            "/api/inference/position/",
            "/api/jobs/",
            "/api/jobs/{job_id}/results/",
            "/api/models/",
            "/api/alarms/",
            "/api/pgc/{pgc}",
            "/api/objname/{objname}",
            "/api/file",
        ]:
            assert path in paths, path
        assert paths["/api/galaxies/"]["get"]["responses"]["400"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Error"
        }
        assert schema["components"]["schemas"]["Error"]["required"] == ["error"]

    def test_the_schema_is_valid_openapi_without_generator_warnings(self, tmp_path):
        out = tmp_path / "schema.yaml"
        call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
        assert "openapi: 3" in out.read_text()

    @pytest.mark.parametrize("page", ["/api/docs/", "/api/redoc/"])
    def test_swagger_and_redoc_pages_render(self, api_client, page):
        response = api_client.get(page)
        assert response.status_code == 200
        assert b"/api/schema/" in response.content


class TestUnknownUrls:
    @pytest.mark.parametrize("method", ["get", "post", "delete"])
    def test_unknown_api_urls_are_json_404s(self, api_client, method):
        assert_error(getattr(api_client, method)("/api/no-such-thing/"), 404, "not_found")

    def test_a_missing_slash_is_pointed_out(self, api_client):
        error = assert_error(api_client.get("/api/galaxies"), 404, "not_found")
        assert "/api/galaxies/" in error["message"]

    def test_a_wrong_method_is_a_405_in_the_error_format(self, api_client):
        assert_error(api_client.delete("/api/galaxies/"), 405, "method_not_allowed")
