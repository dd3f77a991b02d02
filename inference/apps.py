from django.apps import AppConfig


class InferenceConfig(AppConfig):
    name = "inference"
    verbose_name = "CNN models, predictions and alarms"

    def ready(self) -> None:
        # Imported here: modules with models can only be imported once the app registry is ready.
        from inference import checks, receivers  # noqa: F401 - register the system checks and receivers
