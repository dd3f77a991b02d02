"""Admin pagination that never counts a whole large table."""

from django.core.paginator import Paginator
from django.db import connections
from django.utils.functional import cached_property

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
