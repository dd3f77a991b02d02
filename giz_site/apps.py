from django.apps import AppConfig


class SiteConfig(AppConfig):
    name = "giz_site"
    verbose_name = "Site operations"

    def ready(self) -> None:
        from giz_site import checks  # noqa: F401  (registers the system checks)
