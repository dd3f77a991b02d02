"""The one client for SDSS images: colour JPEG cutouts (SkyServer ImgCutout) and per-band FITS stamps.

Django-free so it can be tested and benchmarked alone. Every failure is an `SdssError` that says
whether it is permanent (404, invalid coordinates, a blank image outside the footprint, a wrong
product) or transient (5xx, 429, timeouts, connection resets, truncated or undecodable bodies);
callers retry only the transient ones, honouring `retry_after` when the server sent one.

URL forms (docs/DOMAIN.md):
- cutout: {base}/{dr}/SkyServerWS/ImgCutout/getjpeg?ra=&dec=&scale=&width=&height=&opt=
- field lookup: {base}/{dr}/SkyServerWS/SearchTools/SqlSearch?cmd=<SQL>&format=json
  (the same service astroquery.sdss uses; one SQL query needs no extra dependency)
- frames: {sas}/{dr}/eboss/photoObj/frames/301/RUN/CAMCOL/frame-BAND-RUN6-CAMCOL-FIELD4.fits.bz2
"""

from __future__ import annotations

import bz2
import email.utils
import io
import json
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import requests
from PIL import Image, UnidentifiedImageError

__all__ = [
    "MAX_CUTOUT_PX",
    "MIN_CUTOUT_PX",
    "STAMP_PX",
    "Cutout",
    "FieldId",
    "FitsStamp",
    "HttpClient",
    "RateLimiter",
    "SdssClient",
    "SdssError",
    "cutout_plan",
    "cutout_url",
    "frame_url",
    "is_blank",
    "parse_rate",
]

STAMP_PX = 512  # the stored postage stamp, as the human protocol shows it
MIN_CUTOUT_PX, MAX_CUTOUT_PX = 64, 2048  # ImgCutout's limits on width and height
START_SCALE = 0.25  # arcsec/px; doubled until the field of view fits in MAX_CUTOUT_PX
DEFAULT_FOV_FACTOR = 2.0  # field of view in units of D25 (docs/DOMAIN.md: 1.5-3)
DEFAULT_D25_ARCMIN = 1.0  # when the catalog gives no size
SDSS_PIXEL_SCALE = 0.396127
FRAMES_RERUN = 301
MAX_BODY_BYTES = 32 * 2**20


class SdssError(Exception):
    """A failed SDSS request. `permanent` says whether retrying can help; `reason` says why."""

    def __init__(
        self,
        reason: str,
        *,
        permanent: bool,
        status: int | None = None,
        retry_after: float | None = None,
        blank: bool = False,
    ):
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        self.status = status
        self.retry_after = retry_after
        # An all-dark image: outside the footprint, or a server's transient hiccup. Retried a few times.
        self.blank = blank

    def __str__(self) -> str:
        return f"{'permanent' if self.permanent else 'transient'}: {self.reason}"


@dataclass(frozen=True)
class Cutout:
    """A colour postage stamp ready to store."""

    data: bytes  # JPEG, STAMP_PX x STAMP_PX
    width: int
    height: int
    pixel_scale: float  # arcsec/px of the stored stamp
    url: str


@dataclass(frozen=True)
class FieldId:
    run: int
    camcol: int
    field: int
    rerun: int = FRAMES_RERUN


@dataclass(frozen=True)
class FitsStamp:
    data: bytes  # FITS, one band, float32 nanomaggies, with the frame's WCS cut to the stamp
    band: str
    width: int
    height: int
    pixel_scale: float
    url: str


# ------------------------------------------------------------------------------------ pure helpers


def check_position(ra: float, dec: float) -> None:
    """Raise a permanent SdssError for coordinates no survey can serve."""
    if not (isinstance(ra, int | float) and isinstance(dec, int | float)) or not (
        math.isfinite(ra) and math.isfinite(dec)
    ):
        raise SdssError(f"invalid coordinates ra={ra!r} dec={dec!r}", permanent=True)
    if not (0.0 <= ra < 360.0 and -90.0 <= dec <= 90.0):
        raise SdssError(f"invalid coordinates ra={ra} dec={dec}: need 0 <= ra < 360, -90 <= dec <= 90", permanent=True)


def cutout_plan(*, d25_arcmin: float | None, fov_factor: float = DEFAULT_FOV_FACTOR) -> tuple[float, int, float]:
    """(scale arcsec/px, request size px, field of view arcsec) for a galaxy of size D25.

    docs/DOMAIN.md: field of view fov_factor x D25; start at 0.25"/px and double the scale until the
    field fits in 2048 px; never ask for fewer than 64 px. The stamp is then resampled to 512 px.
    """
    d25 = d25_arcmin if d25_arcmin and d25_arcmin > 0 and math.isfinite(d25_arcmin) else DEFAULT_D25_ARCMIN
    fov = fov_factor * d25 * 60.0
    scale = START_SCALE
    while fov / scale > MAX_CUTOUT_PX:
        scale *= 2.0
    size = int(min(MAX_CUTOUT_PX, max(MIN_CUTOUT_PX, round(fov / scale))))
    return scale, size, size * scale


def cutout_url(
    *, base_url: str, data_release: str, ra: float, dec: float, scale: float, width: int, height: int, opt: str = ""
) -> str:
    if not (MIN_CUTOUT_PX <= width <= MAX_CUTOUT_PX and MIN_CUTOUT_PX <= height <= MAX_CUTOUT_PX):
        raise SdssError(f"cutout size {width}x{height} outside the service's 64-2048 px", permanent=True)
    return (
        f"{base_url.rstrip('/')}/{data_release}/SkyServerWS/ImgCutout/getjpeg"
        f"?ra={ra:.6f}&dec={dec:.6f}&scale={scale:.6g}&width={width}&height={height}&opt={opt}"
    )


def field_query_url(*, base_url: str, data_release: str, ra: float, dec: float) -> str:
    sql = (
        "SELECT TOP 1 run, rerun, camcol, field FROM dbo.fGetNearbyFrameEq("
        f"{ra:.6f}, {dec:.6f}, 2, 0) ORDER BY distance"
    )
    return f"{base_url.rstrip('/')}/{data_release}/SkyServerWS/SearchTools/SqlSearch?" + requests.compat.urlencode(
        {"cmd": sql, "format": "json"}
    )


def frame_url(*, sas_base_url: str, data_release: str, field: FieldId, band: str) -> str:
    if band not in ("u", "g", "r", "i", "z"):
        raise SdssError(f"unknown SDSS band {band!r}", permanent=True)
    return (
        f"{sas_base_url.rstrip('/')}/{data_release}/eboss/photoObj/frames/{field.rerun}/{field.run}/{field.camcol}/"
        f"frame-{band}-{field.run:06d}-{field.camcol}-{field.field:04d}.fits.bz2"
    )


def is_blank(pixels: np.ndarray) -> bool:
    """True for the all-dark images SDSS serves outside its footprint (JPEG noise allowed for)."""
    # Fewer than 0.1% of the values above a faint level: no galaxy, no star, no sky noise.
    return np.count_nonzero(pixels > 10) < 0.001 * pixels.size


def parse_rate(text: str) -> float | None:
    """Requests per second from a rate like '10/s', '300/m' or '5000/h'; None for no limit ('' or '0')."""
    text = (text or "").strip()
    if text in ("", "0"):
        return None
    match = re.fullmatch(r"(\d+(?:\.\d+)?)/([smh])", text)
    if not match:
        raise ValueError(f"{text!r} is not a rate like 10/s, 300/m or 5000/h")
    per_second = float(match.group(1)) / {"s": 1, "m": 60, "h": 3600}[match.group(2)]
    return per_second or None


class RateLimiter:
    """Spaces calls at least 1/rate seconds apart in this process (threads share it)."""

    def __init__(
        self,
        per_second: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.interval = 1.0 / per_second if per_second else 0.0
        self.clock, self.sleep = clock, sleep
        self.next_slot = 0.0
        self.lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self.lock:
            now = self.clock()
            slot = max(now, self.next_slot)
            self.next_slot = slot + self.interval
        if slot > now:
            self.sleep(slot - now)


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


# ------------------------------------------------------------------------------------ the client


class HttpClient:
    """GETs with fixed timeouts, a per-process rate limit and one error type: the plumbing of every image source
    (SDSS here, HiPS and URL templates in acquisition.sources). Every failure is an SdssError."""

    def __init__(
        self, *, timeout_s: float, rate_limit_per_s: float | None = None, session: requests.Session | None = None
    ):
        # Connecting to a healthy server takes milliseconds; the read timeout covers rendering.
        self.timeout = (min(5.0, timeout_s), timeout_s)
        # Every request, retries and FITS frames included, waits its turn: the server sees at most
        # rate_limit_per_s requests per second from this process.
        self.limiter = RateLimiter(rate_limit_per_s)
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = "galaxy-inclination-zoo/1.0"

    def get(self, url: str, *, params: dict | None = None) -> requests.Response:
        """GET url and return a complete 200 response, or raise SdssError."""
        self.limiter.wait()
        try:
            response = self.session.get(url, params=params, timeout=self.timeout, stream=True)
            try:
                body = response.raw.read(MAX_BODY_BYTES + 1, decode_content=True)
            finally:
                response.close()
        except requests.Timeout as exc:
            raise SdssError(f"timed out after {self.timeout[1]:g}s", permanent=False) from exc
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            reason = "truncated body" if "IncompleteRead" in repr(exc) else f"connection failed: {_short(exc)}"
            raise SdssError(reason, permanent=False) from exc
        except Exception as exc:  # urllib3 errors raised while reading the body
            if exc.__class__.__module__.startswith(("urllib3", "http", "socket")) or isinstance(exc, OSError):
                reason = "truncated body" if "IncompleteRead" in repr(exc) else f"connection failed: {_short(exc)}"
                raise SdssError(reason, permanent=False) from exc
            raise
        status = response.status_code
        if status != 200:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if status == 429 or status >= 500:
                raise SdssError(
                    f"HTTP {status} from the server", permanent=False, status=status, retry_after=retry_after
                )
            if status == 404:
                raise SdssError("HTTP 404: no such product", permanent=True, status=status)
            # A refusal usually says why (hips2fits answers JSON with a title and a description).
            said = body[:200].decode("utf-8", "replace").replace("\n", " ").strip()
            raise SdssError(
                f"HTTP {status}: request refused" + (f": {said}" if said else ""), permanent=True, status=status
            )
        if len(body) > MAX_BODY_BYTES:
            raise SdssError(f"body larger than {MAX_BODY_BYTES} bytes", permanent=True, status=status)
        expected = response.headers.get("Content-Length")
        if (
            expected
            and expected.isdigit()
            and int(expected) != len(body)
            and "Content-Encoding" not in response.headers
        ):
            raise SdssError(f"truncated body: {len(body)} of {expected} bytes", permanent=False, status=status)
        response._content = body
        return response


class SdssClient(HttpClient):
    """Fetches SDSS products with fixed timeouts; every failure is an SdssError."""

    def __init__(
        self,
        *,
        cutout_base_url: str,
        frames_base_url: str,
        data_release: str,
        timeout_s: float,
        fov_factor: float = DEFAULT_FOV_FACTOR,
        rate_limit_per_s: float | None = None,
        session: requests.Session | None = None,
    ):
        super().__init__(timeout_s=timeout_s, rate_limit_per_s=rate_limit_per_s, session=session)
        self.cutout_base_url = cutout_base_url
        self.frames_base_url = frames_base_url
        self.data_release = data_release
        self.fov_factor = fov_factor

    # -------------------------------------------------------------- colour cutouts
    def fetch_cutout(self, *, ra: float, dec: float, d25_arcmin: float | None) -> Cutout:
        """The 512x512 colour stamp of a galaxy, sized from D25; raises SdssError."""
        check_position(ra, dec)
        scale, size, fov = cutout_plan(d25_arcmin=d25_arcmin, fov_factor=self.fov_factor)
        url = cutout_url(
            base_url=self.cutout_base_url,
            data_release=self.data_release,
            ra=ra,
            dec=dec,
            scale=scale,
            width=size,
            height=size,
        )
        response = self.get(url)
        image = _decode_jpeg(response, expected=(size, size))
        pixels = np.asarray(image)
        if is_blank(pixels):
            raise SdssError("blank image: the position is outside the SDSS footprint", permanent=False, blank=True)
        if size == STAMP_PX:
            data = response.content  # already the product: store the server's bytes untouched
        else:
            buffer = io.BytesIO()
            # Pillow's bicubic filter widens with the reduction factor, so shrinking is antialiased too.
            image.resize((STAMP_PX, STAMP_PX), Image.Resampling.BICUBIC).save(buffer, format="JPEG", quality=92)
            data = buffer.getvalue()
        return Cutout(data=data, width=STAMP_PX, height=STAMP_PX, pixel_scale=fov / STAMP_PX, url=url)

    # -------------------------------------------------------------- per-band FITS
    def find_field(self, *, ra: float, dec: float) -> FieldId:
        """The imaging field (run, camcol, field) covering a position."""
        check_position(ra, dec)
        response = self.get(
            field_query_url(base_url=self.cutout_base_url, data_release=self.data_release, ra=ra, dec=dec)
        )
        try:
            payload = json.loads(response.content)
            rows = payload[0]["Rows"] if isinstance(payload, list) else payload["Rows"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise SdssError("field lookup answered something that is not SkyServer JSON", permanent=False) from exc
        if not rows:
            raise SdssError("no SDSS imaging field covers this position (outside the footprint)", permanent=True)
        row = rows[0]
        return FieldId(run=int(row["run"]), camcol=int(row["camcol"]), field=int(row["field"]), rerun=int(row["rerun"]))

    def fetch_fits_stamp(
        self, *, ra: float, dec: float, d25_arcmin: float | None, band: str, field: FieldId
    ) -> FitsStamp:
        """A STAMP_PX stamp in one band cut from the calibrated frame with its WCS (native pixels)."""
        from astropy.io import fits
        from astropy.nddata import Cutout2D, NoOverlapError
        from astropy.wcs import WCS

        url = frame_url(sas_base_url=self.frames_base_url, data_release=self.data_release, field=field, band=band)
        raw = self.get(url).content
        try:
            data = bz2.decompress(raw) if raw[:3] == b"BZh" else raw
            with fits.open(io.BytesIO(data)) as hdus:
                frame = np.asarray(hdus[0].data, dtype=np.float32)
                wcs = WCS(hdus[0].header)
        except (OSError, ValueError, EOFError) as exc:
            raise SdssError(f"frame is not a readable FITS file: {_short(exc)}", permanent=False) from exc
        if frame.ndim != 2:
            raise SdssError(f"frame has {frame.ndim} dimensions, expected 2", permanent=True)
        _, _, fov = cutout_plan(d25_arcmin=d25_arcmin, fov_factor=self.fov_factor)
        size_px = int(min(MAX_CUTOUT_PX, max(MIN_CUTOUT_PX, round(fov / SDSS_PIXEL_SCALE))))
        try:
            from astropy.coordinates import SkyCoord

            cut = Cutout2D(frame, SkyCoord(ra, dec, unit="deg"), size_px, wcs=wcs, mode="partial", fill_value=0.0)
        except NoOverlapError as exc:
            raise SdssError("the galaxy is not on the frame found for it", permanent=True) from exc
        stamp = cut.data.astype(np.float32)
        if float(np.nanmax(np.abs(stamp))) == 0.0:
            raise SdssError("blank FITS stamp: the position is outside the SDSS footprint", permanent=False, blank=True)
        header = cut.wcs.to_header()
        header["BAND"] = band
        header["BUNIT"] = "nanomaggy"
        header["SDSSURL"] = url[-68:]
        buffer = io.BytesIO()
        fits.PrimaryHDU(stamp, header=header).writeto(buffer)
        height, width = stamp.shape
        return FitsStamp(
            data=buffer.getvalue(), band=band, width=width, height=height, pixel_scale=SDSS_PIXEL_SCALE, url=url
        )


def _decode_jpeg(response: requests.Response, *, expected: tuple[int, int]) -> Image.Image:
    body = response.content
    content_type = response.headers.get("Content-Type", "")
    if "html" in content_type or body.lstrip()[:1] == b"<":
        snippet = body[:80].decode("utf-8", "replace").replace("\n", " ")
        raise SdssError(f"server answered HTML instead of an image: {snippet!r}", permanent=False)
    try:
        image = Image.open(io.BytesIO(body))
        image.load()
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        # A body cut short by the network decodes as a truncated image: worth another try.
        raise SdssError(f"truncated or undecodable image ({len(body)} bytes): {_short(exc)}", permanent=False) from exc
    if image.size != expected:
        raise SdssError(
            f"image of the wrong size: {image.size[0]}x{image.size[1]}, asked for {expected[0]}x{expected[1]}",
            permanent=True,
        )
    return image.convert("RGB")


def _short(exc: BaseException) -> str:
    text = str(exc) or exc.__class__.__name__
    return text if len(text) < 160 else text[:157] + "..."
