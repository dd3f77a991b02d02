"""Inference's answers to what the apps below it announce; connected by InferenceConfig.ready()."""

from django.conf import settings
from django.db import transaction
from django.dispatch import receiver

from acquisition.signals import color_image_stored
from inference import services, tasks
from labeling.signals import consensus_labels_added


@receiver(color_image_stored, dispatch_uid="inference.predict_stored_image")
def predict_stored_image(sender, *, image_id: int, **kwargs) -> None:
    # The mark is part of the image's transaction, so it survives a lost message; the task only says "look".
    # Images stored in a burst share one batch task (tasks.predict_pending_queue). robust: a broker hiccup is
    # logged, never turns a stored image into a failed task; the beat task predict_missing runs the marks later.
    services.predictions_pending_mark(image_ids=[image_id])
    transaction.on_commit(lambda: tasks.predict_pending_queue(countdown=settings.GIZ_PREDICT_BATCH_WAIT_S), robust=True)


@receiver(consensus_labels_added, dispatch_uid="inference.count_new_labels")
def count_new_labels(sender, **kwargs) -> None:
    # A survey reaching the evaluation threshold is tested at once; an adaptation waiting for its labels takes the
    # training slot before a general retraining does.
    services.surveys_maybe_evaluate()
    if services.surveys_maybe_adapt() is None:
        services.training_maybe_trigger()
