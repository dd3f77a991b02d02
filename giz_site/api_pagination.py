"""Cursor pagination for APIViews, with a hard page-size limit that answers 400 instead of clamping.

Cursors keep deep pages as cheap as the first one (no OFFSET scan) and stay stable while rows are added.
"""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError
from rest_framework import serializers
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


class StrictCursorPagination(CursorPagination):
    page_size = DEFAULT_PAGE_SIZE
    max_page_size = MAX_PAGE_SIZE
    page_size_query_param = "page_size"
    ordering = "-id"

    def paginate_queryset(self, queryset, request, view=None):
        # A hand-made cursor can carry a position of the wrong type or size ("p=abc" on an integer
        # ordering, or 30 digits for a bigint); that is a bad cursor (404), not a server error.
        try:
            return super().paginate_queryset(queryset, request, view)
        except (ValueError, TypeError, OverflowError, DjangoValidationError, DataError):
            raise NotFound(self.invalid_cursor_message) from None

    def get_page_size(self, request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw in (None, ""):
            return self.page_size
        try:
            size = int(raw)
        except ValueError:
            raise ValidationError({"page_size": ["A whole number is required."]}) from None
        if not 1 <= size <= self.max_page_size:
            # Silently clamping would hide a client bug; say what the limit is.
            raise ValidationError({"page_size": [f"Must be between 1 and {self.max_page_size}."]})
        return size


def cursor_pagination(ordering: str | tuple[str, ...]) -> type[StrictCursorPagination]:
    """A pagination class ordered by `ordering`; the first field must be unique or nearly so."""
    return type("CursorPagination", (StrictCursorPagination,), {"ordering": ordering})


def paginated_response(*, queryset, serializer_class, request, view, ordering="-id") -> Response:
    """Paginate `queryset` with a cursor, serialise the page and wrap it as {next, previous, results}."""
    paginator = cursor_pagination(ordering)()
    page = paginator.paginate_queryset(queryset, request, view=view)
    serializer = serializer_class(page, many=True, context={"request": request})
    return paginator.get_paginated_response(serializer.data)


def paginated_serializer(item_serializer: type[serializers.Serializer], *, name: str) -> type[serializers.Serializer]:
    """The schema of one page of `item_serializer` items (for extend_schema responses)."""
    meta = type("Meta", (), {"ref_name": name})
    return type(
        f"{name}Serializer",
        (serializers.Serializer,),
        {
            "next": serializers.URLField(allow_null=True, help_text="The next page, or null on the last page."),
            "previous": serializers.URLField(allow_null=True),
            "results": item_serializer(many=True),
            "Meta": meta,
        },
    )


def pagination_parameters():
    """OpenAPI query parameters shared by every paginated list."""
    from drf_spectacular.types import OpenApiTypes
    from drf_spectacular.utils import OpenApiParameter

    return [
        OpenApiParameter("cursor", OpenApiTypes.STR, description="Opaque cursor from `next` or `previous`."),
        OpenApiParameter(
            "page_size",
            OpenApiTypes.INT,
            description=f"Items per page, 1-{MAX_PAGE_SIZE} (default {DEFAULT_PAGE_SIZE}).",
        ),
    ]
