"""Galaxies as volunteers see them, standard galaxies, votes and consensus labels."""

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Cast, Floor

from giz_site.models import BackgroundRun
from labeling.sky import ZONES_PER_DEG


class Survey(models.Model):
    """Where a galaxy's images come from: a telescope survey with its pixel scale, bands and image source.

    Galaxies and their images belong to one; consensus labels and predictions belong to it through them.
    Models are trained on the reference survey (SDSS) and tested on, then adapted to, the others.
    """

    class SourceKind(models.TextChoices):
        SDSS = "sdss", "SDSS cutout service"
        HIPS = "hips", "HiPS survey through hips2fits"
        TEMPLATE = "template", "Cutout URL template"

    slug = models.SlugField(
        max_length=32, unique=True, help_text='Short name used by commands and the API, e.g. "sdss".'
    )
    name = models.CharField(max_length=128)
    pixel_scale = models.FloatField("arcsec/pixel", help_text="Native pixel scale of the survey's images.")
    bands = models.CharField(
        max_length=16, blank=True, help_text='Passbands served as separate images, e.g. "gri"; empty: colour only.'
    )
    source_kind = models.CharField(max_length=16, choices=SourceKind.choices)
    hips_id = models.CharField(
        "HiPS id", max_length=255, blank=True, help_text='e.g. "CDS/P/DESI-Legacy-Surveys/DR10/color".'
    )
    url_template = models.CharField(
        max_length=1024, blank=True, help_text="Cutout URL with {ra}, {dec}, {size}, {scale} and {band} placeholders."
    )
    data_release = models.CharField(max_length=32, blank=True)
    is_reference = models.BooleanField(default=False, help_text="The survey the models are trained on (SDSS).")
    needs_adaptation = models.BooleanField(
        default=False, help_text="The models fall short on it: volunteers see its galaxies first."
    )
    adaptation_reason = models.TextField(blank=True, help_text="Why needs_adaptation was last set or cleared.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-is_reference", "slug"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_reference"], condition=Q(is_reference=True), name="one_reference_survey"
            ),
            models.CheckConstraint(condition=Q(pixel_scale__gt=0), name="survey_pixel_scale_positive"),
            models.CheckConstraint(condition=~Q(source_kind="hips") | ~Q(hips_id=""), name="survey_hips_has_id"),
            models.CheckConstraint(
                condition=~Q(source_kind="template") | ~Q(url_template=""), name="survey_template_has_url"
            ),
        ]

    def __str__(self) -> str:
        return self.name


def default_survey_id() -> int:
    """The reference survey: what a galaxy or image made without naming a survey belongs to."""
    from labeling.services.surveys import reference_survey  # the service creates it when a flush removed it

    return reference_survey().pk


class Galaxy(models.Model):
    class Source(models.TextChoices):
        SDSS = "sdss", "SDSS"
        SYNTHETIC = "synthetic", "Synthetic"
        UPLOAD = "upload", "Upload"

    class State(models.TextChoices):
        NEW = "new", "Catalogued, no image yet"
        ACQUIRING = "acquiring", "Acquiring images"
        READY = "ready", "Images stored"
        FAILED = "failed", "Acquisition failed"

    pgc = models.PositiveBigIntegerField("PGC", unique=True)
    name = models.CharField(max_length=64, blank=True, db_index=True)
    ra = models.FloatField("RA (deg)")
    dec = models.FloatField("Dec (deg)")
    d25_arcmin = models.FloatField("D25 (arcmin)", null=True, blank=True)
    position_angle = models.FloatField("PA (deg)", null=True, blank=True)
    axial_ratio = models.FloatField("b/a", null=True, blank=True)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.SDSS)
    state = models.CharField(max_length=16, choices=State.choices, default=State.NEW, db_index=True)
    failure_reason = models.TextField(blank=True)
    # Known inclination: the truth of a synthetic galaxy, or the reference value of a gold galaxy.
    known_inclination = models.FloatField(null=True, blank=True)
    truth = models.JSONField(null=True, blank=True, help_text="Render parameters of a synthetic galaxy.")
    is_gold = models.BooleanField(default=False, help_text="Shown to volunteers to measure their accuracy.")
    survey = models.ForeignKey(Survey, on_delete=models.PROTECT, related_name="galaxies", default=default_survey_id)
    # Denormalised so that choosing the next galaxy is an index scan, not a count per galaxy.
    votes_count = models.PositiveIntegerField(default=0)
    retired_at = models.DateTimeField(null=True, blank=True)
    # Higher is shown first. Without votes it is the prior's width (labeling.volunteer_model), so an unvoted
    # galaxy comes before one whose posterior has narrowed.
    label_priority = models.FloatField(
        default=16.0, help_text="Higher is shown first: posterior width, disagreement with the models, alarms."
    )
    # Written by the apps above labeling through labeling.services, so labeling never reads their tables.
    color_image = models.FileField(
        max_length=255, blank=True, default="", db_default="", editable=False, help_text="The colour composite shown."
    )
    # The same composite turned so the major axis is horizontal (acquisition.orientation), as the page shows it.
    color_image_horizontal = models.FileField(
        max_length=255,
        blank=True,
        default="",
        db_default="",
        editable=False,
        help_text="The colour composite turned so the major axis is horizontal.",
    )
    predicted_inclination = models.FloatField(null=True, blank=True, help_text="The latest ensemble median (deg).")
    model_priority = models.FloatField(
        default=0.0, db_default=0.0, help_text="The models' share of the priority: spread, rejection doubt, alarms."
    )
    # The survey's share of the priority (labeling.services.surveys.survey_needs_adaptation_mark): its galaxies
    # come first while the models fall short on it. Kept on the row so the queue stays one index walk.
    survey_priority = models.FloatField(
        default=0.0, db_default=0.0, help_text="The survey's share of the priority: it needs adaptation."
    )
    # Votes asked for beyond the first GIZ_VOTES_TO_RETIRE while the posterior is wider than GIZ_RETIRE_SD.
    extra_votes = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # While an acquisition task fetches the galaxy: the Celery node name of its worker, so that a worker starting
    # again under that name re-queues the fetch its previous incarnation died in, at once (acquisition.services).
    acquiring_worker = models.CharField(max_length=255, blank=True, default="", editable=False)
    # Declination zone for cone searches (labeling.sky): the database computes it, so no writer can forget it.
    dec_zone = models.GeneratedField(
        expression=Cast(Floor((F("dec") + 90.0) * ZONES_PER_DEG), models.IntegerField()),
        output_field=models.IntegerField(),
        db_persist=True,
    )

    class Meta:
        verbose_name_plural = "galaxies"
        ordering = ["pgc"]
        constraints = [
            models.CheckConstraint(condition=Q(ra__gte=0) & Q(ra__lt=360), name="galaxy_ra_range"),
            models.CheckConstraint(condition=Q(dec__gte=-90) & Q(dec__lte=90), name="galaxy_dec_range"),
            models.CheckConstraint(
                condition=Q(d25_arcmin__isnull=True) | Q(d25_arcmin__gt=0), name="galaxy_d25_positive"
            ),
            models.CheckConstraint(
                condition=Q(position_angle__isnull=True) | (Q(position_angle__gte=0) & Q(position_angle__lt=180)),
                name="galaxy_pa_range",
            ),
            models.CheckConstraint(
                condition=Q(axial_ratio__isnull=True) | (Q(axial_ratio__gt=0) & Q(axial_ratio__lte=1)),
                name="galaxy_axial_ratio_range",
            ),
            models.CheckConstraint(
                condition=Q(known_inclination__isnull=True)
                | (Q(known_inclination__gte=0) & Q(known_inclination__lte=90)),
                name="galaxy_known_inclination_range",
            ),
            models.CheckConstraint(
                condition=Q(is_gold=False) | Q(known_inclination__isnull=False), name="galaxy_gold_has_truth"
            ),
        ]
        indexes = [
            models.Index(fields=["ra", "dec"], name="galaxy_sky_idx"),
            models.Index(fields=["dec_zone", "ra"], name="galaxy_zone_ra_idx"),
            # Choosing the next galaxy walks this index from the top: no sort, no ORDER BY RANDOM().
            models.Index(
                fields=["-label_priority", "votes_count", "id"],
                condition=Q(retired_at__isnull=True, state="ready", is_gold=False),
                name="galaxy_to_label_idx",
            ),
            models.Index(fields=["id"], condition=Q(is_gold=True, state="ready"), name="galaxy_gold_idx"),
        ]

    def __str__(self) -> str:
        return f"PGC {self.pgc}" + (f" ({self.name})" if self.name else "")


class StandardGalaxy(models.Model):
    """A galaxy of well-known inclination that volunteers compare targets against."""

    galaxy = models.OneToOneField(Galaxy, on_delete=models.CASCADE, related_name="standard")
    inclination = models.FloatField()
    inclination_source = models.CharField(max_length=128, help_text="Where the inclination comes from.")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "standard galaxies"
        ordering = ["inclination"]
        constraints = [
            models.CheckConstraint(
                condition=Q(inclination__gte=0) & Q(inclination__lte=90), name="standard_inclination_range"
            ),
        ]
        indexes = [models.Index(fields=["active", "inclination"], name="standard_active_incl_idx")]

    def __str__(self) -> str:
        return f"Standard {self.galaxy} at {self.inclination:.1f} deg"


class VolunteerProfile(models.Model):
    """A volunteer's display preferences and the figures the consensus model fitted to their votes.

    A vote x reads as 67.5 + bias + scale (t - 67.5) plus noise of `sigma` (labeling.volunteer_model);
    the nightly refit writes these, votes use them until the next one. The model's columns have database
    defaults so that rows inserted without them (bulk loads, code of the previous release) stay valid.
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="volunteer")
    display_name = models.CharField(max_length=64, blank=True)
    show_on_leaderboard = models.BooleanField(default=False)
    tutorial_done = models.BooleanField(default=False)
    votes_count = models.PositiveIntegerField(default=0)
    gold_votes_count = models.PositiveIntegerField(default=0)
    gold_abs_error_sum = models.FloatField(default=0.0)
    bias = models.FloatField(default=0.0, db_default=0.0, help_text="deg high (+) or low (-) at 67.5 deg.")
    scale = models.FloatField(
        default=1.0, db_default=1.0, help_text="How much the volunteer stretches the 45-90 deg range."
    )
    sigma = models.FloatField(
        null=True, blank=True, help_text="Scatter of one vote near edge-on (deg); empty: the typical volunteer's."
    )
    flag_accuracy = models.FloatField(
        default=0.8, db_default=0.8, help_text="Probability of choosing the right category."
    )
    votes_counted = models.FloatField(
        default=0.0, db_default=0.0, help_text="Inclination votes the last refit counted."
    )
    # The same line the other way round (corrected = slope * raw + intercept), for the vote export.
    calibration_slope = models.FloatField(default=1.0)
    calibration_intercept = models.FloatField(default=0.0)
    weight = models.FloatField(default=1.0, help_text="Information in one vote relative to a typical volunteer's.")

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(weight__gte=0), name="volunteer_weight_positive"),
        ]

    def __str__(self) -> str:
        return self.display_name or self.user.get_username()


class Vote(models.Model):
    """One volunteer's answer for one galaxy: an inclination in 45-90 deg, or a flag."""

    class Flag(models.TextChoices):
        NONE = "", "None (inclination given)"
        FACE_ON = "face_on", "Face-on (below 45 deg)"
        NOT_SPIRAL = "not_spiral", "Not a spiral"
        BAD_IMAGE = "bad_image", "Bad image"
        MULTIPLE_OBJECTS = "multiple_objects", "Multiple objects"
        DISTURBED = "disturbed", "Disturbed"
        AMBIGUOUS = "ambiguous", "Ambiguous"

    volunteer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="votes")
    galaxy = models.ForeignKey(Galaxy, on_delete=models.CASCADE, related_name="votes")
    inclination = models.FloatField(null=True, blank=True)
    flag = models.CharField(max_length=32, choices=Flag.choices, blank=True, default=Flag.NONE)
    not_sure = models.BooleanField(default=False)
    note = models.TextField(blank=True, max_length=2000)
    left_standard = models.ForeignKey(
        StandardGalaxy, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    right_standard = models.ForeignKey(
        StandardGalaxy, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    seconds_taken = models.FloatField(null=True, blank=True)
    was_gold = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["volunteer", "galaxy"], name="one_vote_per_volunteer_per_galaxy"),
            models.CheckConstraint(
                condition=(Q(flag="") & Q(inclination__gte=45) & Q(inclination__lte=90))
                | (~Q(flag="") & Q(inclination__isnull=True)),
                name="vote_inclination_or_flag",
            ),
            models.CheckConstraint(
                condition=Q(seconds_taken__isnull=True) | Q(seconds_taken__gte=0), name="vote_seconds_positive"
            ),
        ]
        indexes = [models.Index(fields=["galaxy", "created_at"], name="vote_galaxy_idx")]

    def __str__(self) -> str:
        answer = f"{self.inclination:.1f} deg" if self.inclination is not None else self.get_flag_display()
        return f"{self.volunteer} on {self.galaxy}: {answer}"


class ConsensusLabel(models.Model):
    class Status(models.TextChoices):
        ACCEPTED = "accepted", "Accepted"
        FACE_ON = "face_on", "Face-on"
        REJECTED = "rejected", "Rejected"

    galaxy = models.OneToOneField(Galaxy, on_delete=models.CASCADE, related_name="consensus")
    status = models.CharField(max_length=16, choices=Status.choices, db_index=True)
    inclination = models.FloatField(null=True, blank=True)
    uncertainty = models.FloatField(null=True, blank=True, help_text="1-sigma error of the inclination (deg).")
    agreement = models.FloatField(null=True, blank=True, help_text="Probability of the status.")
    n_votes = models.PositiveIntegerField()
    n_numeric = models.PositiveIntegerField(default=0, db_default=0, help_text="Votes that gave an inclination.")
    p_face_on = models.FloatField(default=0.0, db_default=0.0)
    p_rejected = models.FloatField(default=0.0, db_default=0.0)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(inclination__isnull=True) | (Q(inclination__gte=45) & Q(inclination__lte=90)),
                name="consensus_inclination_range",
            ),
            models.CheckConstraint(
                condition=~Q(status="accepted") | Q(inclination__isnull=False), name="consensus_accepted_has_value"
            ),
        ]

    def __str__(self) -> str:
        value = f"{self.inclination:.1f} deg" if self.inclination is not None else self.get_status_display()
        return f"{self.galaxy}: {value} from {self.n_votes} votes"


class Assignment(models.Model):
    """A galaxy served to one volunteer with the standards shown, redeemable once through its token.

    Open assignments reserve a galaxy's remaining votes, so two volunteers are never both sent the last one.
    """

    volunteer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments")
    galaxy = models.ForeignKey(Galaxy, on_delete=models.CASCADE, related_name="assignments")
    token = models.CharField(max_length=64, unique=True)
    # Every standard shown for this galaxy (first draw and reshuffles): a vote may only cite these.
    standard_ids = models.JSONField(default=list)
    is_gold = models.BooleanField(default=False)
    issued_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["volunteer"], condition=Q(used_at__isnull=True), name="one_open_assignment_per_volunteer"
            ),
            models.CheckConstraint(condition=Q(expires_at__gt=models.F("issued_at")), name="assignment_expires_later"),
            models.CheckConstraint(
                condition=Q(used_at__isnull=True) | Q(used_at__gte=models.F("issued_at")), name="assignment_used_after"
            ),
        ]
        indexes = [
            models.Index(fields=["galaxy", "expires_at"], condition=Q(used_at__isnull=True), name="assignment_open_idx")
        ]

    def __str__(self) -> str:
        return f"{self.galaxy} for {self.volunteer}"


class ConsensusRun(BackgroundRun):
    """One full consensus recomputation (nightly task or command), with its progress for the admin."""

    # The unique index allows one recomputation at a time.
    live = models.BooleanField(null=True, default=True, unique=True, editable=False)
    total = models.PositiveIntegerField(default=0, help_text="Voted galaxies to write after the fit.")
    failed = None
    stats = models.JSONField(default=dict, blank=True)
    # The volunteer model's global figures after a finished refit; votes use the latest run's until the next.
    high_water_vote_id = models.BigIntegerField(null=True, blank=True, help_text="The last vote the refit read.")
    growth = models.FloatField(null=True, blank=True, help_text="How much more votes scatter toward face-on.")
    class_prior = models.JSONField(null=True, blank=True, help_text="Share of accepted, face-on, rejected.")
    sigma_typical = models.FloatField(null=True, blank=True, help_text="The median volunteer's sigma (deg).")

    class Meta(BackgroundRun.Meta):
        constraints = [
            models.CheckConstraint(condition=Q(done__lte=models.F("total")), name="consensus_run_done_le_total"),
            models.CheckConstraint(
                condition=Q(live__isnull=True) | Q(live=True), name="consensus_run_live_true_or_null"
            ),
        ]

    def __str__(self) -> str:
        return f"Consensus recomputation {self.pk} ({self.status})"


class CatalogExport(BackgroundRun):
    """A catalogue file written in the background (admin or API), with its progress and the file to download."""

    class Format(models.TextChoices):
        ECSV = "ecsv", "ECSV"
        VOTABLE = "votable", "VOTable"
        FITS = "fits", "FITS"
        CSV = "csv", "CSV"

    format = models.CharField(max_length=8, choices=Format.choices)
    filters = models.JSONField(default=dict, blank=True, help_text="The galaxy filters, as the API takes them.")
    total = models.PositiveIntegerField(default=0, help_text="Galaxies matching when the export started.")
    failed = None
    file = models.FileField(upload_to="exports/", max_length=255, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="catalog_exports"
    )

    def __str__(self) -> str:
        return f"Catalogue export {self.pk} ({self.format}, {self.status})"
