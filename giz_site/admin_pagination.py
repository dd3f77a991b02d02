"""Admin for large tables: pagination that never counts a whole table, defaults that avoid N+1."""

from django.contrib import admin
from django.core.paginator import Paginator
from django.db import connections
from django.utils.functional import cached_property
from django.utils.html import format_html

COUNT_CAP = 10_000


class LargeTablePaginator(Paginator):
    """Counts at most COUNT_CAP rows, or uses PostgreSQL's own row estimate for an unfiltered table.

    Exact counts of a million-row table cost a sequential scan on every admin page load.
    """

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        query = getattr(queryset, "query", None)
        if query is None:
            return len(queryset)
        if not query.where and connections[queryset.db].vendor == "postgresql":
            with connections[queryset.db].cursor() as cursor:
                cursor.execute(
                    "SELECT reltuples::bigint FROM pg_class WHERE relname = %s", [queryset.model._meta.db_table]
                )
                row = cursor.fetchone()
            if row and row[0] > COUNT_CAP:
                return int(row[0])
        return queryset.order_by()[: COUNT_CAP + 1].count()


class LargeTableAdmin(admin.ModelAdmin):
    """Admin defaults for tables that grow to millions of rows: no full counts, no N+1."""

    paginator = LargeTablePaginator
    show_full_result_count = False
    list_per_page = 50


def image_thumbnail(file, size: int = 64, alt: str = "") -> str:
    """An <img> of a stored image file (a FieldFile), or "-" without one."""
    if not file:
        return "-"
    return format_html('<img src="{}" width="{}" height="{}" alt="{}" loading="lazy">', file.url, size, size, alt)
