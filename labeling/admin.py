from django.contrib import admin, messages

from giz_site.admin import BackgroundRunAdmin
from giz_site.admin_pagination import LargeTableAdmin, image_thumbnail
from labeling import selectors
from labeling.models import (
    Assignment,
    ConsensusLabel,
    ConsensusRun,
    Galaxy,
    StandardGalaxy,
    Survey,
    VolunteerProfile,
    Vote,
)
from labeling.services.surveys import mark_needs_adaptation


class VoteInline(admin.TabularInline):
    model = Vote
    extra = 0
    fields = ["volunteer", "inclination", "flag", "not_sure", "seconds_taken", "created_at"]
    readonly_fields = fields
    can_delete = False
    show_change_link = True

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("volunteer")


@admin.register(Galaxy)
class GalaxyAdmin(LargeTableAdmin):
    list_display = [
        "pgc",
        "thumbnail",
        "name",
        "ra",
        "dec",
        "d25_arcmin",
        "source",
        "survey",
        "state",
        "votes_count",
        "is_gold",
        "retired_at",
    ]
    list_filter = ["state", "source", "survey", "is_gold"]
    list_select_related = ["survey"]
    search_fields = ["=pgc", "^name"]
    readonly_fields = ["votes_count", "survey_priority", "created_at", "updated_at", "large_image"]
    inlines = [VoteInline]

    def get_search_results(self, request, queryset, search_term):
        # The whole term is one PGC number or the start of one name: both are index lookups.
        term = search_term.strip()
        if not term:
            return queryset, False
        number = term.upper().removeprefix("PGC").strip()
        if number.isdigit():
            return queryset.filter(pgc=int(number)) | queryset.filter(name__istartswith=term), False
        return queryset.filter(name__istartswith=term), False

    @admin.display(description="image")
    def thumbnail(self, galaxy: Galaxy) -> str:
        return image_thumbnail(galaxy.color_image, alt=str(galaxy))

    @admin.display(description="colour image")
    def large_image(self, galaxy: Galaxy) -> str:
        return image_thumbnail(galaxy.color_image, size=256, alt=str(galaxy))


@admin.register(Survey)
class SurveyAdmin(admin.ModelAdmin):
    """The surveys galaxies come from. "Needs adaptation" moves a survey's galaxies to the front of the labeling
    queue, so it is set through the actions (which do that), not edited by hand."""

    list_display = [
        "slug",
        "name",
        "source_kind",
        "pixel_scale",
        "bands",
        "data_release",
        "is_reference",
        "needs_adaptation",
        "galaxies_count",
        "accepted_labels_count",
    ]
    list_filter = ["source_kind", "needs_adaptation"]
    readonly_fields = ["is_reference", "needs_adaptation", "adaptation_reason", "created_at"]
    prepopulated_fields = {"slug": ["name"]}
    actions = ["mark_needs_adaptation", "clear_needs_adaptation"]

    def get_queryset(self, request):
        return selectors.surveys_list()

    @admin.display(description="galaxies", ordering="galaxies_count")
    def galaxies_count(self, survey: Survey) -> int:
        return survey.galaxies_count

    @admin.display(description="consensus labels (accepted)", ordering="accepted_labels_count")
    def accepted_labels_count(self, survey: Survey) -> int:
        return survey.accepted_labels_count

    @admin.action(description="Mark as needing adaptation (volunteers see its galaxies first)")
    def mark_needs_adaptation(self, request, queryset):
        for survey in queryset:
            mark_needs_adaptation(survey, True, f"Marked by {request.user} in the admin.")
        self.message_user(request, f"{len(queryset)} survey(s) marked: their galaxies come first.", messages.SUCCESS)

    @admin.action(description="Clear needing adaptation")
    def clear_needs_adaptation(self, request, queryset):
        for survey in queryset:
            mark_needs_adaptation(survey, False, f"Cleared by {request.user} in the admin.")
        self.message_user(request, f"{len(queryset)} survey(s) cleared.", messages.SUCCESS)


@admin.register(StandardGalaxy)
class StandardGalaxyAdmin(LargeTableAdmin):
    list_display = ["galaxy", "thumbnail", "inclination", "inclination_source", "active"]
    list_filter = ["active"]
    search_fields = ["=galaxy__pgc", "^galaxy__name"]
    raw_id_fields = ["galaxy"]
    list_select_related = ["galaxy"]

    @admin.display(description="image")
    def thumbnail(self, standard: StandardGalaxy) -> str:
        return image_thumbnail(standard.galaxy.color_image, alt=str(standard.galaxy))


@admin.register(Vote)
class VoteAdmin(LargeTableAdmin):
    list_display = [
        "id",
        "galaxy",
        "volunteer",
        "inclination",
        "flag",
        "not_sure",
        "seconds_taken",
        "was_gold",
        "created_at",
    ]
    list_filter = ["flag", "not_sure", "was_gold"]
    search_fields = ["=galaxy__pgc", "=volunteer__username"]
    list_select_related = ["galaxy", "volunteer"]
    raw_id_fields = ["galaxy", "volunteer", "left_standard", "right_standard"]


@admin.register(ConsensusLabel)
class ConsensusLabelAdmin(LargeTableAdmin):
    list_display = ["galaxy", "status", "inclination", "uncertainty", "n_votes", "updated_at"]
    list_filter = ["status"]
    search_fields = ["=galaxy__pgc", "^galaxy__name"]
    list_select_related = ["galaxy"]
    raw_id_fields = ["galaxy"]


@admin.register(VolunteerProfile)
class VolunteerProfileAdmin(LargeTableAdmin):
    list_display = [
        "user",
        "display_name",
        "votes_count",
        "gold_votes_count",
        "weight",
        "bias",
        "scale",
        "sigma",
        "flag_accuracy",
        "votes_counted",
    ]
    search_fields = ["=user__username", "display_name"]
    # Written by the nightly refit of the volunteer model: editing them by hand would be undone.
    readonly_fields = [
        "weight",
        "bias",
        "scale",
        "sigma",
        "flag_accuracy",
        "votes_counted",
        "calibration_slope",
        "calibration_intercept",
    ]
    list_select_related = ["user"]
    raw_id_fields = ["user"]


@admin.register(Assignment)
class AssignmentAdmin(LargeTableAdmin):
    """Galaxies served to volunteers: open ones reserve a vote until they are used or expire."""

    list_display = ["id", "galaxy", "volunteer", "is_gold", "issued_at", "expires_at", "used_at"]
    list_filter = ["is_gold"]
    search_fields = ["=galaxy__pgc", "=volunteer__username"]
    list_select_related = ["galaxy", "volunteer"]
    raw_id_fields = ["galaxy", "volunteer"]
    readonly_fields = ["token", "standard_ids", "issued_at", "expires_at", "used_at"]


@admin.register(ConsensusRun)
class ConsensusRunAdmin(BackgroundRunAdmin):
    """Full consensus recomputations: status and progress while the nightly task runs."""

    list_display = ["id", "status", "progress_display", "started_at", "heartbeat_at", "finished_at"]
    list_filter = ["status"]
    readonly_fields = [
        "status",
        "progress_display",
        "total",
        "done",
        "stats",
        "error",
        "started_at",
        "heartbeat_at",
        "finished_at",
    ]

    def has_add_permission(self, request):
        return False
