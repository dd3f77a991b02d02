"""Request limits checked before anything else: over-long URLs and headers get a clear 414/431, and a NUL
character in the URL a 400 (PostgreSQL text cannot hold one, so every lookup with it would fail as a 500).

gunicorn (giz_site/gunicorn.conf.py) lets through more than these limits, so everything it passes on is judged
here and answers the API's error contract under /api/; only requests past gunicorn's own limits get its plain
400 page.
"""

from urllib.parse import unquote

from django.conf import settings
from django.http import HttpResponse

from giz_site.error_views import api_error_response, is_api_request


def _refusal(request, *, status: int, code: str, message: str):
    if is_api_request(request):
        return api_error_response(status=status, code=code, message=message)
    return HttpResponse(f"<!doctype html><title>{status}</title><h1>{message}</h1>", status=status)


class RequestLimitsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        url_chars = len(request.META.get("PATH_INFO", "")) + len(request.META.get("QUERY_STRING", ""))
        if url_chars > settings.GIZ_MAX_URL_CHARS:
            return _refusal(
                request,
                status=414,
                code="url_too_long",
                message=f"The URL is longer than {settings.GIZ_MAX_URL_CHARS} characters.",
            )
        if "\x00" in request.path_info or "\x00" in unquote(request.META.get("QUERY_STRING", "")):
            return _refusal(request, status=400, code="nul_character", message="The URL holds a NUL character (%00).")
        for key, value in request.META.items():
            if key.startswith("HTTP_") and isinstance(value, str) and len(value) > settings.GIZ_MAX_HEADER_CHARS:
                name = key[5:].replace("_", "-").title()
                return _refusal(
                    request,
                    status=431,
                    code="header_too_long",
                    message=f"The {name} header is longer than {settings.GIZ_MAX_HEADER_CHARS} characters.",
                )
        return self.get_response(request)
