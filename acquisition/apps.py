from django.apps import AppConfig


class AcquisitionConfig(AppConfig):
    name = "acquisition"
    verbose_name = "Image acquisition"

    def ready(self) -> None:
        from acquisition import checks  # noqa: F401  (registers the system checks)
