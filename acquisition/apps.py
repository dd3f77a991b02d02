from django.apps import AppConfig


class AcquisitionConfig(AppConfig):
    name = "acquisition"
    verbose_name = "Image acquisition"
