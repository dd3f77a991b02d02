"""Contact sheets: a grid of galaxy stamps with captions, as one PNG (for docs and eyeballing)."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from acquisition.renderer import Rendering, to_color_rgb

__all__ = ["contact_sheet"]


def _as_rgb(item) -> Image.Image:
    """A Rendering, raw image bytes, a uint8/float array or a PIL image -> an RGB PIL image."""

    if isinstance(item, Rendering):
        return Image.fromarray(to_color_rgb(item))
    if isinstance(item, bytes | bytearray):
        return Image.open(io.BytesIO(item)).convert("RGB")
    if isinstance(item, Image.Image):
        return item.convert("RGB")
    array = np.asarray(item)
    if array.dtype != np.uint8:
        array = (np.clip(array, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    return Image.fromarray(array).convert("RGB")


def contact_sheet(
    images: Sequence,
    labels: Sequence[str] | None = None,
    columns: int = 6,
    *,
    tile: int = 256,
    gap: int = 4,
) -> bytes:
    """Lay `images` out `columns` to a row, each scaled to `tile` px and captioned; PNG bytes."""
    if not images:
        raise ValueError("contact_sheet needs at least one image")
    labels = list(labels) if labels is not None else [""] * len(images)
    rows = -(-len(images) // columns)
    caption = 18 if any(labels) else 0
    sheet = Image.new(
        "RGB",
        (columns * tile + (columns + 1) * gap, rows * (tile + caption) + (rows + 1) * gap),
        (24, 24, 24),
    )
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=14)
    for index, (item, label) in enumerate(zip(images, labels, strict=True)):
        row, col = divmod(index, columns)
        left = gap + col * (tile + gap)
        top = gap + row * (tile + caption + gap)
        sheet.paste(_as_rgb(item).resize((tile, tile), Image.Resampling.LANCZOS), (left, top))
        if label:
            draw.text((left + 3, top + tile + 1), label, fill=(230, 230, 230), font=font)
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
