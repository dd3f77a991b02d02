"""Image sources behind one interface: the SDSS cutout and frames services, any HiPS survey through the CDS
hips2fits service, and a plain cutout-URL template. Django-free (acquisition.services picks one per survey).

Every source returns the same products: a STAMP_PX colour JPEG (`Cutout`) and, per band, a float FITS stamp
(`FitsStamp`), and fails with the one error type (`SdssError`, whatever the survey) that says whether retrying
can help. A HiPS or template service that answers blank sky, an image of the wrong size or something that is
not an image fails permanently with the reason: such answers are deterministic, never a passing hiccup.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import requests
from PIL import Image, UnidentifiedImageError

from acquisition.sdss import (
    STAMP_PX,
    Cutout,
    FitsStamp,
    HttpClient,
    SdssClient,
    SdssError,
    check_position,
    cutout_plan,
    is_blank,
)

__all__ = [
    "HIPS_BANDS",
    "HipsSource",
    "ImageSource",
    "SdssSource",
    "SourceError",
    "TemplateSource",
    "band_hips_id",
    "hips_payload",
    "template_url",
]

SourceError = SdssError  # one error type for every source: the tasks' retry rules apply to all
HIPS_BANDS = ("g", "r", "i", "z")  # bands a FITS stamp can be stored for (GalaxyImage.Band)


class ImageSource(Protocol):
    """What acquisition needs from a survey's image service."""

    def fetch_cutout(self, *, ra: float, dec: float, d25_arcmin: float | None) -> Cutout: ...

    def band_stamps(self, *, ra: float, dec: float, d25_arcmin: float | None, bands: list[str]): ...


# ------------------------------------------------------------------------------------ SDSS


class SdssSource:
    """The SDSS client as a source: ImgCutout colour stamps; g, r, i stamps cut from the calibrated frames."""

    def __init__(self, client: SdssClient):
        self.client = client

    def fetch_cutout(self, *, ra: float, dec: float, d25_arcmin: float | None) -> Cutout:
        return self.client.fetch_cutout(ra=ra, dec=dec, d25_arcmin=d25_arcmin)

    def band_stamps(self, *, ra: float, dec: float, d25_arcmin: float | None, bands: list[str]):
        """(band, fetch) pairs: the field lookup happens once, at the first band actually fetched."""
        field = []

        def fetch(band: str) -> FitsStamp:
            if not field:
                field.append(self.client.find_field(ra=ra, dec=dec))
            return self.client.fetch_fits_stamp(ra=ra, dec=dec, d25_arcmin=d25_arcmin, band=band, field=field[0])

        return [(band, lambda band=band: fetch(band)) for band in bands if band in ("g", "r", "i")]


# ------------------------------------------------------------------------------------ decoding


def _not_an_image(response: requests.Response, what: str) -> SdssError:
    snippet = response.content[:80].decode("utf-8", "replace").replace("\n", " ")
    kind = response.headers.get("Content-Type", "unknown type")
    return SdssError(f"the service answered {kind} instead of {what}: {snippet!r}", permanent=True)


def _decode_color(response: requests.Response, *, size: int) -> bytes:
    """The answer as a size x size colour JPEG, or a permanent SdssError saying what was wrong with it."""
    body = response.content
    if "html" in response.headers.get("Content-Type", "") or body.lstrip()[:1] in (b"<", b"{"):
        raise _not_an_image(response, "an image")
    try:
        image = Image.open(io.BytesIO(body))
        image.load()
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise _not_an_image(response, "an image") from exc
    if image.size != (size, size):
        raise SdssError(
            f"image of the wrong size: {image.size[0]}x{image.size[1]}, asked for {size}x{size}", permanent=True
        )
    rgb = image.convert("RGB")
    if is_blank(np.asarray(rgb)):
        raise SdssError("blank image: the survey has no data at this position", permanent=True)
    if image.format == "JPEG" and image.mode == "RGB":
        return body  # already the product: keep the server's bytes
    buffer = io.BytesIO()
    rgb.save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def _decode_fits(response: requests.Response, *, size: int, band: str) -> tuple[bytes, np.ndarray]:
    """The answer as a size x size float FITS stamp (bytes to store, data), or a permanent SdssError."""
    from astropy.io import fits

    body = response.content
    if body[:6] != b"SIMPLE":
        raise _not_an_image(response, f"a FITS image of the {band} band")
    try:
        with fits.open(io.BytesIO(body)) as hdus:
            hdu = next((h for h in hdus if h.data is not None and h.data.ndim >= 2), None)
            if hdu is None:
                raise SdssError(f"the {band}-band FITS answer holds no image", permanent=True)
            data = np.asarray(hdu.data, dtype=np.float32)
            header = hdu.header.copy()
    except (OSError, ValueError, TypeError) as exc:
        raise SdssError(f"the {band}-band answer is not a readable FITS file", permanent=True) from exc
    data = np.squeeze(data)
    if data.shape != (size, size):
        raise SdssError(
            f"{band}-band image of the wrong size: {'x'.join(map(str, data.shape[::-1]))}, asked for {size}x{size}",
            permanent=True,
        )
    finite = data[np.isfinite(data)]
    # HiPS tiles outside a survey's coverage are NaN (or zeros once cut): no sky noise at all.
    if finite.size < 0.5 * data.size or float(np.std(finite)) == 0.0:
        raise SdssError(f"blank {band}-band image: the survey has no data at this position", permanent=True)
    header["BAND"] = band
    buffer = io.BytesIO()
    fits.PrimaryHDU(np.nan_to_num(data, nan=0.0).astype(np.float32), header=header).writeto(buffer)
    return buffer.getvalue(), data


# ------------------------------------------------------------------------------------ HiPS


def band_hips_id(hips_id: str, band: str) -> str:
    """The HiPS of one band: the colour HiPS's id with its last part replaced by the band, as CDS names them
    (CDS/P/DESI-Legacy-Surveys/DR10/color -> .../DR10/g, CDS/P/PanSTARRS/DR1/color-z-zg-g -> .../DR1/g)."""
    head, _, _ = hips_id.rpartition("/")
    return f"{head}/{band}" if head else band


def hips_payload(*, hips: str, ra: float, dec: float, size: int, fov_deg: float, format: str) -> dict:
    """The hips2fits query parameters, built by astroquery's own client so they follow its API."""
    import astropy.units as u
    from astropy.coordinates import Angle, Latitude, Longitude
    from astroquery.hips2fits import hips2fitsClass

    return hips2fitsClass().query(
        hips=hips,
        width=size,
        height=size,
        projection="TAN",
        ra=Longitude(ra * u.deg),
        dec=Latitude(dec * u.deg),
        fov=Angle(fov_deg * u.deg),
        format=format,
        # Full range, no clipping: the FITS stamps keep the survey's own floats; colour follows the HiPS tiles.
        min_cut=0.0 if format == "fits" else 0.5,
        max_cut=100.0 if format == "fits" else 99.5,
        stretch="linear",
        get_query_payload=True,
    )


class HipsSource:
    """Any HiPS survey (Legacy Surveys, Pan-STARRS, DSS, ...) through the hips2fits service at `server_url`.

    Colour: the survey's colour HiPS as a STAMP_PX JPEG; bands: each band's HiPS as a float FITS stamp. The
    query is astroquery.hips2fits's; the HTTP goes through HttpClient for its timeouts, rate limit and errors
    (astroquery's own request path reads every refusal as JSON and knows no transient failure).
    """

    def __init__(self, *, http: HttpClient, server_url: str, hips_id: str, fov_factor: float):
        self.http, self.server_url, self.hips_id, self.fov_factor = http, server_url, hips_id, fov_factor

    def _fov(self, d25_arcmin: float | None) -> float:
        _, _, fov_arcsec = cutout_plan(d25_arcmin=d25_arcmin, fov_factor=self.fov_factor)
        return fov_arcsec

    def fetch_cutout(self, *, ra: float, dec: float, d25_arcmin: float | None) -> Cutout:
        check_position(ra, dec)
        fov = self._fov(d25_arcmin)
        payload = hips_payload(hips=self.hips_id, ra=ra, dec=dec, size=STAMP_PX, fov_deg=fov / 3600, format="jpg")
        response = self.http.get(self.server_url, params=payload)
        data = _decode_color(response, size=STAMP_PX)
        return Cutout(data=data, width=STAMP_PX, height=STAMP_PX, pixel_scale=fov / STAMP_PX, url=response.url)

    def band_stamps(self, *, ra: float, dec: float, d25_arcmin: float | None, bands: list[str]):
        def fetch(band: str) -> FitsStamp:
            check_position(ra, dec)
            fov = self._fov(d25_arcmin)
            payload = hips_payload(
                hips=band_hips_id(self.hips_id, band), ra=ra, dec=dec, size=STAMP_PX, fov_deg=fov / 3600, format="fits"
            )
            response = self.http.get(self.server_url, params=payload)
            data, _ = _decode_fits(response, size=STAMP_PX, band=band)
            return FitsStamp(
                data=data, band=band, width=STAMP_PX, height=STAMP_PX, pixel_scale=fov / STAMP_PX, url=response.url
            )

        return [(band, lambda band=band: fetch(band)) for band in bands if band in HIPS_BANDS]


# ------------------------------------------------------------------------------------ URL templates


@dataclass(frozen=True)
class _Geometry:
    ra: float
    dec: float
    size: int
    scale: float  # arcsec/px


def template_url(template: str, *, ra: float, dec: float, size: int, scale: float, band: str = "") -> str:
    """The template with {ra}, {dec} (deg), {size} (px), {scale} (arcsec/px) and {band} filled in."""
    try:
        return template.format(ra=f"{ra:.6f}", dec=f"{dec:.6f}", size=size, scale=f"{scale:.6g}", band=band)
    except (KeyError, IndexError, ValueError) as exc:
        raise SdssError(
            f"the survey's URL template is invalid ({exc!r}); use {{ra}}, {{dec}}, {{size}}, {{scale}}, {{band}}",
            permanent=True,
        ) from exc


class TemplateSource:
    """A plain cutout service: GET the survey's URL template for a STAMP_PX colour JPEG; with {band} in the
    template, a FITS stamp per band from the same URL with the band filled in."""

    def __init__(self, *, http: HttpClient, url_template: str, fov_factor: float):
        self.http, self.url_template, self.fov_factor = http, url_template, fov_factor

    def _geometry(self, ra: float, dec: float, d25_arcmin: float | None) -> _Geometry:
        check_position(ra, dec)
        _, _, fov_arcsec = cutout_plan(d25_arcmin=d25_arcmin, fov_factor=self.fov_factor)
        return _Geometry(ra, dec, STAMP_PX, fov_arcsec / STAMP_PX)

    def fetch_cutout(self, *, ra: float, dec: float, d25_arcmin: float | None) -> Cutout:
        g = self._geometry(ra, dec, d25_arcmin)
        url = template_url(self.url_template, ra=g.ra, dec=g.dec, size=g.size, scale=g.scale)
        data = _decode_color(self.http.get(url), size=g.size)
        return Cutout(data=data, width=g.size, height=g.size, pixel_scale=g.scale, url=url)

    def band_stamps(self, *, ra: float, dec: float, d25_arcmin: float | None, bands: list[str]):
        if "{band}" not in self.url_template:
            return []

        def fetch(band: str) -> FitsStamp:
            g = self._geometry(ra, dec, d25_arcmin)
            url = template_url(self.url_template, ra=g.ra, dec=g.dec, size=g.size, scale=g.scale, band=band)
            data, _ = _decode_fits(self.http.get(url), size=g.size, band=band)
            return FitsStamp(data=data, band=band, width=g.size, height=g.size, pixel_scale=g.scale, url=url)

        return [(band, lambda band=band: fetch(band)) for band in bands if band in HIPS_BANDS]
