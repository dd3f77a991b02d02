"""Django's error pages: the API's JSON error contract under /api/, Django's HTML pages elsewhere.

DRF answers errors raised inside API views itself; these cover what happens outside them: a disallowed Host
or a malformed request refused by middleware (400), an unmatched URL (404) and unhandled bugs (500).
"""

from django.core.exceptions import DisallowedHost
from django.http import JsonResponse
from django.views import defaults

from giz_site.exceptions import error_body

API_PREFIX = "/api/"


def is_api_request(request) -> bool:
    return request.path.startswith(API_PREFIX)


def api_error_response(*, status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse(error_body(code=code, message=message), status=status)


def bad_request(request, exception, template_name=defaults.ERROR_400_TEMPLATE_NAME):
    if not is_api_request(request):
        return defaults.bad_request(request, exception, template_name)
    if isinstance(exception, DisallowedHost):
        return api_error_response(status=400, code="bad_host", message="This server does not answer for that Host.")
    return api_error_response(status=400, code="bad_request", message="The request could not be read.")


def page_not_found(request, exception, template_name=defaults.ERROR_404_TEMPLATE_NAME):
    if not is_api_request(request):
        return defaults.page_not_found(request, exception, template_name)
    return api_error_response(status=404, code="not_found", message="No API endpoint at this URL; see /api/docs/.")


def server_error(request, template_name=defaults.ERROR_500_TEMPLATE_NAME):
    if not is_api_request(request):
        return defaults.server_error(request, template_name)
    return api_error_response(
        status=500, code="server_error", message="The server failed on this request; the error is logged."
    )
