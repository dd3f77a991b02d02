"""The image processing unit: every kind of bad upload ends in ImageError with a reason, good
ones decode in every supported format, and the geometry keeps the galaxy centred and its
axial ratio."""

import io
import struct
import zlib

import numpy as np
import pytest
from astropy.io import fits
from PIL import Image

from inference.baseline import measure_axial_ratio
from inference.imaging import (
    DecodedImage,
    ImageError,
    Limits,
    decode_image,
    pad_to_square,
    prepare_batch,
    prepare_for_model,
    rotate_major_axis_horizontal,
    undo_display_effects,
)


def ellipse_image(height=96, width=96, *, q=0.4, pa_image_deg=0.0, centre=None, scale=14.0):
    """A smooth elliptical blob; `pa_image_deg` is the major axis angle from +x, counter-clockwise."""
    cy, cx = centre if centre is not None else ((height - 1) / 2, (width - 1) / 2)
    rows, cols = np.mgrid[:height, :width].astype(float)
    x, y = cols - cx, cy - rows
    t = np.radians(pa_image_deg)
    a = x * np.cos(t) + y * np.sin(t)
    b = -x * np.sin(t) + y * np.cos(t)
    return np.exp(-np.sqrt(a**2 + (b / q) ** 2) / scale).astype(np.float32)


def encode(array, fmt="PNG", mode=None, **save):
    image = Image.fromarray(array, mode) if mode else Image.fromarray(array)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save)
    return buffer.getvalue()


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_with_header(width, height, idat=b""):
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


RGB = (np.random.default_rng(0).uniform(0, 255, (40, 60, 3))).astype(np.uint8)


# ---------------------------------------------------------------------------------- bad input


def bomb_png():
    # 8000 x 8000 zeros: 64 Mpx in a file of about 60 kB.
    buffer = io.BytesIO()
    Image.new("1", (8000, 8000)).save(buffer, format="PNG")
    return buffer.getvalue()


def animated(fmt):
    frames = [Image.new("L", (32, 32), level) for level in (200, 20, 90)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format=fmt, save_all=True, append_images=frames[1:])
    return buffer.getvalue()


def compressed_fits(height, width):
    """Tile-compressed (RICE) zeros: 6000 x 6000 pixels fit in about 540 kB."""
    buffer = io.BytesIO()
    image = fits.CompImageHDU(np.zeros((height, width), np.float32), compression_type="RICE_1")
    fits.HDUList([fits.PrimaryHDU(), image]).writeto(buffer)
    return buffer.getvalue()


BAD_FILES = {
    "empty": (lambda: b"", "empty"),
    "truncated_jpeg": (lambda: encode(RGB, "JPEG")[:300], "truncated"),
    "corrupt_jpeg_body": (
        lambda: (lambda d: d[:200] + bytes(len(d) - 200))(encode(RGB, "JPEG")),
        ("corrupt", "truncated"),
    ),
    "zero_size_png": (lambda: png_with_header(0, 0), ("empty", "corrupt")),
    "text_file": (lambda: b"ra,dec\n150.1,2.2\n", "unsupported_type"),
    "bmp_wrong_type": (lambda: encode(RGB, "BMP"), "unsupported_type"),
    "multi_page_tiff": (lambda: animated("TIFF"), "animated"),
    "header_claims_100000_squared": (
        lambda: png_with_header(100_000, 100_000, zlib.compress(b"\0" * 1000)),
        "too_many_pixels",
    ),
    "decompression_bomb": (bomb_png, "too_many_pixels"),
    "truncated_fits": (lambda: fits_bytes(np.ones((64, 64), np.float32))[:4000], ("truncated", "corrupt")),
    "fits_no_data": (lambda: fits_bytes(None), "empty"),
    "strip_image": (lambda: encode(np.zeros((2, 400), np.uint8)), "bad_shape"),
    "compressed_fits_of_36_megapixels": (lambda: compressed_fits(6000, 6000), "too_many_pixels"),
}


def fits_bytes(data, **header):
    hdu = fits.PrimaryHDU(data)
    for key, value in header.items():
        hdu.header[key] = value
    buffer = io.BytesIO()
    hdu.writeto(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_files_end_in_one_clear_error(name):
    make, codes = BAD_FILES[name]
    codes = (codes,) if isinstance(codes, str) else codes
    with pytest.raises(ImageError) as caught:
        decode_image(make())
    assert caught.value.code in codes
    assert len(caught.value.reason) > 20  # a sentence a user can act on
    assert isinstance(caught.value, ValueError)


def test_size_limits_are_parameters():
    data = encode(RGB)
    with pytest.raises(ImageError) as caught:
        decode_image(data, limits=Limits(max_bytes=100))
    assert caught.value.code == "too_large"
    with pytest.raises(ImageError) as caught:
        decode_image(data, limits=Limits(max_pixels=1000))
    assert caught.value.code == "too_many_pixels"
    assert decode_image(data, limits=Limits(max_pixels=2400)).shape == (40, 60)


def test_a_tile_compressed_fits_is_judged_on_its_header_before_any_tile_is_decompressed(monkeypatch):
    data = compressed_fits(6000, 6000)
    assert len(data) < 1_000_000  # under /api/file's 1 MB

    def decompress(*args, **kwargs):
        raise AssertionError("a tile was decompressed")

    monkeypatch.setattr(fits.CompImageHDU, "data", property(decompress))
    with pytest.raises(ImageError) as caught:
        decode_image(data)
    assert caught.value.code == "too_many_pixels"
    assert "6000 x 6000" in caught.value.reason


def test_the_default_budget_is_2048_squared_with_all_planes_counted():
    assert Limits().max_pixels == 2048 * 2048
    assert decode_image(compressed_fits(2048, 2048)).shape == (2048, 2048)
    cube = fits_bytes(np.zeros((3, 1200, 1200), np.float32))  # 4.3 Mpx in three planes
    with pytest.raises(ImageError) as caught:
        decode_image(cube)
    assert caught.value.code == "too_many_pixels"


@pytest.mark.parametrize("fmt", ["GIF", "PNG"])
def test_an_animated_image_gives_its_first_frame(fmt):
    decoded = decode_image(animated(fmt))
    assert decoded.shape == (32, 32)
    assert decoded.pixels.mean() == pytest.approx(200 / 255, abs=0.02)


@pytest.mark.parametrize(("height", "width"), [(40, 400), (2000, 100), (64, 2048)])
def test_any_aspect_up_to_32_is_padded_to_square_with_the_galaxy_centred(height, width):
    blob = ellipse_image(height, width, q=0.5, scale=min(height, width) / 6)
    prepared = prepare_for_model(encode((blob * 255).astype(np.uint8)), size=64)
    assert prepared.shape == (64, 64, 3)
    grey = prepared[..., 0]
    rows, cols = np.nonzero(grey > grey.max() / 2)
    assert abs(rows.mean() - 31.5) < 2 and abs(cols.mean() - 31.5) < 2


def test_past_32_to_1_the_reason_names_the_limit():
    with pytest.raises(ImageError) as caught:
        decode_image(encode(np.zeros((10, 330), np.uint8)))
    assert caught.value.code == "bad_shape"
    assert "at most 32" in caught.value.reason


def test_prepare_for_model_passes_errors_through():
    with pytest.raises(ImageError):
        prepare_for_model(b"not an image")
    with pytest.raises(TypeError):
        decode_image("a string, not bytes")  # type: ignore[arg-type]


# ------------------------------------------------------------------------- formats and modes


def test_sixteen_bit_png_keeps_its_precision():
    values = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 15).astype(np.uint16)
    decoded = decode_image(encode(values, "PNG"))
    assert decoded.kind == "grey"
    assert decoded.pixels.shape == (64, 64, 1)
    np.testing.assert_allclose(decoded.pixels[..., 0], values / 65535.0, atol=1e-6)
    assert len(np.unique(decoded.pixels)) > 256  # more levels than 8 bits could hold


def test_cmyk_jpeg_becomes_rgb():
    image = Image.new("CMYK", (32, 32), (0, 255, 255, 0))  # pure red in CMYK
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=95)
    decoded = decode_image(buffer.getvalue())
    assert decoded.kind == "rgb"
    red, green, blue = decoded.pixels[16, 16]
    assert red > 0.8 and green < 0.2 and blue < 0.2


def test_palette_png_and_transparency():
    image = Image.new("P", (16, 16))
    image.putpalette([0, 0, 0, 255, 200, 100] + [0] * 762)
    image.putpixel((5, 5), 1)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    decoded = decode_image(buffer.getvalue())
    assert decoded.kind == "rgb"
    np.testing.assert_allclose(decoded.pixels[5, 5], [1.0, 200 / 255, 100 / 255], atol=1e-6)
    grey_alpha = np.zeros((8, 8, 2), np.uint8)
    grey_alpha[..., 0], grey_alpha[..., 1] = 200, 0  # fully transparent: sky
    decoded = decode_image(encode(grey_alpha, "PNG", mode="LA"))
    assert decoded.kind == "grey" and decoded.pixels.max() == 0.0


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "TIFF"])
def test_supported_formats_decode(fmt):
    decoded = decode_image(encode(RGB, fmt))
    assert decoded.format == fmt
    assert decoded.pixels.shape == (40, 60, 3)
    assert decoded.pixels.dtype == np.float32
    assert decoded.pixels.min() >= 0.0 and decoded.pixels.max() <= 1.0


def test_fits_round_trip_keeps_values_beyond_0_255():
    rng = np.random.default_rng(1)
    cube = rng.normal(0, 0.05, (3, 32, 48)).astype(np.float32)
    cube[:, 10, 20] = [1234.5, -17.25, 70000.0]
    decoded = decode_image(fits_bytes(cube, BANDS="g,r,i"))
    assert decoded.kind == "bands" and decoded.bands == ("g", "r", "i")
    assert decoded.pixels.shape == (32, 48, 3)
    # FITS row 0 is the bottom: it comes back as the last row.
    np.testing.assert_array_equal(decoded.pixels[31 - 10, 20], [1234.5, -17.25, 70000.0])
    np.testing.assert_array_equal(decoded.pixels[::-1], np.moveaxis(cube, 0, -1))


def test_fits_multiple_hdus_and_compression():
    planes = [np.full((16, 16), v, np.float32) for v in (1.0, 300.0, -5.0)]
    hdul = fits.HDUList([fits.PrimaryHDU()] + [fits.ImageHDU(p, name=b) for p, b in zip(planes, "gri", strict=True)])
    buffer = io.BytesIO()
    hdul.writeto(buffer)
    decoded = decode_image(buffer.getvalue())
    assert decoded.pixels.shape == (16, 16, 3)
    assert decoded.pixels[0, 0].tolist() == [1.0, 300.0, -5.0]
    import bz2

    assert decode_image(bz2.compress(buffer.getvalue())).pixels[0, 0].tolist() == [1.0, 300.0, -5.0]


def test_fits_nan_pixels_become_sky():
    data = np.ones((16, 16), np.float32)
    data[3, 3] = np.nan
    decoded = decode_image(fits_bytes(data))
    assert np.isfinite(decoded.pixels).all()


# --------------------------------------------------------------------------------- geometry


def centroid(image):
    grey = image.mean(axis=-1) if image.ndim == 3 else image
    rows, cols = np.mgrid[: grey.shape[0], : grey.shape[1]]
    total = grey.sum()
    return (rows * grey).sum() / total, (cols * grey).sum() / total


def test_pad_to_square_keeps_galaxy_centred_and_axial_ratio():
    image = ellipse_image(80, 120, q=0.45, pa_image_deg=20.0)
    image += 0.002 * np.random.default_rng(0).standard_normal(image.shape).astype(np.float32)
    padded = pad_to_square(image)
    assert padded.shape == (120, 120)
    row, col = centroid(np.clip(padded, 0, None))
    assert row == pytest.approx(59.5, abs=1.0) and col == pytest.approx(59.5, abs=1.0)
    assert measure_axial_ratio(padded).q == pytest.approx(measure_axial_ratio(image).q, abs=0.02)
    # Sky-like padding: the pad has the border's level and noise, not a hard black edge.
    pad = padded[:15]
    assert abs(float(np.median(pad)) - float(np.median(image[:3]))) < 0.003
    assert 0.0005 < float(pad.std()) < 0.005
    assert np.array_equal(pad_to_square(image), padded)  # deterministic


def test_rotation_puts_major_axis_horizontal():
    # PA (north through east) 30: the major axis is 30 deg from "up" towards "left",
    # i.e. 120 deg counter-clockwise from +x.
    image = ellipse_image(q=0.35, pa_image_deg=120.0)
    assert measure_axial_ratio(image).position_angle == pytest.approx(30.0, abs=1.0)
    rotated = rotate_major_axis_horizontal(image, 30.0)
    ellipse = measure_axial_ratio(rotated)
    assert ellipse.position_angle == pytest.approx(90.0, abs=1.5)  # PA 90 = horizontal
    assert ellipse.q == pytest.approx(measure_axial_ratio(image).q, abs=0.03)


def test_prepare_for_model_output_and_centring():
    array = (np.clip(ellipse_image(90, 150, q=0.5), 0, 1) * 255).astype(np.uint8)
    data = encode(np.repeat(array[..., None], 3, axis=-1), "PNG")
    prepared = prepare_for_model(data, size=64)
    assert prepared.shape == (64, 64, 3) and prepared.dtype == np.float32
    assert prepared.min() >= 0.0 and prepared.max() <= 1.0
    row, col = centroid(prepared)
    assert row == pytest.approx(31.5, abs=1.0) and col == pytest.approx(31.5, abs=1.0)
    assert measure_axial_ratio(prepared).q == pytest.approx(0.5, abs=0.06)
    batch = prepare_batch([data, decode_image(data)], size=32, position_angles=[None, 0.0])
    assert batch.shape == (2, 32, 32, 3)


def test_prepare_for_model_fits_modes():
    blob = ellipse_image(64, 64, q=0.5) * 500.0  # bright: far beyond 0-255
    cube = np.stack([blob * 0.5, blob, blob * 1.3]) + np.random.default_rng(0).normal(0, 0.5, (3, 64, 64))
    data = fits_bytes(cube.astype(np.float32), BANDS="g,r,i")
    colour = prepare_for_model(data, size=32, mode="color")
    bands = prepare_for_model(data, size=32, mode="bands")
    for prepared in (colour, bands):
        assert prepared.shape == (32, 32, 3)
        assert prepared[16, 16].max() > 0.5 and prepared[:3, :3].max() < 0.3
    # Bands are stretched separately, so each reaches the top of the range at the core.
    assert bands[15:17, 15:17].max(axis=(0, 1)).min() > 0.9
    # Colour keeps the colour: i (red) brighter than g (blue) at the core.
    assert colour[16, 16, 0] > colour[16, 16, 2]


def test_grey_single_plane_copies_to_three_channels():
    decoded = DecodedImage(pixels=ellipse_image(32, 32)[..., None], kind="grey", format="PNG")
    prepared = prepare_for_model(decoded, size=32, mode="bands")
    assert np.array_equal(prepared[..., 0], prepared[..., 2])


def galaxy_stamp(*, pa_image_deg=30.0, q=0.35):
    """An 8-bit colour stamp: an elliptical galaxy on dark, slightly noisy sky."""
    rng = np.random.default_rng(5)
    blob = ellipse_image(128, 128, q=q, pa_image_deg=pa_image_deg, scale=10.0)
    sky = 0.05 + 0.01 * rng.standard_normal((128, 128))
    return (np.clip(np.stack([blob * 0.9 + sky] * 3, axis=-1), 0, 1) * 255).astype(np.uint8)


def test_a_negative_is_seen_as_the_galaxy_it_shows():
    stamp = galaxy_stamp()
    plain = prepare_for_model(encode(stamp))
    negative = prepare_for_model(encode(255 - stamp))
    assert np.abs(negative - plain).max() < 1e-6
    assert measure_axial_ratio(negative).position_angle == pytest.approx(measure_axial_ratio(plain).position_angle)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_white_corners_of_a_turned_stamp_become_sky_and_leave_the_shape(fmt):
    stamp = galaxy_stamp(pa_image_deg=0.0)
    turned = Image.fromarray(stamp).rotate(30, resample=Image.BILINEAR, fillcolor=(255, 255, 255))
    corners = np.asarray(turned)
    assert (corners.min(axis=-1) > 250).mean() > 0.1  # the display's white corners are there
    prepared = prepare_for_model(encode(corners, fmt, quality=60) if fmt == "JPEG" else encode(corners))
    assert (prepared.min(axis=-1) > 0.5).sum() < 0.02 * prepared.shape[0] ** 2  # only the galaxy is bright
    measured = measure_axial_ratio(prepared)
    assert measured.q == pytest.approx(measure_axial_ratio(prepare_for_model(encode(stamp))).q, abs=0.05)


def test_an_ordinary_stamp_is_not_touched_by_the_display_repairs():
    stamp = galaxy_stamp()
    decoded = DecodedImage(pixels=stamp.astype(np.float32) / 255.0, kind="rgb", format="png")
    assert np.array_equal(undo_display_effects(decoded.pixels), decoded.pixels)


@pytest.mark.parametrize("shape", [(128, 128), (300, 120)])
def test_a_decoded_image_prepared_again_gives_what_a_fresh_decode_gives(shape):
    # The position angle and every model input share the repaired, padded picture kept on the decoded image:
    # preparing it again, for another angle, size or mode, or after the caller changed an earlier result, must
    # give exactly what a fresh decode gives.
    stamp = np.asarray(Image.fromarray(galaxy_stamp(pa_image_deg=20.0)).resize(shape[::-1]))
    data = encode(stamp, "JPEG", quality=90)
    shared = decode_image(data, min_size=64)
    first = prepare_for_model(shared, size=32)
    first[:] = 0.0  # the caller's own array
    for size, mode, angle in [(32, "color", None), (32, "color", 75.0), (32, "bands", 20.0), (16, "color", 75.0)]:
        fresh = prepare_for_model(decode_image(data, min_size=64), size=size, mode=mode, position_angle=angle)
        assert np.array_equal(prepare_for_model(shared, size=size, mode=mode, position_angle=angle), fresh)
