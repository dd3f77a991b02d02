"""Who a request comes from, for the API throttles and login lockouts, and the answer to a locked-out login.

Both read the client address the same way: DRF's, which trusts only GIZ_NUM_PROXIES entries of
X-Forwarded-For (a client can put anything before them). Counters live in the shared cache (throttles) and
the database (django-axes), so every web process sees the same counts.
"""

import math

from django.conf import settings
from django.http import JsonResponse
from django.shortcuts import render
from rest_framework.throttling import BaseThrottle

from giz_site.error_views import is_api_request
from giz_site.exceptions import error_body


def client_ip(request) -> str:
    """The client's address as the outermost trusted proxy saw it (REMOTE_ADDR without proxies)."""
    return BaseThrottle().get_ident(request)


def lockout_response(request, original_response=None, credentials=None):
    """django-axes' answer while an account or address is locked out: JSON 429 under /api/, a page elsewhere."""
    retry_after_s = math.ceil(settings.AXES_COOLOFF_TIME * 3600)
    message = (
        "Too many failed logins for this account or from this address; "
        f"try again in {math.ceil(retry_after_s / 60)} minutes."
    )
    if is_api_request(request):
        response = JsonResponse(
            error_body(code="locked_out", message=message, details={"retry_after_s": retry_after_s}), status=429
        )
    else:
        response = render(request, "registration/locked_out.html", {"message": message}, status=429)
    response["Retry-After"] = str(retry_after_s)
    return response
