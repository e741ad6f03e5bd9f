"""A raster page composed from its measured layout (pure numpy, no matplotlib, no files).

A ``PageLayout`` is a static page as palette indices plus, per cell, which page pixels show
which image pixel (``CellMap``). Each pattern costs a colormap lookup of the pixels shown
(``fill_levels``) into a copy of the static page and, on a page with a colour picture, the
expansion to RGB with the picture's own colours written in (``with_pictures``). The static
page's palette (``static_palette``) is the quantized colormap, the NaN colour, and the page's
own colours fitted into the entries left.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from . import layout
from . import palette as pal
from .cells import Cell, auto_limits
from .glyphs import Anchor

LEVELS = 192  # colormap entries; entry LEVELS is the NaN colour, the rest the static page
BAD = LEVELS
BAD_COLOR = (255, 255, 255)  # as PagePainter's cmap.with_extremes(bad="white")


@dataclass
class CellMap:
    pos: np.ndarray  # page pixels (flat) that show the image
    src: np.ndarray  # the image pixel (flat) each of them shows; of a mosaic: the tiles' value
    caption: Anchor | None  # where the value line goes
    note: Anchor | None  # where a note goes
    rgb: bool = False  # an RGB picture: its colours are written after the palette expansion


@dataclass
class PageLayout:
    index: np.ndarray  # (H, W) uint8 palette indices of the static page
    palette: np.ndarray  # (256, 3) uint8
    cells: list[CellMap | None]
    strip: int  # rows above every axes: the suptitle's strip
    strip_bg: object  # the blank strip as an Agg region, restored before each suptitle
    greys: np.ndarray  # (256,) uint8 grey level -> palette index
    rgb: bool = False  # a cell shows an RGB picture: the page is saved as RGB

    @property
    def nbytes(self) -> int:
        maps = sum(c.pos.nbytes + c.src.nbytes for c in self.cells if c is not None)
        return self.index.nbytes + maps


def cell_map(
    probe: tuple[np.ndarray, np.ndarray, np.ndarray],
    box: tuple[int, int, int, int],
    width: int,
    shape: tuple[int, ...],
    cell: Cell,
    anchors: tuple[Anchor | None, Anchor | None],
) -> CellMap:
    """Decode the three probe shots of an image of ``shape`` (inside its ``box`` of a page
    ``width`` wide) into the page pixels that show it and the image pixel each shows.
    ``cell`` is the real cell: a mosaic's pixels map to its channel maps."""
    r0, _, c0, c1 = box
    pos, rows, cols = pal.pixel_maps(*probe, shape[:2])
    if cell.tiles is not None:  # a mosaic's pixels map to its channel maps
        ok, src = layout.mosaic_sources(rows, cols, cell.tiles.shape, cell.max_tiles)
        pos = pos[ok]
    else:  # an image's (or an RGB picture's) pixel, row by row
        src = rows * shape[1] + cols
    br, bc = np.divmod(pos, c1 - c0)
    page_pos = (br + r0) * width + (bc + c0)
    return CellMap(page_pos.astype(np.intp), src.astype(np.intp), *anchors, rgb=cell.rgb)


def static_palette(
    rgb: np.ndarray, cells: Sequence[CellMap | None], lut: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(index, palette, greys)`` of the static page ``rgb`` (H, W, 3): the colormap ``lut``
    in the first ``LEVELS`` entries, the NaN colour, then the page's colours (the pixels
    every pattern overwrites left out) fitted into what is left."""
    height, width = rgb.shape[:2]
    static = rgb.copy()
    image_px = np.zeros(height * width, bool)
    for where in cells:
        if where is not None:
            image_px[where.pos] = True
    static.reshape(-1, 3)[image_px] = 255  # overwritten by every pattern: leave out
    codes = (
        static[..., 0].astype(np.int32) << 16
        | static[..., 1].astype(np.int32) << 8
        | static[..., 2]
    )
    uniq, inverse, counts = _unique_codes(codes.ravel())
    colors = np.stack([uniq >> 16, (uniq >> 8) & 255, uniq & 255], axis=1).astype(np.uint8)
    extra, entry = pal.fit_palette(colors, counts, 256 - LEVELS - 1)
    palette = np.zeros((256, 3), np.uint8)
    palette[:LEVELS] = lut
    palette[BAD] = BAD_COLOR
    palette[BAD + 1 : BAD + 1 + len(extra)] = extra
    index = (entry[inverse] + BAD + 1).astype(np.uint8).reshape(height, width)
    return index, palette, pal.grey_map(extra, BAD + 1)


WHITE = 0xFFFFFF  # the largest colour code: np.unique puts it last


def _unique_codes(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``np.unique(codes, return_inverse=True, return_counts=True)`` of a page that is
    mostly white paper: the sort runs over the other pixels only."""
    other = codes != WHITE
    uniq, inv, counts = np.unique(codes[other], return_inverse=True, return_counts=True)
    white = codes.size - int(counts.sum())
    inverse = np.full(codes.size, uniq.size, np.intp)
    inverse[other] = inv
    if white:
        uniq = np.append(uniq, np.array([WHITE], uniq.dtype))
        counts = np.append(counts, white)
    return uniq, inverse, counts


def fill_levels(page: np.ndarray, where: CellMap, cell: Cell) -> None:
    """The image's colormap levels into the (H, W) page pixels that show it: the shown
    pixels only when fewer than the image's (a large mosaic in a small cell), else all. A
    mosaic is read from its channel maps (its padding is static)."""
    if cell.tiles is not None:
        values = cell.tiles.reshape(-1)
        vmin, vmax = cell.vmin, cell.vmax
        if vmin is None or vmax is None:
            vmin, vmax = auto_limits(cell.tiles[:, :, : cell.max_tiles])
    else:
        image = cell.image
        assert image is not None
        vmin, vmax = (cell.vmin, cell.vmax) if cell.vmin is not None else auto_limits(image)
        values = image.reshape(-1)
    src = where.src
    if values.size <= src.size:
        shown = pal.level_indices(values, vmin, vmax, LEVELS, BAD).take(src)
    else:
        shown = pal.level_indices(values.take(src), vmin, vmax, LEVELS, BAD)
    page.reshape(-1)[where.pos] = shown


def with_pictures(
    page: np.ndarray, palette: np.ndarray, pictures: Sequence[tuple[Cell, CellMap]]
) -> np.ndarray:
    """The palette page expanded to RGB, each colour picture's own colours written into the
    pixels that show it."""
    rgb = pal.expand(page, palette)
    flat_rgb = rgb.reshape(-1, 3)
    for cell, where in pictures:
        picture = cell.image
        assert picture is not None
        colors = picture.reshape(-1, 3)
        if colors.shape[0] <= where.src.size:
            shown = pal.rgb_bytes(colors, BAD_COLOR).take(where.src, axis=0)
        else:  # a large picture in a small cell: convert the shown pixels only
            shown = pal.rgb_bytes(colors.take(where.src, axis=0), BAD_COLOR)
        pal.put_colors(flat_rgb, where.pos, shown)
    return rgb
