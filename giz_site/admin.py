from django.contrib import admin

from giz_site.models import WorkerHeartbeat

admin.site.site_header = "Galaxy Inclination Zoo administration"
admin.site.site_title = "Galaxy Inclination Zoo"
admin.site.index_title = "Galaxies, votes, models and alarms"


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(admin.ModelAdmin):
    list_display = ["hostname", "last_seen"]
    readonly_fields = ["hostname", "last_seen"]
