from django.apps import AppConfig


class InferenceConfig(AppConfig):
    name = "inference"
    verbose_name = "CNN models, predictions and alarms"

    def ready(self) -> None:
        from inference import checks  # noqa: F401 - registers the system checks
