"""One error contract for the API: every 4xx is {"error": {"code", "message", "details"}}."""

from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler


class ApplicationError(Exception):
    """A failure the client can act on; services raise it, the API maps it to a 4xx."""

    def __init__(self, message: str, *, code: str = "invalid", details: dict | None = None, status_code: int = 400):
        super().__init__(message)
        self.message = message
        self.code = code
        self.details = details or {}
        self.status_code = status_code


def invalid_input(errors: dict) -> ApplicationError:
    """A serializer's errors as the one error contract; the message names each field, for pages that show it."""
    problems = "; ".join(f"{field}: {' '.join(str(m) for m in _flat(messages))}" for field, messages in errors.items())
    return ApplicationError(f"The request is not valid ({problems}).", code="invalid", details=errors)


def _flat(messages) -> list:
    if isinstance(messages, dict):
        return [m for value in messages.values() for m in _flat(value)]
    if isinstance(messages, list):
        return [m for value in messages for m in _flat(value)]
    return [messages]


def error_body(*, code: str, message: str, details=None) -> dict:
    return {"error": {"code": code, "message": message, "details": details or {}}}


# Image failures that mean "too big" answer 413 so clients can tell them from unreadable files.
IMAGE_TOO_LARGE_CODES = {"too_large", "too_many_pixels"}


def _image_error_response(exc) -> Response:
    code = getattr(exc, "code", "invalid_image")
    http_status = (
        status.HTTP_413_REQUEST_ENTITY_TOO_LARGE if code in IMAGE_TOO_LARGE_CODES else status.HTTP_400_BAD_REQUEST
    )
    message = getattr(exc, "reason", str(exc))
    return Response(error_body(code=code, message=message, details={"field": "file"}), status=http_status)


def _is_image_error(exc) -> bool:
    # Imported lazily: the imaging unit is Django-free and must not be needed to load the API.
    try:
        from inference.imaging import ImageError
    except ImportError:  # pragma: no cover - the module is always there in a full checkout
        return False
    return isinstance(exc, ImageError)


def api_exception_handler(exc, context):
    if isinstance(exc, ApplicationError):
        return Response(error_body(code=exc.code, message=exc.message, details=exc.details), status=exc.status_code)
    if _is_image_error(exc):
        return _image_error_response(exc)
    if isinstance(exc, RequestDataTooBig):
        return Response(
            error_body(code="too_large", message="The request body is larger than the server accepts."),
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, SuspiciousOperation):
        # Malformed multipart bodies, too many fields and the like: the client's fault, never a 500.
        return Response(
            error_body(code="bad_request", message="The request could not be read."),
            status=status.HTTP_400_BAD_REQUEST,
        )
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()

    response = exception_handler(exc, context)
    if response is None:
        return None  # a real bug: let Django log it and answer 500
    if isinstance(exc, exceptions.ValidationError):
        details = response.data if isinstance(response.data, dict) else {"non_field_errors": response.data}
        invalid = invalid_input(details)
        body = error_body(code=invalid.code, message=invalid.message, details=details)
    else:
        detail = response.data.get("detail", "") if isinstance(response.data, dict) else response.data
        code = getattr(exc, "default_code", "error")
        if isinstance(exc, exceptions.APIException) and hasattr(exc.detail, "code"):
            code = exc.detail.code or code
        body = error_body(code=str(code), message=str(detail))
    response.data = body
    if response.status_code == status.HTTP_429_TOO_MANY_REQUESTS and getattr(exc, "wait", None):
        response.data["error"]["details"] = {"retry_after_s": exc.wait}
    return response
