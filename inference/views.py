"""Website views that read stored images with the inference image maths."""

import io

import numpy as np
from django.contrib.auth.decorators import login_required
from django.core.files.storage import default_storage
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from PIL import Image

from acquisition import orientation
from acquisition.models import GalaxyImage
from acquisition.services import horizontal_angle
from inference import imaging
from inference.services import image_limits
from labeling.models import Galaxy


@login_required
def galaxy_band(request, pk: int, band: str):
    """A grey g, r or i view as PNG: the stored band image, a band of the FITS cube, or the colour channel.

    With ?horizontal=1, turned as the labeling page turns the colour composite (major axis horizontal).
    """
    if band not in ("g", "r", "i"):
        raise Http404("Unknown band.")
    galaxy = get_object_or_404(Galaxy, pk=pk)
    horizontal = request.GET.get("horizontal") == "1"
    images = {(i.band, i.format): i for i in GalaxyImage.objects.filter(galaxy=galaxy)}
    for fmt in (GalaxyImage.Format.PNG, GalaxyImage.Format.JPEG):
        if (band, fmt) in images and not horizontal:
            return redirect(images[(band, fmt)].file.url)
    source = (
        images.get((band, GalaxyImage.Format.PNG))
        or images.get((band, GalaxyImage.Format.JPEG))
        or images.get((band, GalaxyImage.Format.FITS))
        or images.get(("gri", GalaxyImage.Format.FITS))
        or images.get(("color", GalaxyImage.Format.JPEG))
        or images.get(("color", GalaxyImage.Format.PNG))
    )
    png = _band_png(source, band) if source is not None else None
    if png is None:
        raise Http404("No image of this galaxy in that band.")
    if horizontal:
        png = _turned(png, galaxy)
    response = HttpResponse(png, content_type="image/png")
    response["Cache-Control"] = "private, max-age=86400"
    return response


def _band_png(source: GalaxyImage, band: str) -> bytes | None:
    try:
        with default_storage.open(source.file.name, "rb") as handle:
            decoded = imaging.decode_image(handle.read(), limits=image_limits())
    except (OSError, imaging.ImageError):
        return None
    return imaging.band_png(decoded, band)


def _turned(png: bytes, galaxy: Galaxy) -> bytes:
    """A grey PNG turned by the galaxy's horizontal angle (as it is when there is none)."""
    angle = horizontal_angle(galaxy=galaxy)
    if angle is None:
        return png
    with Image.open(io.BytesIO(png)) as image:
        grey = np.asarray(image.convert("L"))
    buffer = io.BytesIO()
    Image.fromarray(orientation.turn_horizontal(grey, angle, seed=galaxy.pgc), mode="L").save(buffer, format="PNG")
    return buffer.getvalue()
