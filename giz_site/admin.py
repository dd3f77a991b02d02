from django.contrib import admin
from django.utils.html import format_html

from giz_site.models import BackgroundRun, WorkerHeartbeat

admin.site.site_header = "Galaxy Inclination Zoo administration"
admin.site.site_title = "Galaxy Inclination Zoo"
admin.site.index_title = "Galaxies, votes, models and alarms"


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(admin.ModelAdmin):
    list_display = ["hostname", "last_seen"]
    readonly_fields = ["hostname", "last_seen"]


def progress_bar(fraction: float) -> str:
    return format_html(
        '<progress value="{}" max="100" style="width:8em"></progress> {}%', round(100 * fraction), round(100 * fraction)
    )


class BackgroundRunAdmin(admin.ModelAdmin):
    """The admin of every background run: its progress as a bar, its life read-only."""

    @admin.display(description="progress")
    def progress_display(self, run: BackgroundRun) -> str:
        return progress_bar(run.progress)
