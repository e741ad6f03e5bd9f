"""One "top patterns" sheet per layer: for each of its first channels, the K patterns whose
channel activation is highest, as thumbnails titled with pattern index and value.

The thumbnails come from the caller (``thumbnail(pattern) -> array | None``: the model input
when the run can give it back, else the layer's own output) and are composed into one RGB
array with numpy (``thumbs``); matplotlib adds only the text over it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.font_manager import FontProperties

from ...errors import ConfigError
from .. import layout
from ..glyphs import GlyphCache, drawable, glyph_cache
from . import thumbs
from .canvas import write_rgb
from .thumbs import CAPTION_POINTS, DPI, LABEL_POINTS, TITLE_POINTS, line_px

KINDS = ("input", "layer output")

Thumbnail = Callable[[int], "np.ndarray | None"]


def top_title(
    layer: str, k: int, kind: str, channels: int, shown: int, epoch: int | None = None
) -> str:
    """The sheet's title: what the thumbnails are and which channels the rows are."""
    when = f", epoch {epoch}" if epoch is not None else ""
    rows = f"channels 0-{shown - 1} of {channels}" if shown < channels else f"{channels} channels"
    return (
        f"{layer}{when}: the {k} patterns with the highest channel activation, per channel\n"
        f"thumbnails: {kind}s; rows: {rows}; captions: #pattern, activation"
    )


def draw_top(
    result: Mapping[str, np.ndarray],
    layer: str,
    thumbnail: Thumbnail,
    kind: str,
    path: Path | str,
    max_channels: int = 64,
    cmap: str = "viridis",
    epoch: int | None = None,
) -> Path:
    """Draw ``layer``'s top-patterns sheet from ``result``'s ``top_index``/``top_value``."""
    if kind not in KINDS:
        raise ConfigError(f"thumbnail kind: expected one of {KINDS}, received {kind!r}")
    index = np.asarray(result["top_index"], np.int64)
    value = np.asarray(result["top_value"], np.float64)
    channels, k = index.shape
    shown = min(channels, max_channels)
    cache: dict[int, np.ndarray | None] = {}
    for i in np.unique(index[:shown]):
        if i >= 0:
            got = thumbnail(int(i))
            cache[int(i)] = None if got is None else np.asarray(got)
    rgb = thumbs.sheet_rgb_scale([a for a in cache.values() if a is not None])
    pictures = {
        (c, j): thumbs.picture(cache[int(index[c, j])], c, kind, rgb, max_channels)  # type: ignore[arg-type]
        for c in range(shown)
        for j in range(k)
        if index[c, j] >= 0 and cache[int(index[c, j])] is not None
    }
    sizes = [thumbs.shown_size(*p.shape[:2]) for p in pictures.values()] or [(thumbs.SMALL,) * 2]
    cell = (max(s[0] for s in sizes), max(max(s[1] for s in sizes), thumbs.SMALL))
    lay = thumbs.top_layout(shown, k, cell)
    sheet = _compose(lay, index, pictures, kind, cmap, shown)
    return _save(
        sheet, lay, index, value, shown, top_title(layer, k, kind, channels, shown, epoch), path
    )


def _compose(
    lay: thumbs.TopLayout,
    index: np.ndarray,
    pictures: dict[tuple[int, int], np.ndarray],
    kind: str,
    cmap: str,
    shown: int,
) -> np.ndarray:
    """The sheet's pixels: each thumbnail coloured (one colour scale per row for layer
    outputs, one for the whole sheet for inputs; 2-D inputs in grey) and pasted."""
    sheet = thumbs.blank_sheet(lay)
    name = "gray" if kind == "input" else cmap
    lut = (matplotlib.colormaps.get_cmap(name)(np.linspace(0, 1, 256))[:, :3] * 255).round()
    lut = lut.astype(np.uint8)
    whole = _limits([p for p in pictures.values() if p.ndim == 2])
    for c in range(shown):
        row = [pictures.get((c, j)) for j in range(lay.k)]
        lo, hi = (
            whole if kind == "input" else _limits([p for p in row if p is not None and p.ndim == 2])
        )
        for j, pic in enumerate(row):
            rgb = None if pic is None else thumbs.enlarge(thumbs.colorize(pic, lo, hi, lut))
            thumbs.paste(sheet, lay, c, j, rgb)
    return sheet


def _limits(images: list[np.ndarray]) -> tuple[float, float]:
    finite = [im[np.isfinite(im)] for im in images]
    finite = [f for f in finite if f.size]
    if not finite:
        return layout.color_limits(None, None)
    return layout.color_limits(
        min(float(f.min()) for f in finite), max(float(f.max()) for f in finite)
    )


def _save(
    sheet: np.ndarray,
    lay: thumbs.TopLayout,
    index: np.ndarray,
    value: np.ndarray,
    shown: int,
    title: str,
    path: Path | str,
) -> Path:
    """The text stamped onto the sheet (glyphs of matplotlib's font, each rendered once; a
    figure with 640 text artists would take seconds), then the sheet written as PNG."""
    small = _glyphs(CAPTION_POINTS)
    label = _glyphs(LABEL_POINTS)
    big = _glyphs(TITLE_POINTS)
    width = sheet.shape[1]
    for n, line in enumerate(title.split("\n")):
        _write(sheet, big, line, _baseline(8, TITLE_POINTS, n), width / 2)
    cw = lay.cell[1]
    char_px = small.width("0")
    for c in range(shown):
        y, x = lay.row_origin(c)
        middle = y + lay.cell[0] // 2 + round(LABEL_POINTS * DPI / 72 * 0.35)
        _write(sheet, label, f"ch {c}", middle, None, left=x + 4)
        for j in range(lay.k):
            ty, tx = lay.origin(c, j)
            missing = index[c, j] < 0
            text = (
                "none"
                if missing
                else thumbs.caption(int(index[c, j]), float(value[c, j]), cw, char_px)
            )
            for n, line in enumerate(text.split("\n")):
                at = _baseline(ty + lay.cell[0] + 1, CAPTION_POINTS, n)
                _write(sheet, small, line, at, tx + cw / 2, grey=136 if missing else 0)
    path = Path(path)
    write_rgb(path, sheet)
    return path


def _baseline(top: int, points: float, n: int) -> int:
    """Baseline row of line ``n`` of text at ``points`` set from pixel row ``top`` down."""
    return top + round(points * DPI / 72 * 0.95) + n * line_px(points)


def _glyphs(points: float) -> GlyphCache:
    return glyph_cache(FontProperties(size=points), DPI)


def _write(
    sheet: np.ndarray,
    cache: GlyphCache,
    text: str,
    baseline: int,
    center: float | None,
    left: int = 0,
    grey: int = 0,
) -> None:
    """``text`` in ``grey`` on the sheet on row ``baseline``: centred on column ``center`` or
    from ``left``; characters the composer cannot draw (outside printable ASCII) as '?'."""
    if not drawable(text):
        text = "".join(ch if drawable(ch) else "?" for ch in text)
    line = cache.line(text)
    top = baseline - line.baseline
    if center is not None:
        left = round(center - line.width / 2)
    h, w = line.coverage.shape
    r0, c0 = max(top, 0), max(left, 0)
    r1, c1 = min(top + h, sheet.shape[0]), min(left + w, sheet.shape[1])
    if r1 <= r0 or c1 <= c0:
        return
    cov = line.coverage[r0 - top : r1 - top, c0 - left : c1 - left].astype(np.uint16)
    ink = (255 - (cov * (255 - grey) // 255)).astype(np.uint8)
    region = sheet[r0:r1, c0:c1]
    np.minimum(region, ink[..., None], out=region)
