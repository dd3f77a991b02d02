from django.apps import AppConfig


class AcquisitionConfig(AppConfig):
    name = "acquisition"
    verbose_name = "Image acquisition"

    def ready(self) -> None:
        # Imported here: modules with models can only be imported once the app registry is ready.
        from acquisition import checks, receivers  # noqa: F401  (register the system checks and receivers)
