"""Model versions, training runs, predictions and discrepancy alarms."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from acquisition.models import GalaxyImage
from giz_site.models import BackgroundRun
from labeling.models import Galaxy, Survey


class TrainingRun(BackgroundRun):
    """One retraining (or pretraining): one live at a time, taken over when its worker stops beating."""

    class Trigger(models.TextChoices):
        MANUAL = "manual", "Manual"
        NEW_LABELS = "new_labels", "New consensus labels"
        SCHEDULE = "schedule", "Scheduled backstop"
        PRETRAIN = "pretrain", "Pretraining on synthetic galaxies"
        ADAPTATION = "adaptation", "Adaptation to a survey"

    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.MANUAL)
    survey = models.ForeignKey(
        Survey,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="adaptations",
        help_text="The survey an adaptation run fine-tunes the active members to.",
    )
    # The unique index allows one live run at a time.
    live = models.BooleanField(null=True, default=True, unique=True, editable=False)
    config = models.JSONField(default=dict, blank=True)
    # Training is not countable work: its stages report a weighted fraction instead of counters.
    total = done = failed = None
    progress = models.FloatField(default=0.0)
    message = models.CharField(max_length=255, blank=True)
    n_labels = models.PositiveIntegerField(default=0, help_text="Consensus labels trained on.")
    n_synthetic = models.PositiveIntegerField(default=0, help_text="Synthetic galaxies trained on.")
    labels_cutoff = models.DateTimeField(null=True, blank=True, help_text="Consensus labels up to here were used.")
    history = models.JSONField(default=dict, blank=True, help_text="Loss per epoch.")
    metrics = models.JSONField(default=dict, blank=True, help_text="Test-set figures, new vs active ensemble.")
    plots = models.JSONField(default=dict, blank=True, help_text="Plot name -> file in storage.")
    attempts = models.PositiveIntegerField(default=0, help_text="Times a worker started this run.")
    # Recorded at each claim: a worker that starts again under this node name re-queues the run at once (its
    # previous incarnation died with it), instead of waiting for the heartbeat to go stale.
    worker = models.CharField(
        max_length=255, blank=True, help_text="Celery node name of the worker that claimed it last (empty: a command)."
    )
    # The process of that worker training it: a pool process killed alone (the OOM killer) leaves its worker
    # running, which redelivers the task at once; that delivery sees the process gone and takes the run over.
    worker_pid = models.PositiveIntegerField(null=True, blank=True, help_text="Process id of the worker's process.")

    class Meta(BackgroundRun.Meta):
        constraints = [
            models.CheckConstraint(condition=Q(live__isnull=True) | Q(live=True), name="training_live_true_or_null"),
            models.CheckConstraint(
                condition=~Q(trigger="adaptation") | Q(survey__isnull=False), name="training_adaptation_has_survey"
            ),
        ]

    def __str__(self) -> str:
        return f"Training run {self.pk} ({self.status})"


class ModelVersion(models.Model):
    class Kind(models.TextChoices):
        REGRESSION = "regression", "Inclination regression"
        REJECTION = "rejection", "Rejection classifier"

    class Status(models.TextChoices):
        CANDIDATE = "candidate", "Candidate"
        ACTIVE = "active", "Active"
        RETIRED = "retired", "Retired"

    class Format(models.TextChoices):
        KERAS = "keras", ".keras"
        H5 = "h5", ".h5 (legacy)"

    class Output(models.TextChoices):
        DEGREES = "degrees", "Inclination in degrees (or a probability)"
        SCALED = "scaled", "Scaled to [-1, 1] over 45-90 deg (the original service's models)"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.REGRESSION)
    architecture = models.CharField(max_length=64)
    file = models.FileField(upload_to="models/", max_length=255)
    format = models.CharField(max_length=8, choices=Format.choices, default=Format.KERAS)
    input_size = models.PositiveIntegerField(default=128)
    input_mode = models.CharField(max_length=16, default="color", help_text="color or bands")
    output = models.CharField(max_length=16, choices=Output.choices, default=Output.DEGREES)
    plots = models.JSONField(default=dict, blank=True, help_text="Plot name -> file in storage.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.CANDIDATE, db_index=True)
    metrics = models.JSONField(default=dict, blank=True)
    n_labels = models.PositiveIntegerField(default=0)
    n_synthetic = models.PositiveIntegerField(default=0)
    training_run = models.ForeignKey(
        TrainingRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="model_versions"
    )
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    initialized_from = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="fine_tuned_versions",
        help_text="The active model version whose weights training started from (fine-tuning); empty: from scratch.",
    )
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind}, {self.status})"


class Prediction(models.Model):
    """One model version's answer for one image of a galaxy."""

    galaxy = models.ForeignKey(Galaxy, on_delete=models.CASCADE, related_name="predictions")
    image = models.ForeignKey(GalaxyImage, on_delete=models.CASCADE, null=True, blank=True, related_name="predictions")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="predictions")
    inclination = models.FloatField(null=True, blank=True)
    rejection_likelihood = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["image", "model_version"], name="one_prediction_per_image_model"),
            models.CheckConstraint(
                condition=Q(rejection_likelihood__isnull=True)
                | (Q(rejection_likelihood__gte=0) & Q(rejection_likelihood__lte=1)),
                name="prediction_likelihood_range",
            ),
        ]
        indexes = [models.Index(fields=["galaxy", "-created_at"], name="prediction_galaxy_idx")]

    def __str__(self) -> str:
        return f"{self.model_version.name} on {self.galaxy}"


class EnsemblePrediction(models.Model):
    """The active ensemble's summary for one image: what users and alarms look at."""

    galaxy = models.ForeignKey(Galaxy, on_delete=models.CASCADE, related_name="ensemble_predictions")
    image = models.ForeignKey(GalaxyImage, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    median = models.FloatField()
    mean = models.FloatField()
    spread = models.FloatField(help_text="Standard deviation of the members' inclinations (deg).")
    sigma = models.FloatField(
        null=True,
        blank=True,
        help_text="1-sigma uncertainty (deg): the members' calibrated learned sigma and their spread in quadrature.",
    )
    rejection_likelihood = models.FloatField(null=True, blank=True)
    n_models = models.PositiveIntegerField()
    members = models.JSONField(default=dict, help_text="Model name -> inclination.")
    ensemble_key = models.CharField(
        max_length=255, help_text="The model versions that answered (sorted ids): one summary per image and ensemble."
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # Predicting an image again with the same ensemble updates its summary (an upsert), so a
            # repeated request, a redelivered task or the backstop never adds a row.
            models.UniqueConstraint(
                fields=["galaxy", "image", "ensemble_key"], name="one_ensemble_prediction_per_image_ensemble"
            ),
        ]
        indexes = [models.Index(fields=["galaxy", "-created_at"], name="ensemble_galaxy_idx")]

    def __str__(self) -> str:
        return f"{self.galaxy}: {self.median:.1f} +- {self.spread:.1f} deg"


class PendingPrediction(models.Model):
    """A stored colour image waiting for the active ensemble's prediction.

    Written in the same transaction as the image (inference.receivers), so an announcement is never lost with a
    broker message; a batch task claims up to GIZ_INFERENCE_BATCH_SIZE of them at a time and deletes each in the
    transaction that stores its prediction. `claim` and `claimed_until` keep a batch's rows from every other batch
    until its task must have ended (a killed task's rows come back after that).
    """

    image = models.OneToOneField(GalaxyImage, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    claim = models.UUIDField(null=True, blank=True, db_index=True)
    claimed_until = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"prediction of image {self.image_id} pending"


class DiscrepancyAlarm(models.Model):
    """Asks staff for a manual look when models disagree with each other or with the volunteers."""

    class Kind(models.TextChoices):
        ENSEMBLE_SPREAD = "ensemble_spread", "Models disagree"
        HUMAN_DISAGREEMENT = "human_disagreement", "Models disagree with volunteers"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        RESOLVED = "resolved", "Resolved"

    galaxy = models.ForeignKey(Galaxy, on_delete=models.CASCADE, related_name="alarms")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN, db_index=True)
    ensemble_prediction = models.ForeignKey(
        EnsemblePrediction, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    ensemble_median = models.FloatField(null=True, blank=True)
    ensemble_spread = models.FloatField(null=True, blank=True)
    consensus_inclination = models.FloatField(null=True, blank=True)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    resolution_note = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["galaxy", "kind"], condition=Q(status="open"), name="one_open_alarm_per_galaxy_kind"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} on {self.galaxy} ({self.status})"


class InferenceJob(BackgroundRun):
    """A batch of galaxies to predict (a PGC list, the whole catalog or one sky position), with progress."""

    class Kind(models.TextChoices):
        PGC_LIST = "pgc_list", "A list of PGC numbers"
        CATALOG = "catalog", "Every catalogued galaxy"
        POSITION = "position", "A sky position"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    params = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="inference_jobs"
    )

    class Meta(BackgroundRun.Meta):
        indexes = [models.Index(fields=["created_by", "-id"], name="inference_job_user_idx")]

    def __str__(self) -> str:
        return f"Inference job {self.pk} ({self.kind}, {self.status})"


class InferenceJobItem(models.Model):
    """One galaxy's result within a job (pageable; written batch by batch)."""

    class Status(models.TextChoices):
        OK = "ok", "OK"
        FAILED = "failed", "Failed"

    job = models.ForeignKey(InferenceJob, on_delete=models.CASCADE, related_name="items")
    galaxy = models.ForeignKey(Galaxy, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    pgc = models.PositiveBigIntegerField()
    status = models.CharField(max_length=8, choices=Status.choices)
    reason = models.CharField(max_length=255, blank=True)
    median = models.FloatField(null=True, blank=True)
    mean = models.FloatField(null=True, blank=True)
    spread = models.FloatField(null=True, blank=True)
    rejection_likelihood = models.FloatField(null=True, blank=True)
    members = models.JSONField(default=dict, blank=True)
    alarm_raised = models.BooleanField(default=False)
    # Provenance, as on EnsemblePrediction: the model versions that answered (sorted ids) and when.
    ensemble_key = models.CharField(max_length=255, blank=True)
    predicted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job", "pgc"], name="one_result_per_job_pgc")]

    def __str__(self) -> str:
        return f"Job {self.job_id}: PGC {self.pgc} {self.status}"


class SurveyEvaluation(BackgroundRun):
    """The active ensemble tested on one survey's consensus labels: the figures, the plot and the verdict.

    Made automatically once per survey when it reaches GIZ_SURVEY_EVAL_MIN_LABELS labels, and for every survey with
    that many after a training run changes the active ensemble; staff start others (command, API, admin). The
    partial unique indexes make each automatic one happen once, whoever asks, and one per survey run at a time.
    """

    class Trigger(models.TextChoices):
        LABELS = "labels", "The survey reached the label threshold"
        TRAINING_RUN = "training_run", "A training run changed the active ensemble"
        MANUAL = "manual", "Started by staff"

    survey = models.ForeignKey(Survey, on_delete=models.CASCADE, related_name="evaluations")
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.MANUAL)
    training_run = models.ForeignKey(
        TrainingRun,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="survey_evaluations",
        help_text="The run whose new ensemble this evaluation tests.",
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    total = models.PositiveIntegerField(default=0, help_text="Consensus labels to evaluate.")
    message = models.CharField(max_length=255, blank=True)
    ensemble_key = models.CharField(max_length=255, blank=True, help_text="The model versions evaluated (sorted ids).")
    model_versions = models.JSONField(default=list, blank=True, help_text="[{id, name}] of the members evaluated.")
    n_labels = models.PositiveIntegerField(default=0, help_text="Accepted consensus labels (with an inclination).")
    rms = models.FloatField(null=True, blank=True, help_text="deg")
    bias = models.FloatField(null=True, blank=True, help_text="Mean of ensemble - consensus (deg).")
    outlier_rate = models.FloatField(null=True, blank=True, help_text="Share more than 10 deg off.")
    rejection_agreement = models.FloatField(
        null=True, blank=True, help_text="Share of labels where the rejection classifier decides as the volunteers."
    )
    bins = models.JSONField(default=list, blank=True, help_text="Per 5-deg bin: lo, hi, n, rms, bias, outlier_rate.")
    figures = models.JSONField(default=dict, blank=True, help_text="Everything measured, and how.")
    reference_rms = models.FloatField(null=True, blank=True, help_text="The reference survey's RMS compared with.")
    needs_adaptation = models.BooleanField(null=True, blank=True, help_text="The verdict (empty: none drawn).")
    verdict = models.TextField(blank=True)
    plot = models.FileField(upload_to="evaluations/", max_length=255, blank=True)
    seconds = models.FloatField(null=True, blank=True, help_text="Wall time of the evaluation.")

    class Meta(BackgroundRun.Meta):
        constraints = [
            models.CheckConstraint(
                condition=Q(live__isnull=True) | Q(live=True), name="survey_evaluation_live_true_or_null"
            ),
            models.UniqueConstraint(fields=["survey"], condition=Q(live=True), name="one_live_evaluation_per_survey"),
            models.UniqueConstraint(
                fields=["survey"], condition=Q(trigger="labels"), name="one_threshold_evaluation_per_survey"
            ),
            models.UniqueConstraint(
                fields=["survey", "training_run"],
                condition=Q(training_run__isnull=False),
                name="one_evaluation_per_survey_run",
            ),
        ]
        indexes = [models.Index(fields=["survey", "-created_at"], name="survey_evaluation_latest_idx")]

    def __str__(self) -> str:
        return f"Evaluation {self.pk} of {self.survey} ({self.status})"
