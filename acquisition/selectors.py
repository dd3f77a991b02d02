"""Reads of the acquisition area: images, standards with their images, galaxies still without images."""

from datetime import datetime

from django.db.models import Prefetch, Q, QuerySet

from acquisition.models import GalaxyImage
from labeling.models import Galaxy, StandardGalaxy


def standards_with_images(*, ids=None) -> QuerySet[StandardGalaxy]:
    """Active standards (or the given ones) with their galaxy and its images, bands in a stable order."""
    standards = StandardGalaxy.objects.filter(active=True) if ids is None else StandardGalaxy.objects.filter(pk__in=ids)
    images = Prefetch("galaxy__images", queryset=GalaxyImage.objects.order_by("band", "format"))
    return standards.select_related("galaxy").prefetch_related(images)


def galaxies_missing_images(
    *, acquiring_since_before: datetime | None = None, failed: bool = False
) -> QuerySet[Galaxy]:
    """SDSS galaxies without images: never acquired, being acquired, and failed ones when asked.

    With `acquiring_since_before`, only galaxies 'acquiring' since before then count (their worker vanished).
    """
    acquiring = Q(state=Galaxy.State.ACQUIRING)
    if acquiring_since_before is not None:
        acquiring &= Q(updated_at__lt=acquiring_since_before)
    missing = Q(state=Galaxy.State.NEW) | acquiring
    if failed:
        missing |= Q(state=Galaxy.State.FAILED)
    return Galaxy.objects.filter(missing, source=Galaxy.Source.SDSS)
