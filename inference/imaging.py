"""The image processing unit: untrusted bytes in, model-ready arrays out.

Training, the API and the website all call `prepare_for_model`; there is no second copy of this
logic anywhere. The module imports no Django so it can be tested and benchmarked alone.

Pipeline: `decode_image` (JPEG/PNG/GIF/TIFF via Pillow, FITS via astropy, with size and pixel
limits checked *before* any pixel is decoded) -> colour composite or per-band asinh stretch to
[0, 1] -> `pad_to_square` with sky-like padding -> optional `rotate_major_axis_horizontal` ->
resize to the model input.

Conventions:
- Arrays are row-major with row 0 at the *top* of the picture, as JPEGs are shown. FITS data,
  whose first row is the *bottom* (FITS origin is lower left), are flipped on decoding so a
  FITS file and the JPEG of the same field come out the same way up.
- Images are assumed north up, east left (as SDSS cutouts are). The astronomical position angle
  (PA) is measured from north through east, i.e. from "up" counter-clockwise towards "left".
- Every failure the caller can be blamed for is an `ImageError` with a short `.code` and a
  `.reason` the user can act on; nothing from Pillow or astropy leaks out.
- Animated GIFs and PNGs give their first frame (the still a viewer shows first, as the original
  service did). Multi-page TIFFs are refused (code "animated"): their pages may be bands, and
  which page holds the galaxy is a guess we should not make silently.
- Budget: an upload is refused before any pixel is decoded when it holds more than
  `Limits.max_pixels` pixels (all planes counted; 2048 x 2048 by default, SkyServer's largest
  cutout), whatever its compression: tile-compressed FITS is checked on its ZNAXISn header cards.
  At that size the worst upload costs about a second of CPU and under 200 MB (bench/bench_upload_budget.py).
- Any aspect ratio up to `Limits.max_aspect` (32:1) is padded to square with sky; the padding is done
  at the model's resolution, so a long strip costs no more than a square of the same pixels.
- 16-bit, CMYK, palette and greyscale-with-alpha images are valid and are converted: 16-bit to
  [0, 1] keeping the precision, CMYK and palette to RGB, transparency composited on black sky.
"""

from __future__ import annotations

import bz2
import io
import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError
from scipy import ndimage

from acquisition import composites
from acquisition.composites import bands_to_rgb

__all__ = [
    "FLUX_BANDS",
    "DecodedImage",
    "ImageError",
    "Limits",
    "asinh_stretch",
    "bands_from_planes",
    "bands_to_rgb",
    "decode_image",
    "median",
    "normalise_flux",
    "pad_to_square",
    "prepare_batch",
    "prepare_for_model",
    "resize",
    "rotate_major_axis_horizontal",
]

PILLOW_FORMATS = ("JPEG", "PNG", "GIF", "TIFF")
FITS_MAGIC = b"SIMPLE  ="


class ImageError(ValueError):
    """An image we cannot use, with a reason a user can act on and a short machine code."""

    def __init__(self, code: str, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason

    def __repr__(self) -> str:
        return f"ImageError(code={self.code!r}, reason={self.reason!r})"


@dataclass(frozen=True)
class Limits:
    """Resource limits for untrusted images; settings override the defaults."""

    max_bytes: int = 20 * 2**20
    max_pixels: int = 2048 * 2048
    # Past this a "galaxy stamp" is a strip of a few pixels across, too thin to hold a galaxy.
    max_aspect: float = 32.0


@dataclass
class DecodedImage:
    """Decoded pixels, float32 H x W x C.

    kind "rgb": C = 3, values in [0, 1]; "grey": C = 1, values in [0, 1];
    "bands": C = number of planes, physical values (e.g. nanomaggies) kept unclipped.
    """

    pixels: np.ndarray
    kind: Literal["rgb", "grey", "bands"]
    format: str
    bands: tuple[str, ...] = field(default=())
    # The picture made square for a model size (`_squared`), by (size, input): the position angle is measured
    # on it and every model input is cut from it, so an image is repaired and padded once, not once per use.
    _squared: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def shape(self) -> tuple[int, int]:
        return self.pixels.shape[0], self.pixels.shape[1]


# --------------------------------------------------------------------------------------------
# Decoding


def decode_image(data: bytes, *, limits: Limits = Limits(), min_size: int | None = None) -> DecodedImage:
    """Decode untrusted bytes (JPEG, PNG, GIF, TIFF, FITS, or FITS compressed with gzip/bzip2).

    `min_size`: the caller needs no more than this many pixels on the short side, so a JPEG may be
    decoded at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling), several times faster than in full.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"decode_image takes the file's bytes, not {type(data).__name__}")
    data = bytes(data)
    if len(data) == 0:
        raise ImageError("empty", "The file is empty (0 bytes); upload the image again.")
    if len(data) > limits.max_bytes:
        raise ImageError(
            "too_large",
            f"The file is {len(data) / 2**20:.1f} MB; the limit is "
            f"{limits.max_bytes / 2**20:.1f} MB. Upload a smaller cutout.",
        )
    if data[:3] == b"BZh" or data[:2] == b"\x1f\x8b":
        data = _decompress_fits(data, limits)
    if data.startswith(FITS_MAGIC):
        return _decode_fits(data, limits)
    return _decode_pillow(data, limits, min_size)


def _check_dimensions(width: int, height: int, planes: int, limits: Limits) -> None:
    if width <= 0 or height <= 0:
        raise ImageError("empty", f"The image has no pixels ({width} x {height}).")
    if width * height * planes > limits.max_pixels:
        raise ImageError(
            "too_many_pixels",
            f"The image is {width} x {height} pixels"
            + (f" x {planes} planes" if planes > 1 else "")
            + f", more than the limit of {limits.max_pixels:,} pixels. "
            "Upload a smaller cutout (a 512 x 512 stamp is plenty).",
        )
    if max(width, height) > limits.max_aspect * min(width, height):
        raise ImageError(
            "bad_shape",
            f"The image is {width} x {height} pixels; a galaxy stamp should be roughly square "
            f"(aspect ratio at most {limits.max_aspect:g}). Crop it around the galaxy.",
        )


def _decode_pillow(data: bytes, limits: Limits, min_size: int | None = None) -> DecodedImage:
    if ImageFile.LOAD_TRUNCATED_IMAGES:  # someone flipped the process-wide switch; don't trust it
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES must stay False")
    try:
        # Image.open reads only the header. Pillow's own MAX_IMAGE_PIXELS guard is process-wide
        # (not per call), so it stays as a backstop and our limit is checked below before load().
        image = Image.open(io.BytesIO(data), formats=PILLOW_FORMATS)
    except Image.DecompressionBombError as exc:
        raise ImageError(
            "too_many_pixels",
            f"The image header claims an enormous size ({exc}). Upload a normal-size cutout.",
        ) from exc
    except UnidentifiedImageError as exc:
        sniffed = _sniff(data)
        if sniffed:
            raise ImageError(
                "corrupt", f"This looks like a {sniffed} but its header is damaged; export it again."
            ) from exc
        raise ImageError(
            "unsupported_type",
            "This is not a JPEG, PNG, GIF, TIFF or FITS image. Upload one of those formats.",
        ) from exc
    except Exception as exc:  # Pillow raises many types on damaged headers
        reason = str(exc) or type(exc).__name__
        code = "truncated" if "truncat" in reason.lower() else "corrupt"
        raise ImageError(code, f"The image file is damaged or incomplete ({reason}); export it again.") from exc

    with image:
        fmt = image.format or "unknown"
        _check_dimensions(image.width, image.height, 1, limits)
        # GIF and PNG load their first frame and never touch the others; TIFF pages may be bands.
        if fmt == "TIFF" and getattr(image, "n_frames", 1) > 1:
            raise ImageError(
                "animated",
                f"This {fmt} has several pages; upload a single image of the galaxy (or a FITS cube of bands).",
            )
        if min_size is not None and fmt == "JPEG" and image.mode in ("RGB", "L"):
            image.draft(image.mode, (min_size, min_size))  # keeps at least min_size on each side
        try:
            image.load()
            pixels, kind = _pillow_to_array(image)
        except ImageError:
            raise
        except MemoryError as exc:
            raise ImageError("too_many_pixels", "The image is too large to decode.") from exc
        except Exception as exc:
            reason = str(exc) or type(exc).__name__
            code = "truncated" if "truncated" in reason.lower() else "corrupt"
            raise ImageError(
                code,
                f"The {fmt} file is damaged or incomplete ({reason}). Download or export it again.",
            ) from exc
    return DecodedImage(pixels=pixels, kind=kind, format=fmt)


def _sniff(data: bytes) -> str | None:
    """The format a file's magic number claims, for a better message when Pillow gives up."""
    for magic, name in (
        (b"\x89PNG\r\n\x1a\n", "PNG"),
        (b"\xff\xd8\xff", "JPEG"),
        (b"GIF8", "GIF"),
        (b"II*\x00", "TIFF"),
        (b"MM\x00*", "TIFF"),
    ):
        if data.startswith(magic):
            return name
    return None


def _pillow_to_array(image: Image.Image) -> tuple[np.ndarray, Literal["rgb", "grey", "bands"]]:
    mode = image.mode
    if mode in ("1", "L"):
        return _as_hwc(np.asarray(image.convert("L"), dtype=np.float32) / 255.0), "grey"
    if mode.startswith("I"):  # 16- or 32-bit integer greyscale: keep the precision
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if values.max(initial=0) <= 65535 else float(values.max())
        return _as_hwc((np.clip(values, 0, None) / top).astype(np.float32)), "grey"
    if mode == "F":  # float TIFF: scientific data, keep the values like FITS
        values = np.nan_to_num(np.asarray(image, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        return _as_hwc(values), "bands"
    if mode == "LA" or mode == "La":
        grey_alpha = np.asarray(image.convert("LA"), dtype=np.float32) / 255.0
        return _as_hwc(grey_alpha[..., 0] * grey_alpha[..., 1]), "grey"
    if mode == "RGB":  # the common case: no alpha to composite (the RGBA path below multiplies by 1.0)
        return np.asarray(image, dtype=np.float32) / 255.0, "rgb"
    # Palette, CMYK, YCbCr, RGBA ...: RGBA, then transparency composited on a black sky.
    rgba = np.asarray(image.convert("RGBA"), dtype=np.float32) / 255.0
    return np.ascontiguousarray(rgba[..., :3] * rgba[..., 3:4]), "rgb"


def _as_hwc(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array[..., np.newaxis] if array.ndim == 2 else array)


def _decompress_fits(data: bytes, limits: Limits) -> bytes:
    # Bound the output: a few MB of bzip2 can expand to gigabytes.
    cap = limits.max_pixels * 8 + 2**20
    try:
        if data[:3] == b"BZh":
            decompressor = bz2.BZ2Decompressor()
            raw = decompressor.decompress(data, max_length=cap + 1)
            complete = decompressor.eof
        else:
            decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
            raw = decompressor.decompress(data, cap + 1)
            complete = decompressor.eof
    except (OSError, EOFError, ValueError, zlib.error) as exc:
        raise ImageError("corrupt", f"The compressed file is damaged ({exc}).") from exc
    if len(raw) > cap:
        raise ImageError(
            "too_many_pixels",
            "The compressed file expands beyond the pixel limit; upload a smaller cutout.",
        )
    if not raw.startswith(FITS_MAGIC):
        raise ImageError("unsupported_type", "Only FITS files may be uploaded gzip- or bzip2-compressed.")
    if not complete:
        raise ImageError("truncated", "The compressed FITS file is incomplete; download it again.")
    return raw


def _check_compressed_fits(data: bytes, limits: Limits) -> None:
    """Check tile-compressed HDUs on their own header cards (ZNAXISn), never decompressing a tile.

    A few hundred kB of RICE-compressed zeros can describe 36 Mpx; what they decompress to is fixed
    by ZNAXISn, so that is what counts against the budget.
    """
    from astropy.io import fits

    with fits.open(io.BytesIO(data), memmap=False, disable_image_compression=True) as raw:
        for hdu in raw:
            header = hdu.header
            if not header.get("ZIMAGE", False):
                continue
            naxis = int(header.get("ZNAXIS", 0))
            dims = [int(header.get(f"ZNAXIS{k}", 0)) for k in range(1, naxis + 1)]
            if naxis < 2:
                continue
            planes = int(np.prod(dims[2:], dtype=np.int64)) if naxis > 2 else 1
            _check_dimensions(dims[0], dims[1], planes, limits)


def _decode_fits(data: bytes, limits: Limits) -> DecodedImage:
    from astropy.io import fits  # astropy is slow to import; only FITS uploads pay for it
    from astropy.utils.exceptions import AstropyUserWarning

    planes: list[np.ndarray] = []
    names: list[str] = []
    try:
        # astropy warns (rather than raises) on short files; the size check below reports it.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyUserWarning)
            _check_compressed_fits(data, limits)
            hdul = fits.open(io.BytesIO(data), memmap=False, lazy_load_hdus=False)
        with hdul:
            total_pixels = 0
            for hdu in hdul:
                if not isinstance(hdu, fits.PrimaryHDU | fits.ImageHDU | fits.CompImageHDU):
                    continue
                header = hdu.header
                naxis = int(header.get("NAXIS", 0))
                if naxis == 0:
                    continue
                dims = [int(header.get(f"NAXIS{k}", 0)) for k in range(1, naxis + 1)]
                if naxis not in (2, 3) or (naxis == 3 and not 1 <= dims[2] <= 16):
                    raise ImageError(
                        "unsupported_type",
                        f"FITS image with axes {dims}: expected 2-D planes or a cube of at most "
                        "16 planes (e.g. g, r, i).",
                    )
                n_planes = dims[2] if naxis == 3 else 1
                total_pixels += dims[0] * dims[1] * n_planes
                _check_dimensions(dims[0], dims[1], 1, limits)
                if total_pixels > limits.max_pixels:
                    _check_dimensions(dims[0], dims[1], total_pixels // (dims[0] * dims[1]), limits)
                if not isinstance(hdu, fits.CompImageHDU):
                    needed = abs(int(header.get("BITPIX", 8))) // 8 * dims[0] * dims[1] * n_planes
                    if needed > len(data):
                        raise ImageError(
                            "truncated",
                            f"The FITS header promises {needed:,} bytes of pixels but the file "
                            f"has {len(data):,}; download it again.",
                        )
                cube = np.asarray(hdu.data, dtype=np.float32)
                name = str(header.get("BAND", header.get("FILTER", ""))).strip().lower()
                if naxis == 2:
                    cube = cube[np.newaxis]
                    names.append(name)
                else:
                    band_names = header.get("BANDS", "")
                    split = [b.strip().lower() for b in str(band_names).split(",") if b.strip()]
                    names.extend(split if len(split) == n_planes else [""] * n_planes)
                if planes and cube.shape[1:] != planes[0].shape:
                    raise ImageError(
                        "corrupt",
                        f"The FITS image planes have different shapes ({planes[0].shape} and "
                        f"{cube.shape[1:]}); all bands must be on the same pixel grid.",
                    )
                planes.extend(cube)
    except ImageError:
        raise
    except MemoryError as exc:
        raise ImageError("too_many_pixels", "The FITS image is too large to decode.") from exc
    except Exception as exc:  # astropy raises OSError, VerifyError, ValueError, TypeError ...
        raise ImageError("corrupt", f"The FITS file is damaged or incomplete ({exc}); download it again.") from exc
    if not planes:
        raise ImageError("empty", "The FITS file contains no image data.")
    # FITS rows run bottom to top; flip so row 0 is the top, as in a JPEG of the same field.
    cube = np.stack(planes, axis=-1)[::-1]
    finite = np.isfinite(cube)
    if not finite.any():
        raise ImageError("empty", "The FITS image has no finite pixel values.")
    if not finite.all():  # masked pixels (NaN) become the band's median, i.e. sky
        for c in range(cube.shape[-1]):
            plane = cube[..., c]
            good = finite[..., c]
            plane[~good] = np.median(plane[good]) if good.any() else 0.0
    return DecodedImage(pixels=np.ascontiguousarray(cube), kind="bands", format="FITS", bands=tuple(names))


# --------------------------------------------------------------------------------------------
# Stretches and composites


def band_png(decoded: DecodedImage, band: str) -> bytes:
    """One band of an image as a grey PNG: a FITS plane asinh-stretched, or the matching colour channel."""
    pixels = decoded.pixels
    if decoded.kind == "bands":
        plane = pixels[..., decoded.bands.index(band)] if band in decoded.bands else pixels[..., 0]
        grey = asinh_stretch(plane)
    elif decoded.kind == "rgb":
        # SDSS colour composites put i in red, r in green, g in blue.
        grey = pixels[..., {"i": 0, "r": 1, "g": 2}[band]]
    else:
        grey = pixels[..., 0]
    buffer = io.BytesIO()
    Image.fromarray((np.clip(grey, 0, 1) * 255).astype("uint8"), mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def asinh_stretch(band: np.ndarray, *, softening: float = 0.05) -> np.ndarray:
    """Map one float band to [0, 1]: sky (median) -> 0, bright core (99.95th pct) -> 1, asinh between."""
    from astropy.visualization import AsinhStretch

    band = np.asarray(band, dtype=np.float32)
    sky = float(np.median(band))
    top = float(np.percentile(band, 99.95))
    scale = max(top - sky, 8.0 * composites.robust_sigma(band), 1e-12)
    normalised = np.clip((band - sky) / scale, 0.0, 1.0)
    return np.asarray(AsinhStretch(a=softening)(normalised, clip=True), dtype=np.float32)


# --------------------------------------------------------------------------------------------
# Geometry


def median(values: np.ndarray) -> np.ndarray:
    """`np.median` of all values, or of each row of a 2-D array: the same numbers, by a full sort.

    numpy's vectorised sort is some 4x faster than the partition np.median selects with, and the sky
    statistics of every prepared image take several medians.
    """
    array = np.asarray(values)
    if array.ndim != 2:
        array = array.ravel()
    n = array.shape[-1]
    if n == 0:
        return np.median(array, axis=-1)
    ordered = np.sort(array, axis=-1)
    # np.median's own last step: the mean of the middle one or two values.
    out = np.mean(ordered[..., (n - 1) // 2 : n // 2 + 1], axis=-1)
    if array.dtype.kind == "f":  # a NaN anywhere makes np.median NaN; sorting put any last
        nan = np.isnan(ordered[..., -1])
        if nan.any():
            out = np.where(nan, np.nan, out).astype(out.dtype)[()]
    return out


def _sky_fill(pixels: np.ndarray, mask: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Fill `mask`ed pixels with sky: the reference border's median plus noise of its spread.

    Hard black edges would be a feature a CNN can learn; sky-like padding is not.
    """
    width = max(1, min(reference.shape[0], reference.shape[1]) // 20)
    planes = np.moveaxis(reference, -1, 0).reshape(reference.shape[-1], -1)
    # Per-channel range over a contiguous copy: numpy's reduction over the leading axes of an
    # H x W x C array is some 20x slower, and this runs on every upload.
    planes = np.ascontiguousarray(planes)
    bounds = (planes.min(axis=1), planes.max(axis=1))
    return _fill_with_sky(pixels, mask, composites.border(reference, width), reference.shape[:2], bounds)


def _fill_with_sky(
    pixels: np.ndarray, mask: np.ndarray, sky_pixels: np.ndarray, seed_shape: tuple, bounds: tuple | None = None
) -> np.ndarray:
    """Fill `mask`ed pixels with the median of `sky_pixels` (N x C) plus noise of their spread.

    The noise is seeded from `seed_shape` so the same input always gives the same output; the fill is
    clipped to `bounds` (default: the range of the sky pixels).
    """
    if not mask.any():
        return pixels
    # Medians per channel over a contiguous C x N copy: the same values, at a fraction of the cost of a median
    # along the strided first axis of N x C.
    columns = np.ascontiguousarray(sky_pixels.T)
    sky = median(columns)
    sigma = 1.4826 * median(np.abs(columns - sky[:, np.newaxis]))
    rng = np.random.default_rng(seed_shape[0] * 100_003 + seed_shape[1])
    noise = rng.standard_normal((int(mask.sum()), pixels.shape[-1])).astype(np.float32)
    fill = sky + noise * sigma
    low, high = bounds if bounds is not None else (sky_pixels.min(axis=0), sky_pixels.max(axis=0))
    pixels[mask] = np.clip(fill, low, high)
    return pixels


# A picture whose border is this bright is sky shown white: a negative (black galaxy on white).
_INVERTED_SKY = 0.5
# Corner fill of a stamp shown turned (the original site's white corners), after JPEG ringing.
_WHITE_FILL = 0.9


def undo_display_effects(pixels: np.ndarray) -> np.ndarray:
    """Undo how a picture of a galaxy was displayed, so the models see the sky and not the display.

    A negative (white sky) is turned back, and white corners left by showing a stamp turned are
    replaced by sky. Both are facts about the display, not the galaxy: removing them here makes the
    answer invariant by construction, and the position angle is then measured on the galaxy, not on
    the corners. Works on H x W x 3 floats in [0, 1]; an ordinary stamp comes back unchanged.
    """
    out = np.asarray(pixels, dtype=np.float32)
    width = max(1, min(out.shape[:2]) // 20)
    # Medians of the border and of a 1-in-16 sample of pixels: enough to tell a white sky, at a
    # fraction of the cost of the whole image's median.
    if median(composites.border(out, width).mean(axis=1)) > _INVERTED_SKY and median(out[::4, ::4]) > _INVERTED_SKY:
        out = 1.0 - out
    white = np.minimum.reduce([out[..., c] for c in range(out.shape[-1])]) >= _WHITE_FILL
    if not (white[0, 0] or white[0, -1] or white[-1, 0] or white[-1, -1]):
        return out
    labels, _ = ndimage.label(white)
    corner_labels = {labels[0, 0], labels[0, -1], labels[-1, 0], labels[-1, -1]} - {0}
    fill = np.isin(labels, list(corner_labels))
    if fill.mean() > 0.5:  # mostly white: not corners of a stamp; leave it to the rejection model
        return out
    sky_ring = np.zeros(out.shape[:2], dtype=bool)
    sky_ring[:width], sky_ring[-width:], sky_ring[:, :width], sky_ring[:, -width:] = True, True, True, True
    sky_pixels = out[sky_ring & ~fill]
    if len(sky_pixels) == 0:
        return out
    return _fill_with_sky(out.copy(), fill, sky_pixels, out.shape[:2])


def pad_to_square(pixels: np.ndarray) -> np.ndarray:
    """Pad an H x W (x C) image to square, centred, with sky-like padding (not black edges)."""
    array = np.asarray(pixels, dtype=np.float32)
    squeeze = array.ndim == 2
    if squeeze:
        array = array[..., np.newaxis]
    height, width = array.shape[:2]
    side = max(height, width)
    if height == width:
        return array[..., 0].copy() if squeeze else array.copy()
    top, left = (side - height) // 2, (side - width) // 2
    out = np.zeros((side, side, array.shape[-1]), dtype=np.float32)
    out[top : top + height, left : left + width] = array
    mask = np.ones((side, side), dtype=bool)
    mask[top : top + height, left : left + width] = False
    out = _sky_fill(out, mask, array)
    return out[..., 0] if squeeze else out


def rotate_major_axis_horizontal(pixels: np.ndarray, position_angle_deg: float) -> np.ndarray:
    """Rotate so a major axis at astronomical PA `position_angle_deg` becomes horizontal.

    PA is measured from north (up) through east (left), so PA 90 is already horizontal and
    PA 0 (vertical) is turned by 90 degrees. The image keeps its size; corners uncovered by the
    rotation are filled with sky.
    """
    array = np.asarray(pixels, dtype=np.float32)
    squeeze = array.ndim == 2
    if squeeze:
        array = array[..., np.newaxis]
    # The major axis lies at (90 + PA) degrees counter-clockwise from +x; turn it back to 0.
    # Image.rotate turns counter-clockwise as displayed (row 0 at top) for positive angles. Pillow's
    # bilinear rotation of float planes gives scipy.ndimage.rotate(order=1)'s values at a third of
    # its cost, and it runs on every upload.
    angle = float((90.0 - position_angle_deg) % 180.0)
    if angle == 0.0:
        return array[..., 0].copy() if squeeze else array.copy()
    planes = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(array[..., c])).rotate(
                angle, resample=Image.Resampling.BILINEAR, fillcolor=float("nan")
            )
        )
        for c in range(array.shape[-1])
    ]
    # The uncovered corners, found plane by plane (contiguous) rather than along the last axis of H x W x C.
    mask = np.isnan(planes[0])
    for plane in planes[1:]:
        mask |= np.isnan(plane)
    rotated = np.nan_to_num(np.stack(planes, axis=-1), copy=False, nan=0.0)
    rotated = _sky_fill(rotated, mask, array)
    return rotated[..., 0] if squeeze else rotated


def resize(pixels: np.ndarray, size: int) -> np.ndarray:
    """Resize a square H x W x C float image to size x size (antialiased when shrinking).

    A large reduction first averages whole blocks of pixels (cheap, and itself antialiased), so
    Lanczos only does the last, less-than-2x step: about 5x faster for 512 -> 128.
    """
    array = np.asarray(pixels, dtype=np.float32)
    if array.shape[0] == size and array.shape[1] == size:
        return array.copy()
    factor = array.shape[0] // size
    channels = []
    for c in range(array.shape[-1]):
        channel = Image.fromarray(np.ascontiguousarray(array[..., c]))
        if factor >= 2:
            channel = channel.reduce(factor)
        if channel.size != (size, size):
            channel = channel.resize((size, size), Image.Resampling.LANCZOS)
        channels.append(np.asarray(channel, dtype=np.float32))
    return np.stack(channels, axis=-1)


def _shrink_long_side(pixels: np.ndarray, long_side: int) -> np.ndarray:
    """Resize H x W x C so its longer side is `long_side`, keeping the aspect ratio (shorter side >= 1)."""
    height, width = pixels.shape[:2]
    scale = long_side / max(height, width)
    target = (max(1, round(width * scale)), max(1, round(height * scale)))  # Pillow sizes are (w, h)
    channels = []
    for c in range(pixels.shape[-1]):
        channel = Image.fromarray(np.ascontiguousarray(pixels[..., c]), mode="F")
        # reducing_gap: whole blocks are averaged first and Lanczos does the last step, as in resize().
        channel = channel.resize(target, Image.Resampling.LANCZOS, reducing_gap=2.0)
        channels.append(np.asarray(channel, dtype=np.float32))
    return np.stack(channels, axis=-1)


# --------------------------------------------------------------------------------------------
# The one entry point for the models


def _three_channels(decoded: DecodedImage, mode: str) -> np.ndarray:
    """Turn any decoded image into H x W x 3 in [0, 1] for the requested mode."""
    pixels = decoded.pixels
    if decoded.kind in ("rgb", "grey"):
        # A JPEG/PNG is already a composite; in "bands" mode its channels stand in for bands.
        return undo_display_effects(np.repeat(pixels, 3, axis=-1) if pixels.shape[-1] == 1 else pixels)
    n_planes = pixels.shape[-1]
    if mode == "color" and n_planes >= 3:
        return bands_to_rgb(pixels[..., :3], stretch=None).astype(np.float32) / 255.0
    stretched = [asinh_stretch(pixels[..., c]) for c in range(min(n_planes, 3))]
    while len(stretched) < 3:  # one plane (or two): repeat the last, as IncliNET copies grey
        stretched.append(stretched[-1])
    return np.stack(stretched, axis=-1)


def decode_for_model(data: bytes, *, size: int = 128, limits: Limits = Limits()) -> DecodedImage:
    """Decode an image that will only be prepared for a `size`-pixel model (JPEGs at reduced scale).

    Training and prediction both decode through here, so they see the same pixels; twice the model
    size keeps the final resize antialiased.
    """
    return decode_image(data, limits=limits, min_size=2 * size)


FLUX_BANDS = ("g", "r", "i")


def bands_from_planes(planes: Sequence[DecodedImage], names: Sequence[str]) -> DecodedImage:
    """Separate one-band images (FITS stamps of one galaxy) -> one "bands" image with those names.

    ImageError when they are not all float planes on the same pixel grid.
    """
    arrays = []
    for plane, name in zip(planes, names, strict=True):
        if plane.kind != "bands" or plane.pixels.shape[-1] != 1:
            raise ImageError("corrupt", f"The {name}-band image is not a single FITS plane.")
        if arrays and plane.pixels.shape != arrays[0].shape:
            raise ImageError(
                "corrupt", f"The {name}-band image is {plane.shape}, the others {arrays[0].shape[:2]}: not one grid."
            )
        arrays.append(plane.pixels)
    return DecodedImage(
        pixels=np.ascontiguousarray(np.concatenate(arrays, axis=-1)), kind="bands", format="FITS", bands=tuple(names)
    )


def _flux_planes(decoded: DecodedImage) -> np.ndarray:
    """g, r, i as float H x W x 3 from a "bands" image (named planes, else the first three in order)."""
    if decoded.kind != "bands":
        raise ValueError("flux members need float band data (FITS stamps), not a colour or grey picture")
    pixels = decoded.pixels
    if set(FLUX_BANDS) <= set(decoded.bands):
        return np.stack([pixels[..., decoded.bands.index(b)] for b in FLUX_BANDS], axis=-1)
    planes = [pixels[..., min(c, pixels.shape[-1] - 1)] for c in range(3)]
    return np.stack(planes, axis=-1)


def normalise_flux(image: np.ndarray) -> np.ndarray:
    """Sky-subtract each band and divide all by one noise level: the sky's own units, unclipped.

    One common divisor (the median of the bands' robust sky sigmas) keeps the bands' flux ratios, i.e. the
    colours; the survey's units (nanomaggies, counts) drop out, so every survey's floats look alike. The
    model's first layer (architectures.AsinhScaling) learns how to compress the range.
    """
    image = np.asarray(image, dtype=np.float32)
    sky = np.median(image.reshape(-1, image.shape[-1]), axis=0)
    sigmas = [composites.robust_sigma(image[..., c]) for c in range(image.shape[-1])]
    finite = [s for s in sigmas if np.isfinite(s) and s > 0]
    noise = float(np.median(finite)) if finite else 0.0
    if noise <= 0:  # a noiseless render or a constant plane: fall back to the spread, then to 1
        spread = float(np.std(image))
        noise = spread if spread > 0 else 1.0
    return ((image - sky) / noise).astype(np.float32)


def _squared(decoded: DecodedImage, *, size: int, mode: str) -> np.ndarray:
    """The picture for a `size`-pixel model before any turn: its channels for `mode`, display effects undone,
    padded square with sky. Computed once per decoded image and kept on it (read-only to the callers: every
    later step makes a new array)."""
    # A colour or grey picture gives the same channels in "color" and "bands" mode (_three_channels).
    key = (size, "flux" if mode == "flux" else ("picture" if decoded.kind != "bands" else mode))
    image = decoded._squared.get(key)
    if image is None:
        image = _flux_planes(decoded) if mode == "flux" else _three_channels(decoded, mode)
        if image.shape[0] != image.shape[1] and max(image.shape[:2]) > 2 * size:
            # Pad at twice the model size, not at full resolution: a 32:1 strip would pad to 32x its pixels.
            image = _shrink_long_side(image, 2 * size)
        image = pad_to_square(image)
        image.flags.writeable = False
        decoded._squared[key] = image
    return image


def prepare_for_model(
    data_or_decoded: bytes | DecodedImage,
    *,
    size: int = 128,
    mode: Literal["color", "bands", "flux"] = "color",
    position_angle: float | None = None,
    limits: Limits = Limits(),
) -> np.ndarray:
    """Bytes or a decoded image -> float32 size x size x 3, ready for the CNN.

    mode "color": an RGB composite (FITS g, r, i through the Lupton stretch), in [0, 1];
    mode "bands": g, r, i each asinh-stretched (FITS), or an RGB image's channels as they are, in [0, 1];
    mode "flux": the float g, r, i planes of FITS stamps, sky-subtracted and in units of the sky noise
    (normalise_flux), not clipped: the full dynamic range for members that learn their own scaling.
    Steps: pad to square with sky, rotate the major axis horizontal if `position_angle` (PA,
    north through east, degrees) is given, resize.
    """
    if mode not in ("color", "bands", "flux"):
        raise ValueError(f"mode must be 'color', 'bands' or 'flux', not {mode!r}")
    decoded = (
        data_or_decoded
        if isinstance(data_or_decoded, DecodedImage)
        else decode_for_model(data_or_decoded, size=size, limits=limits)
    )
    image = _squared(decoded, size=size, mode=mode)
    if position_angle is not None:
        # Rotate at twice the output size: sharp enough, and a 512 px stamp costs 4x more to rotate.
        if image.shape[0] > 2 * size:
            image = resize(image, 2 * size)
        image = rotate_major_axis_horizontal(image, position_angle)
    if mode == "flux":
        return normalise_flux(resize(image, size))
    return np.clip(resize(image, size), 0.0, 1.0).astype(np.float32)


def prepare_batch(
    items: Sequence[bytes | DecodedImage],
    *,
    size: int = 128,
    mode: Literal["color", "bands", "flux"] = "color",
    position_angles: Sequence[float | None] | None = None,
    limits: Limits = Limits(),
) -> np.ndarray:
    """`prepare_for_model` over a list -> N x size x size x 3 float32 (raises on the first bad one)."""
    angles = list(position_angles) if position_angles is not None else [None] * len(items)
    if len(angles) != len(items):
        raise ValueError("position_angles must match items in length")
    if not items:
        return np.zeros((0, size, size, 3), dtype=np.float32)
    return np.stack(
        [
            prepare_for_model(item, size=size, mode=mode, position_angle=angle, limits=limits)
            for item, angle in zip(items, angles, strict=True)
        ]
    )
