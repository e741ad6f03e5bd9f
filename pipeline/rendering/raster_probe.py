"""Where matplotlib puts things on a raster page: read back from draws of a ``PagePainter``.

``placeholders`` are the cells drawn for the static page (mid-scale images, reference
texts); ``axes_boxes`` the pixel box of each axes; ``suptitle_strip`` the blank rows above
them; ``text_anchors`` where each value line and note goes; ``probe_shots`` which image pixel
lands on which page pixel (decoded by ``raster_compose.cell_map``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from . import layout
from . import palette as pal
from .cells import Cell
from .glyphs import Anchor, GlyphCache
from .grids import PagePainter

CAPTION_REFERENCE = "min -0.1234, max 5.678"  # where matplotlib puts a value line
NOTE_REFERENCE = "constant 0.25"

Box = tuple[int, int, int, int]  # rows r0:r1, columns c0:c1 of a page
Shots = tuple[np.ndarray, np.ndarray, np.ndarray]


def _placeholder(cell: Cell) -> np.ndarray:
    """A mid-scale image of the cell's shape (a mosaic keeps its blank padding): the static
    pixels that blend with an image (rims of frames and label boxes) blend with this."""
    if cell.tiles is not None:
        h, w, _ = cell.tiles.shape
        n = min(cell.tiles.shape[2], cell.max_tiles)
        return layout.channel_mosaic(np.full((h, w, n), 0.5, np.float32), n)
    assert cell.shape is not None
    return np.full(cell.shape, 0.5, np.float32)


def placeholders(padded: list[Cell | None]) -> list[Cell | None]:
    """The cells of the static page: a mid-scale image (the static pixels that blend with an
    image, at the rims of frames and label boxes, blend with this) and reference texts."""
    return [
        None
        if c is None or c.shape is None
        else replace(
            c,
            image=_placeholder(c),
            tiles=None,
            vmin=0.0,
            vmax=1.0,
            caption=None if c.caption is None else CAPTION_REFERENCE,
            note=NOTE_REFERENCE,
        )
        for c in padded
    ]


def _box(extents: Any, height: int, width: int) -> Box:
    """A window extent as array rows and columns (display y grows upwards, array rows
    downwards), with one pixel of margin."""
    x0, y0, x1, y1 = extents
    r0, r1 = max(int(height - y1) - 1, 0), min(int(np.ceil(height - y0)) + 1, height)
    c0, c1 = max(int(x0) - 1, 0), min(int(np.ceil(x1)) + 1, width)
    return r0, r1, c0, c1


def axes_boxes(
    mpl: PagePainter, cells: list[Cell | None], height: int, width: int
) -> list[Box | None]:
    """The page pixels of each drawn cell's axes."""
    return [
        None if cell is None else _box(mpl.axes[i].get_window_extent().extents, height, width)
        for i, cell in enumerate(cells)
    ]


def suptitle_strip(
    mpl: PagePainter, rgb: np.ndarray, boxes: list[Box | None]
) -> tuple[int, object]:
    """The rows above every axes that hold nothing (the suptitle's strip) and that strip of
    the drawn canvas as an Agg region."""
    from matplotlib.transforms import Bbox

    height, width = rgb.shape[:2]
    strip = min(
        (r0 for r0, _, _, _ in filter(None, boxes)), default=height
    )  # the axes' own titles start lower: clip the strip at the first non-white row
    nonwhite = np.flatnonzero((rgb[:strip] != 255).any(axis=(1, 2)))
    strip = int(nonwhite[0]) if nonwhite.size else strip
    return strip, mpl.fig.canvas.copy_from_bbox(Bbox.from_extents(0, height - strip, width, height))


def text_anchors(
    mpl: PagePainter, cells: list[Cell | None], captions: GlyphCache, notes: GlyphCache
) -> list[tuple[Anchor | None, Anchor | None]]:
    """Per cell, where matplotlib draws its value line and its note: the figure drawn once
    already, its ground is painted white again and only the reference texts are drawn on it
    (``draw_artist``: each text exactly as a full draw puts it, at a fraction of a full
    draw's cost); each text's ink is read back inside its own extent. The canvas is left
    white with those texts: restore the static page afterwards."""
    fig, canvas = mpl.fig, mpl.fig.canvas
    renderer = canvas.get_renderer()
    fig.draw_artist(fig.patch)  # opaque white, as the figure's ground under every text
    height, width = np.asarray(canvas.buffer_rgba()).shape[:2]
    shown: list[tuple[int, int, Box, GlyphCache, str]] = []
    for i, cell in enumerate(cells):
        for k, (artist, text, cache) in enumerate(
            (
                (mpl.captions[i], None if cell is None else cell.caption, captions),
                (mpl.notes[i], None if cell is None else cell.note, notes),
            )
        ):
            if artist is None or text is None or artist.get_text() != text:
                continue
            artist.set_visible(True)  # an invisible text has no extent
            fig.draw_artist(artist)
            box = _box(artist.get_window_extent(renderer).extents, height, width)
            artist.set_visible(False)
            shown.append((i, k, box, cache, text))
    grey = np.asarray(canvas.buffer_rgba())[..., 1]
    out: list[list[Anchor | None]] = [[None, None] for _ in cells]
    for i, k, (r0, r1, c0, c1), cache, text in shown:
        ink = grey[r0:r1, c0:c1] < 255
        out[i][k] = Anchor.calibrate(ink, (r0, c0), cache, text)
    return [(a, b) for a, b in out]


def probe_shots(
    mpl: PagePainter, cells: list[Cell | None], boxes: list[Box | None]
) -> list[Shots | None]:
    """Per cell, its box drawn three times: row indices in encodings 0 and 1, column indices
    in encoding 0 (see ``palette.pixel_maps``). Each probe restores the static page and
    redraws only the images and the frames over them, as a full draw would (so pixels under
    a frame are not image pixels); pixels under a channel label's box are marked as not
    image pixels too."""
    from matplotlib.colors import ListedColormap

    fig, canvas = mpl.fig, mpl.fig.canvas
    static = canvas.copy_from_bbox(fig.bbox)
    drawn = [
        (cell, ax, im)
        for cell, ax, im in zip(cells, mpl.axes, mpl.images, strict=False)
        if cell is not None and im is not None
    ]
    shots = []
    for axis, variant in ((0, 0), (0, 1), (1, 0)):
        canvas.restore_region(static)
        for cell, ax, im in drawn:
            h, w = cell.shape[:2]  # an RGB picture is probed as its (H, W) map
            n = (h, w)[axis]
            im.set_data(np.indices((h, w), dtype=np.float32)[axis])
            im.set_cmap(ListedColormap(np.minimum((pal.probe_colors(n, variant) + 0.25) / 255, 1)))
            im.set_clim(-0.5, n - 0.5)
            fig.draw_artist(im)
            for spine in ax.spines.values():
                fig.draw_artist(spine)
        shots.append(np.asarray(canvas.buffer_rgba())[..., :3].copy())
    # Channel labels are opaque boxes over the image: the pixels a box covers whole stay
    # static (its anti-aliased rim shows the image). They are made to fail the decoding.
    renderer = canvas.get_renderer()
    height = shots[0].shape[0]
    for labels in mpl.label_artists:
        for label in labels:
            patch = label.get_bbox_patch()
            if patch is None or not label.get_visible():
                continue
            x0, y0, x1, y1 = patch.get_window_extent(renderer).extents
            r0, r1 = max(int(np.ceil(height - y1)), 0), int(np.floor(height - y0))
            c0, c1 = max(int(np.ceil(x0)), 0), int(np.floor(x1))
            shots[0][r0:r1, c0:c1, 2] = 0
    canvas.restore_region(static)
    for cell, _, im in drawn:
        im.set_cmap(mpl.cmap)
        im.set_data(np.ma.masked_invalid(cell.image))
        im.set_clim(cell.vmin, cell.vmax)
    out: list[Shots | None] = []
    for cell, box in zip(cells, boxes, strict=True):
        if cell is None or box is None:
            out.append(None)
            continue
        r0, r1, c0, c1 = box
        out.append(tuple(shot[r0:r1, c0:c1] for shot in shots))  # type: ignore[arg-type]
    return out
