"""A loopback stand-in for the SDSS services, with faults on demand (tests, demo, benchmarks).

A real HTTP server (threads, one per connection) answering the URL forms `acquisition.sdss` uses:
- /<dr>/SkyServerWS/ImgCutout/getjpeg?ra=&dec=&scale=&width=&height=  -> a synthetic galaxy JPEG
  drawn at the requested coordinates, scale and size (`acquisition.renderer.render_at`);
- /<dr>/SkyServerWS/SearchTools/SqlSearch?cmd=...fGetNearbyFrameEq(ra, dec, ...)&format=json
  -> the (run, rerun, camcol, field) "covering" the position, SkyServer's JSON shape;
- /sas/<dr>/eboss/photoObj/frames/301/RUN/CAMCOL/frame-BAND-RUN6-CAMCOL-FIELD4.fits.bz2 -> a bz2
  FITS frame (float32 nanomaggies with a TAN WCS). Stand-in frames are 1024x744 native pixels
  (half a real frame, to keep rendering cheap) centred on the galaxy last looked up in that field.

It also stands in for other surveys (acquisition.sources):
- /hips2fits?hips=&width=&height=&projection=&ra=&dec=&fov=&format=jpg|png|fits  -> the CDS hips2fits
  service: a colour JPEG/PNG, or for `format=fits` one band (the HiPS id's last part: g, r, i, z) as float32
  with a TAN WCS. HiPS surveys cover the whole sky (no footprint); a refusal is JSON, as hips2fits's;
- /cutout?ra=&dec=&size=&scale=&band=  -> a plain cutout service for URL-template surveys: a colour JPEG, or
  with `band` a float32 FITS stamp.
The same faults apply to both (blank: an all-dark JPEG or an all-zero FITS; wrong_size: half the width).

Like SDSS, positions outside the footprint (dec below `footprint_min_dec`) come back as blank,
all-dark images, not as errors. Faults: POST /_faults with JSON
{"rates": {"500": 0.1, "503": 0.1, ...}, "next": ["reset", "truncated"], "retry_after": 1, "slow_s": 3}
- `next` is played first, one fault per request, then each request draws from `rates`.
Fault names: 500, 503 (with Retry-After), 404, slow (answers after slow_s), reset (TCP RST),
truncated (half the promised body), blank, html (an HTML page with status 200), wrong_size.
GET /_stats returns counts per outcome; POST /_stats/reset clears them.

`pool_size` > 0 (benchmarks) renders that many galaxies once per requested geometry and serves
the one picked by the coordinates, so the measurement is of the client and workers, not of the
renderer (one 512 px render costs ~0.15 s of CPU).
"""

from __future__ import annotations

import bz2
import contextlib
import hashlib
import io
import json
import logging
import math
import random
import re
import socket
import struct
import threading
import time
from collections import Counter, OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import numpy as np

from acquisition.renderer import render_at, to_color_jpeg

logger = logging.getLogger(__name__)

FAULTS = ("500", "503", "404", "slow", "reset", "truncated", "blank", "html", "wrong_size")
FRAME_SHAPE = (744, 1024)  # rows, columns at the native 0.396"/px
NATIVE_SCALE = 0.396127
HIPS_PATH, TEMPLATE_PATH = "/hips2fits", "/cutout"
CUTOUT_RE = re.compile(r"^/(?P<dr>[\w.-]+)/SkyServerWS/ImgCutout/getjpeg$")
SQL_RE = re.compile(r"^/(?P<dr>[\w.-]+)/SkyServerWS/SearchTools/SqlSearch$")
FRAME_RE = re.compile(
    r"^/sas/(?P<dr>[\w.-]+)/eboss/photoObj/frames/(?P<rerun>\d+)/(?P<run>\d+)/(?P<camcol>\d)/"
    r"frame-(?P<band>[ugriz])-(?P<run6>\d{6})-(?P<camcol2>\d)-(?P<field>\d{4})\.fits\.bz2$"
)
NEARBY_RE = re.compile(r"fGetNearbyFrameEq\(\s*([-+\d.eE]+)\s*,\s*([-+\d.eE]+)")


class Faults:
    """Which fault, if any, the next request gets; thread-safe."""

    def __init__(self, *, rates: dict[str, float] | None = None, retry_after: float = 1, slow_s: float = 5, seed=0):
        self.lock = threading.Lock()
        self.random = random.Random(seed)
        self.configure(rates=rates or {}, next_faults=[], retry_after=retry_after, slow_s=slow_s)

    def configure(self, *, rates=None, next_faults=None, retry_after=None, slow_s=None) -> None:
        with self.lock:
            if rates is not None:
                unknown = set(rates) - set(FAULTS)
                if unknown or any(not 0 <= float(p) <= 1 for p in rates.values()) or sum(rates.values()) > 1:
                    raise ValueError(f"bad fault rates {rates!r}; names are {', '.join(FAULTS)}")
                self.rates = {k: float(v) for k, v in rates.items()}
            if next_faults is not None:
                if set(next_faults) - set(FAULTS) - {"none"}:
                    raise ValueError(f"bad fault names in {next_faults!r}")
                self.next = list(next_faults)
            if retry_after is not None:
                self.retry_after = retry_after
            if slow_s is not None:
                self.slow_s = float(slow_s)

    def draw(self) -> str | None:
        with self.lock:
            if self.next:
                fault = self.next.pop(0)
                return None if fault == "none" else fault
            x = self.random.random()
            for name, p in self.rates.items():
                if x < p:
                    return name
                x -= p
            return None


def _seed_for(ra: float, dec: float) -> int:
    return int.from_bytes(hashlib.sha256(f"{ra:.5f},{dec:.5f}".encode()).digest()[:8], "little")


def field_for(ra: float, dec: float) -> tuple[int, int, int]:
    """A made-up but stable (run, camcol, field) for a position: 0.1 deg cells."""
    return 1000 + int(math.floor(ra * 10)), 1 + int(math.floor((dec + 90) * 10)) % 6, int(math.floor((dec + 90) * 10))


class StandinServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address=("127.0.0.1", 0), *, faults: Faults | None = None, pool_size: int = 0,
                 footprint_min_dec: float = -30.0, cache_size: int = 256):  # fmt: skip
        super().__init__(address, StandinHandler)
        self.faults = faults or Faults()
        self.pool_size = pool_size
        self.footprint_min_dec = footprint_min_dec
        self.stats: Counter = Counter()
        self.stats_lock = threading.Lock()
        self.cache: OrderedDict = OrderedDict()
        self.cache_size = cache_size
        self.cache_lock = threading.Lock()
        self.field_positions: dict[tuple[int, int, int], tuple[float, float]] = {}

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def count(self, outcome: str) -> None:
        with self.stats_lock:
            self.stats[outcome] += 1

    # ------------------------------------------------------------------ products
    def _cached(self, key, make):
        with self.cache_lock:
            if key in self.cache:
                self.cache.move_to_end(key)
                return self.cache[key]
        value = make()
        with self.cache_lock:
            self.cache[key] = value
            while len(self.cache) > self.cache_size:
                self.cache.popitem(last=False)
        return value

    def cutout_jpeg(self, ra: float, dec: float, scale: float, width: int, height: int) -> bytes:

        if self.pool_size > 0:
            slot = _seed_for(ra, dec) % self.pool_size
            key = ("pool", slot, scale, width, height)
            return self._cached(
                key,
                lambda: to_color_jpeg(
                    render_at(slot * 7.0, 10.0, scale_arcsec_per_px=scale, width=width, height=height, seed=slot + 1)
                ),
            )
        key = ("cutout", round(ra, 5), round(dec, 5), scale, width, height)
        return self._cached(
            key, lambda: to_color_jpeg(render_at(ra, dec, scale_arcsec_per_px=scale, width=width, height=height))
        )

    def stamp_rendering(self, ra: float, dec: float, scale: float, width: int, height: int):
        key = ("stamp", round(ra, 5), round(dec, 5), scale, width, height)
        return self._cached(key, lambda: render_at(ra, dec, scale_arcsec_per_px=scale, width=width, height=height))

    def stamp_color(
        self, ra: float, dec: float, scale: float, width: int, height: int, *, format: str = "jpg"
    ) -> bytes:
        rendering = self.stamp_rendering(ra, dec, scale, width, height)
        if format == "png":
            from PIL import Image

            from acquisition.renderer import to_color_rgb

            buffer = io.BytesIO()
            Image.fromarray(to_color_rgb(rendering)).save(buffer, format="PNG")
            return buffer.getvalue()
        return to_color_jpeg(rendering)

    def stamp_fits(self, ra: float, dec: float, scale: float, width: int, height: int, band: str) -> bytes:
        from astropy.io import fits

        rendering = self.stamp_rendering(ra, dec, scale, width, height)
        plane = rendering.bands[..., "gri".index(band) if band in "gri" else 2][::-1, :]  # z: the reddest we draw
        hdu = fits.PrimaryHDU(np.ascontiguousarray(plane, dtype=np.float32))
        h = hdu.header
        h["CTYPE1"], h["CTYPE2"] = "RA---TAN", "DEC--TAN"
        h["CRVAL1"], h["CRVAL2"] = ra, dec
        h["CRPIX1"], h["CRPIX2"] = (width + 1) / 2.0, (height + 1) / 2.0
        h["CD1_1"], h["CD1_2"], h["CD2_1"], h["CD2_2"] = -scale / 3600, 0.0, 0.0, scale / 3600
        h["FILTER"] = band
        buffer = io.BytesIO()
        hdu.writeto(buffer)
        return buffer.getvalue()

    def frame_fits_bz2(self, run: int, camcol: int, field: int, band: str) -> bytes:
        from astropy.io import fits

        key = (run, camcol, field)
        ra, dec = self.field_positions.get(key, ((run - 1000 + 0.5) / 10.0, (field + 0.5) / 10.0 - 90.0))
        rows, cols = FRAME_SHAPE
        rendering = self._cached(
            ("frame", *key, ra, dec),
            lambda: render_at(ra, dec, scale_arcsec_per_px=NATIVE_SCALE, width=cols, height=rows),
        )
        plane = rendering.bands[..., "gri".index(band) if band in "gri" else 1][::-1, :]  # FITS rows run upward
        hdu = fits.PrimaryHDU(np.ascontiguousarray(plane, dtype=np.float32))
        h = hdu.header
        h["CTYPE1"], h["CTYPE2"] = "RA---TAN", "DEC--TAN"
        h["CRVAL1"], h["CRVAL2"] = ra, dec
        h["CRPIX1"], h["CRPIX2"] = (cols + 1) / 2.0, (rows + 1) / 2.0
        h["CD1_1"], h["CD1_2"], h["CD2_1"], h["CD2_2"] = -NATIVE_SCALE / 3600, 0.0, 0.0, NATIVE_SCALE / 3600
        h["FILTER"], h["RUN"], h["CAMCOL"], h["FIELD"] = band, run, camcol, field
        h["BUNIT"] = "nanomaggy"
        buffer = io.BytesIO()
        hdu.writeto(buffer)
        return bz2.compress(buffer.getvalue(), compresslevel=1)


class StandinHandler(BaseHTTPRequestHandler):
    server: StandinServer
    protocol_version = "HTTP/1.1"  # keep-alive, like the real service behind its load balancer

    def log_message(self, format, *args):
        logger.debug("standin %s " + format, self.client_address[0], *args)

    # ------------------------------------------------------------------ plumbing
    def _send(self, status: int, body: bytes, content_type: str, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, str(value))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, payload) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _html(self, status: int, message: str) -> None:
        self._send(status, f"<html><body><h1>{status}</h1><p>{message}</p></body></html>".encode(), "text/html")

    def _reset(self) -> None:
        # SO_LINGER 0 turns close() into a TCP RST: the client sees "connection reset by peer".
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        self.close_connection = True

    def _fault(self, kind: str, fault: str | None, *, body: bytes, content_type: str, blank=None, wrong=None) -> bool:
        """Play `fault` if any; True when the answer has been given (or withheld)."""
        if fault is None:
            return False
        self.server.count(f"{kind}:fault:{fault}")
        if fault == "500":
            self._html(500, "Internal Server Error")
        elif fault == "503":
            self._send(503, b"<html><body>Service busy</body></html>", "text/html",
                       {"Retry-After": self.server.faults.retry_after})  # fmt: skip
        elif fault == "404":
            self._html(404, "Not Found")
        elif fault == "slow":
            time.sleep(self.server.faults.slow_s)
            with contextlib.suppress(OSError):
                self._send(200, body, content_type)
        elif fault == "reset":
            self._reset()
        elif fault == "truncated":
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True  # an orderly close: the client sees the body end early
        elif fault == "html":
            self._html(200, "The SkyServer is down for maintenance.")
        elif fault == "blank" and blank is not None:
            self._send(200, blank(), content_type)
        elif fault == "wrong_size" and wrong is not None:
            self._send(200, wrong(), content_type)
        else:
            return False
        return True

    # ------------------------------------------------------------------ routes
    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        path = urlsplit(self.path).path
        if path == "/_stats/reset":
            with self.server.stats_lock:
                self.server.stats.clear()
            return self._json(200, {"ok": True})
        if path != "/_faults":
            return self._html(404, "Not Found")
        try:
            spec = json.loads(raw or b"{}")
            self.server.faults.configure(
                rates=spec.get("rates"),
                next_faults=spec.get("next"),
                retry_after=spec.get("retry_after"),
                slow_s=spec.get("slow_s"),
            )
        except (ValueError, TypeError, AttributeError) as exc:
            return self._json(400, {"error": str(exc)})
        return self._json(200, {"ok": True})

    def do_GET(self):
        parts = urlsplit(self.path)
        if parts.path == "/_stats":
            with self.server.stats_lock:
                return self._json(200, dict(self.server.stats))
        try:
            if match := CUTOUT_RE.match(parts.path):
                return self._cutout(parse_qs(parts.query))
            if match := SQL_RE.match(parts.path):
                return self._sql(parse_qs(parts.query))
            if match := FRAME_RE.match(parts.path):
                return self._frame(match)
            if parts.path == HIPS_PATH:
                return self._hips(parse_qs(parts.query))
            if parts.path == TEMPLATE_PATH:
                return self._template(parse_qs(parts.query))
        except (BrokenPipeError, ConnectionResetError):
            return None
        self.server.count("404")
        return self._html(404, "Not Found")

    def _cutout(self, query: dict) -> None:
        try:
            ra, dec, scale = (float(query[k][0]) for k in ("ra", "dec", "scale"))
            width, height = int(query["width"][0]), int(query["height"][0])
        except (KeyError, ValueError, IndexError):
            self.server.count("cutout:400")
            return self._html(400, "ra, dec, scale, width and height are required numbers")
        if not (0 <= ra < 360 and -90 <= dec <= 90 and 64 <= width <= 2048 and 64 <= height <= 2048 and scale > 0):
            self.server.count("cutout:400")
            return self._html(400, "Invalid coordinates or image size")
        fault = self.server.faults.draw()

        def blank():
            from PIL import Image

            buffer = io.BytesIO()
            Image.new("RGB", (width, height)).save(buffer, format="JPEG")
            return buffer.getvalue()

        def wrong():
            from PIL import Image

            buffer = io.BytesIO()
            Image.new("RGB", (width // 2 + 1, height), (90, 90, 90)).save(buffer, format="JPEG")
            return buffer.getvalue()

        if dec < self.server.footprint_min_dec:
            self.server.count("cutout:outside_footprint")
            return self._send(200, blank(), "image/jpeg")
        needs_body = fault in (None, "slow", "truncated")
        body = self.server.cutout_jpeg(ra, dec, scale, width, height) if needs_body else b""
        if self._fault("cutout", fault, body=body, content_type="image/jpeg", blank=blank, wrong=wrong):
            return None
        self.server.count("cutout:ok")
        return self._send(200, body, "image/jpeg")

    def _survey_stamp(self, kind: str, *, ra, dec, scale, width, height, band: str, format: str) -> None:
        """A colour (`band` empty) or one-band FITS stamp, with the faults a survey service may show."""
        fault = self.server.faults.draw()
        fits_wanted = bool(band)

        def blank():
            if fits_wanted:
                return _zeros_fits(width, height)
            from PIL import Image

            buffer = io.BytesIO()
            Image.new("RGB", (width, height)).save(buffer, format="JPEG")
            return buffer.getvalue()

        def wrong():
            if fits_wanted:
                return _zeros_fits(width // 2 + 1, height, fill=1.0)
            from PIL import Image

            buffer = io.BytesIO()
            Image.new("RGB", (width // 2 + 1, height), (90, 90, 90)).save(buffer, format="JPEG")
            return buffer.getvalue()

        content_type = "application/fits" if fits_wanted else ("image/png" if format == "png" else "image/jpeg")
        body = b""
        if fault in (None, "slow", "truncated"):
            if fits_wanted:
                body = self.server.stamp_fits(ra, dec, scale, width, height, band)
            else:
                body = self.server.stamp_color(ra, dec, scale, width, height, format=format)
        if self._fault(kind, fault, body=body, content_type=content_type, blank=blank, wrong=wrong):
            return None
        self.server.count(f"{kind}:ok")
        return self._send(200, body, content_type)

    def _hips(self, query: dict) -> None:
        try:
            hips = query["hips"][0]
            ra, dec, fov = (float(query[k][0]) for k in ("ra", "dec", "fov"))
            width, height = int(query["width"][0]), int(query["height"][0])
            format = query.get("format", ["fits"])[0]
        except (KeyError, ValueError, IndexError):
            self.server.count("hips:400")
            return self._json(400, {"title": "Bad request", "description": "hips, ra, dec, fov, width, height"})
        ok = 0 <= ra < 360 and -90 <= dec <= 90 and 0 < fov <= 180 and 1 <= width <= 4096 and 1 <= height <= 4096
        if not ok or format not in ("jpg", "png", "fits"):
            self.server.count("hips:400")
            return self._json(400, {"title": "Bad request", "description": "invalid position, size or format"})
        band = hips.rsplit("/", 1)[-1] if format == "fits" else ""
        if format == "fits" and band not in ("g", "r", "i", "z"):
            self.server.count("hips:400")
            return self._json(400, {"title": "Unknown HiPS", "description": f"{hips} has no FITS tiles here"})
        scale = fov * 3600.0 / width
        return self._survey_stamp(
            "hips", ra=ra, dec=dec, scale=scale, width=width, height=height, band=band, format=format
        )

    def _template(self, query: dict) -> None:
        try:
            ra, dec, scale = (float(query[k][0]) for k in ("ra", "dec", "scale"))
            size = int(query["size"][0])
            band = query.get("band", [""])[0]
        except (KeyError, ValueError, IndexError):
            self.server.count("template:400")
            return self._html(400, "ra, dec, size and scale are required numbers")
        if not (0 <= ra < 360 and -90 <= dec <= 90 and 16 <= size <= 2048 and scale > 0 and band in ("", *"griz")):
            self.server.count("template:400")
            return self._html(400, "Invalid coordinates, size or band")
        return self._survey_stamp(
            "template", ra=ra, dec=dec, scale=scale, width=size, height=size, band=band, format="jpg"
        )

    def _sql(self, query: dict) -> None:
        match = NEARBY_RE.search(query.get("cmd", [""])[0])
        if not match:
            self.server.count("sql:400")
            return self._html(400, "The stand-in answers only fGetNearbyFrameEq(ra, dec, ...) queries")
        ra, dec = float(match.group(1)), float(match.group(2))
        fault = self.server.faults.draw()
        body = json.dumps([{"TableName": "Table1", "Rows": []}]).encode()
        if self._fault("sql", fault, body=body, content_type="application/json"):
            return None
        rows = []
        if 0 <= ra < 360 and self.server.footprint_min_dec <= dec <= 90:
            run, camcol, field = field_for(ra, dec)
            self.server.field_positions[(run, camcol, field)] = (ra, dec)
            rows = [{"run": run, "rerun": 301, "camcol": camcol, "field": field, "distance": 0.0}]
        self.server.count("sql:ok")
        return self._json(200, [{"TableName": "Table1", "Rows": rows}])

    def _frame(self, match: re.Match) -> None:
        run, camcol, field, band = int(match["run"]), int(match["camcol"]), int(match["field"]), match["band"]
        if int(match["run6"]) != run or int(match["camcol2"]) != camcol:
            self.server.count("404")
            return self._html(404, "Not Found")
        fault = self.server.faults.draw()
        body = self.server.frame_fits_bz2(run, camcol, field, band)
        if self._fault("frame", fault, body=body, content_type="application/x-bzip2"):
            return None
        self.server.count("frame:ok")
        return self._send(200, body, "application/x-bzip2")


def _zeros_fits(width: int, height: int, *, fill: float = 0.0) -> bytes:
    from astropy.io import fits

    buffer = io.BytesIO()
    fits.PrimaryHDU(np.full((height, width), fill, dtype=np.float32)).writeto(buffer)
    return buffer.getvalue()


@contextlib.contextmanager
def running_standin(*, port: int = 0, **kwargs):
    """Start a stand-in on 127.0.0.1 in a background thread; yields the server (`.url`, `.faults`)."""
    server = StandinServer(("127.0.0.1", port), **kwargs)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
