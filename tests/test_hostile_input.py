"""Hostile requests: deep JSON, non-finite numbers, bad hosts, over-long URLs and headers, NUL characters and
query strings the admin must parse; every one a clear 4xx (JSON under /api/), never a 500."""

import io
import runpy

import numpy as np
import pytest
from astropy.io import fits
from PIL import Image
from rest_framework.authtoken.models import Token

from labeling import apis as labeling_apis
from labeling import selectors as labeling_selectors
from tests.api_fixtures import (
    assert_error,
    ensemble,  # noqa: F401
    fresh_ensemble,  # noqa: F401
    token_client,
    upload,
)
from tests.factories import GalaxyFactory

pytestmark = pytest.mark.django_db


def nested(levels: int) -> str:
    return "[" * levels + "]" * levels


def login_with(extra: str) -> str:
    """Alice's valid login as JSON text, with one more member whose value is `extra`."""
    return '{"username": "alice", "password": "correct-horse-battery", "x": ' + extra + "}"


def reshuffle_with(degrees: str) -> str:
    return '{"token": "t", "degrees": ' + degrees + "}"


class TestJsonParsing:
    @pytest.mark.parametrize("levels", [33, 1_000, 100_000])
    def test_json_nested_past_the_limit_is_a_400_naming_it_even_anonymously(self, api_client, alice, levels):
        response = api_client.post(
            "/api/auth/token/",
            login_with(nested(levels)),
            content_type="application/json",
        )
        error = assert_error(response, 400, "parse_error")
        assert "limit of 32 levels" in error["message"]
        assert not Token.objects.exists()

    def test_json_within_the_limit_is_parsed(self, api_client, alice):
        response = api_client.post(
            "/api/auth/token/",
            login_with(nested(30)),
            content_type="application/json",
        )
        assert response.status_code == 200, response.content

    def test_brackets_inside_strings_do_not_count(self, api_client, alice):
        response = api_client.post(
            "/api/auth/token/",
            login_with('"' + "[" * 100 + '\\"["'),
            content_type="application/json",
        )
        assert response.status_code == 200, response.content

    def test_the_limit_holds_on_authenticated_endpoints(self, alice):
        body = reshuffle_with(nested(5_000))
        error = assert_error(
            token_client(alice).post("/api/assignments/reshuffle/", body, content_type="application/json"),
            400,
            "parse_error",
        )
        assert "32" in error["message"]

    @pytest.mark.parametrize("number", ["1e999", "-1e999", "Infinity", "NaN"])
    def test_non_finite_numbers_are_refused(self, alice, number):
        body = reshuffle_with(f"[{number}]")
        response = token_client(alice).post("/api/assignments/reshuffle/", body, content_type="application/json")
        assert_error(response, 400, "parse_error")

    def test_a_json_body_over_the_size_limit_is_a_413_before_it_is_parsed(self, api_client, alice):
        body = login_with("[" + "[]," * 400_000 + "[]]")  # 1.2 MB of shallow brackets
        error = assert_error(
            api_client.post("/api/auth/token/", body, content_type="application/json"), 413, "too_large"
        )
        assert error["details"]["max_bytes"] == 2**20
        assert not Token.objects.exists()

    def test_a_body_that_is_not_text_in_its_charset_is_a_400(self, api_client):
        response = api_client.post("/api/auth/token/", b"\xff\xfe{", content_type="application/json; charset=utf-8")
        assert_error(response, 400, "parse_error")


@pytest.fixture
def server_client(client):
    """The test client answering as a server does, with handler500, instead of raising the view's exception."""
    client.raise_request_exception = False
    return client


def fail(*args, **kwargs):
    raise RuntimeError("a bug")


class TestErrorPages:
    def test_an_unhandled_error_under_api_is_a_json_500(self, server_client, monkeypatch):
        monkeypatch.setattr(labeling_apis.GalaxyListApi, "get", fail)
        error = assert_error(server_client.get("/api/galaxies/"), 500, "server_error")
        assert "a bug" not in error["message"]

    def test_an_unhandled_error_on_the_website_is_an_html_500(self, server_client, monkeypatch):
        monkeypatch.setattr(labeling_selectors, "leaderboard", fail)
        response = server_client.get("/leaderboard/")
        assert response.status_code == 500
        assert response["Content-Type"].startswith("text/html")

    def test_a_disallowed_host_under_api_is_a_json_400(self, client):
        assert_error(client.get("/api/galaxies/", HTTP_HOST="evil.example"), 400, "bad_host")
        assert_error(client.post("/api/auth/token/", {}, HTTP_HOST="evil.example"), 400, "bad_host")

    def test_a_disallowed_host_on_the_website_is_an_html_400(self, client):
        response = client.get("/leaderboard/", HTTP_HOST="evil.example")
        assert response.status_code == 400
        assert response["Content-Type"].startswith("text/html")

    def test_an_over_long_url_under_api_is_a_json_414(self, client):
        error = assert_error(client.get("/api/galaxies/", {"search": "x" * 5_000}), 414, "url_too_long")
        assert "4096" in error["message"]
        assert_error(client.get("/api/" + "a/" * 3_000), 414, "url_too_long")

    def test_an_over_long_url_on_the_website_is_an_html_414(self, client):
        response = client.get("/leaderboard/", {"x": "x" * 5_000})
        assert response.status_code == 414
        assert response["Content-Type"].startswith("text/html")

    def test_an_over_long_header_under_api_is_a_json_431_naming_it(self, client):
        error = assert_error(client.get("/api/galaxies/", HTTP_X_JUNK="j" * 9_000), 431, "header_too_long")
        assert "X-Junk" in error["message"]

    def test_requests_within_the_limits_are_served(self, client):
        assert client.get("/api/galaxies/", {"x": "x" * 3_000}, HTTP_X_JUNK="j" * 8_000).status_code == 200

    def test_gunicorn_lets_through_what_the_app_refuses_with_a_clear_answer(self, settings):
        config = runpy.run_path(str(settings.BASE_DIR / "giz_site" / "gunicorn.conf.py"))
        assert config["limit_request_line"] > settings.GIZ_MAX_URL_CHARS + len("DELETE  HTTP/1.1")
        assert config["limit_request_field_size"] > settings.GIZ_MAX_HEADER_CHARS + 100


class TestNulAndAdminQueryStrings:
    @pytest.mark.parametrize(
        "url",
        [
            "/admin/labeling/galaxy/?state__exact=%00",
            "/admin/labeling/galaxy/?q=a%00b",
            "/admin/labeling/vote/?flag__exact=%00",
        ],
    )
    def test_a_nul_in_an_admin_query_string_is_a_400(self, bob_client, url):
        GalaxyFactory()
        response = bob_client.get(url)
        assert response.status_code == 400
        assert b"NUL" in response.content

    def test_a_nul_under_api_is_a_json_400(self, api_client):
        assert_error(api_client.get("/api/objname/NGC%00224"), 400, "nul_character")
        assert_error(api_client.get("/api/galaxies/?search=%00"), 400, "nul_character")

    @pytest.mark.parametrize("ids", ["\u00b2", "1,\u00b2", "\u0661", "1,,2", "99999999999999999999", "-1"])
    def test_model_compare_refuses_ids_that_are_not_ids(self, bob_client, ids):
        response = bob_client.get("/admin/inference/modelversion/compare/", {"ids": ids})
        assert response.status_code == 400
        assert b"ids must be model version ids" in response.content

    def test_model_compare_still_compares(self, bob_client):
        assert bob_client.get("/admin/inference/modelversion/compare/", {"ids": "1,2"}).status_code == 200

    @pytest.mark.parametrize(
        "query", [{"o": "\u00b2"}, {"p": "\u00b2"}, {"is_gold__exact": "\u00b2"}, {"state__exact": "x" * 100}]
    )
    def test_other_odd_changelist_parameters_never_fail(self, bob_client, query):
        GalaxyFactory()
        assert bob_client.get("/admin/labeling/galaxy/", query).status_code in (200, 302)


def post_file(client, data: bytes, name: str):
    return client.post("/api/file", {"file": upload(name, data, "application/octet-stream")}, format="multipart")


def image_bytes(fmt: str, frames: list[np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    images = [Image.fromarray(frame) for frame in frames]
    images[0].save(buffer, format=fmt, save_all=len(images) > 1, append_images=images[1:])
    return buffer.getvalue()


def blob(height: int, width: int) -> np.ndarray:
    rows, cols = np.mgrid[:height, :width]
    r2 = ((rows - height / 2) / (height / 5)) ** 2 + ((cols - width / 2) / (width / 5)) ** 2
    return (255 * np.exp(-r2)).astype(np.uint8)


@pytest.mark.usefixtures("ensemble")
class TestUploadBudget:
    def test_a_small_tile_compressed_fits_of_36_megapixels_is_refused_undecompressed(self, api_client, monkeypatch):
        buffer = io.BytesIO()
        image = fits.CompImageHDU(np.zeros((6000, 6000), np.float32), compression_type="RICE_1")
        fits.HDUList([fits.PrimaryHDU(), image]).writeto(buffer)
        assert len(buffer.getvalue()) < 2**20  # under /api/file's 1 MB

        def decompress(*args, **kwargs):
            raise AssertionError("a tile was decompressed")

        monkeypatch.setattr(fits.CompImageHDU, "data", property(decompress))
        response = post_file(api_client, buffer.getvalue(), "bomb.fits")
        body = response.json()
        assert response.status_code == 413
        assert body["status"] == "failed" and body["error"]["code"] == "too_many_pixels"
        assert "4,194,304" in body["error"]["message"]

    def test_an_animated_gif_is_answered_from_its_first_frame(self, api_client):
        frames = [blob(64, 64), np.zeros((64, 64), np.uint8), np.full((64, 64), 255, np.uint8)]
        animated = post_file(api_client, image_bytes("GIF", frames), "spin.gif")
        assert animated.status_code == 200, animated.content[:300]
        still = post_file(api_client, image_bytes("GIF", frames[:1]), "still.gif")
        assert animated.json()["inclinations"] == still.json()["inclinations"]

    def test_a_ten_to_one_image_is_padded_to_square_and_answered(self, api_client):
        response = post_file(api_client, image_bytes("PNG", [blob(40, 400)]), "wide.png")
        assert response.status_code == 200, response.content[:300]
        assert response.json()["status"] == "success"
