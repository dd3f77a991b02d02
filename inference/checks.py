"""System checks of the inference area."""

from django.core.checks import Error, register
from django.core.files.storage import default_storage
from django.db import DatabaseError


@register("giz")
def check_active_model_files(app_configs=None, **kwargs):
    """giz.E010: an active model version whose file is missing from storage (inference would fail)."""
    # Imported here: checks are registered while Django's apps are still loading.
    from inference.models import ModelVersion

    try:
        active = list(ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).values_list("name", "file"))
    except (DatabaseError, RuntimeError):
        return []  # not migrated yet (or no database access allowed here): nothing to check
    return [
        Error(
            f"The file {file!r} of active model version {name!r} is missing from storage.",
            hint="Restore the file, or retire the version in the admin (Inference > Model versions).",
            id="giz.E010",
        )
        for name, file in active
        if not file or not default_storage.exists(file)
    ]
