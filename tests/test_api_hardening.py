"""Hostile input to the API: deep JSON, non-finite numbers, unhandled errors and bad hosts, all in the error format."""

import pytest
from rest_framework.authtoken.models import Token

from tests.api_fixtures import assert_error, token_client

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

    def test_a_body_that_is_not_text_in_its_charset_is_a_400(self, api_client):
        response = api_client.post("/api/auth/token/", b"\xff\xfe{", content_type="application/json; charset=utf-8")
        assert_error(response, 400, "parse_error")
