"""Keeps labeling's Galaxy.color_image (and its horizontal copy) on the galaxy's colour composite, however an
image row changes."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from acquisition.models import GalaxyImage
from acquisition.services import color_image_horizontal_ensure
from labeling import services as labeling_services
from labeling.models import Galaxy


def color_image_name(galaxy_id: int) -> str:
    """The storage name of the composite volunteers see: the JPEG, else the PNG, else ""."""
    images = GalaxyImage.objects.filter(galaxy_id=galaxy_id, band=GalaxyImage.Band.COLOR)
    by_format = dict(images.values_list("format", "file"))
    return by_format.get(GalaxyImage.Format.JPEG) or by_format.get(GalaxyImage.Format.PNG) or ""


@receiver([post_save, post_delete], sender=GalaxyImage, dispatch_uid="acquisition.galaxy_color_image")
def galaxy_color_image_refresh(sender, instance: GalaxyImage, **kwargs) -> None:
    if instance.band == GalaxyImage.Band.COLOR:
        name = color_image_name(instance.galaxy_id)
        galaxy = Galaxy.objects.filter(pk=instance.galaxy_id).first()
        horizontal = color_image_horizontal_ensure(galaxy=galaxy, name=name) if galaxy is not None else ""
        labeling_services.galaxy_color_image_set(galaxy_id=instance.galaxy_id, name=name, horizontal_name=horizontal)
