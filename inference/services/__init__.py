"""Inference writes, one module per concept: predictions, alarms (and the label priority they give), the
model registry, training runs, inference jobs. Reads live in inference.selectors, the process-wide ensemble
in inference.ensemble, the Keras fitting in inference.keras_training (Django-free).
"""

from inference.services.alarms import alarm_email_send, alarm_resolve, alarms_check, galaxy_priority_refresh
from inference.services.jobs import galaxy_color_image_ensure, inference_job_create, inference_job_run
from inference.services.predictions import (
    EnsembleResult,
    PendingBatch,
    image_limits,
    image_position_angle,
    model_input,
    predict_galaxies,
    predict_galaxy,
    predict_image_bytes,
    predict_images,
    predictions_missing_mark,
    predictions_pending_mark,
    predictions_pending_run,
    predictions_save,
)
from inference.services.registry import (
    ensemble_replace,
    model_file_check,
    model_version_activate,
    model_version_retire,
    model_version_upload,
)
from inference.services.training_runs import (
    training_backstop,
    training_maybe_trigger,
    training_run_claim,
    training_run_create,
    training_run_execute,
    training_run_finish,
    training_run_progress,
    training_run_record,
)

__all__ = [
    "EnsembleResult",
    "image_limits",
    "image_position_angle",
    "model_input",
    "predict_image_bytes",
    "predict_galaxy",
    "predict_galaxies",
    "predict_images",
    "predictions_save",
    "PendingBatch",
    "predictions_pending_mark",
    "predictions_missing_mark",
    "predictions_pending_run",
    "alarms_check",
    "alarm_email_send",
    "alarm_resolve",
    "galaxy_priority_refresh",
    "model_file_check",
    "model_version_upload",
    "model_version_activate",
    "model_version_retire",
    "ensemble_replace",
    "training_run_create",
    "training_maybe_trigger",
    "training_backstop",
    "training_run_claim",
    "training_run_progress",
    "training_run_finish",
    "training_run_execute",
    "training_run_record",
    "inference_job_create",
    "galaxy_color_image_ensure",
    "inference_job_run",
]
