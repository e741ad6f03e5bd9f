"""Raster grid pages: matplotlib draws a page layout once, numpy fills in every pattern.

For each static layout (same titles, image shapes, channel labels) the page is drawn once
with placeholder images and kept as a palette image; probe draws record which image pixel
lands on which page pixel (pixels under a frame or a channel label stay static). One more
draw shows where matplotlib puts each cell's value line and note. Each pattern then costs a
colormap lookup of the pixels shown, a gather into a copy of the background, the value lines,
notes and suptitle composed from cached glyphs, and a one-byte-per-pixel PNG. A page that
shows a colour picture (a stored model input, ``Cell.rgb``) is composed the same way, then
expanded to RGB through its palette, the picture's own colours written into the pixels that
show it, and saved as an RGB PNG; pages without one stay palette PNGs. Pages with a marked
(problem) cell are left to ``PagePainter``.

The colormap is quantized to ``LEVELS`` entries (sampled at their centres); the static
page's anti-aliased greys share the remaining palette entries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from . import layout
from . import palette as pal
from .cells import Cell, GridOptions, auto_limits
from .glyphs import Anchor, GlyphCache, drawable, glyph_cache, stamp
from .grids import PagePainter, static_key
from .png import save_indexed_png, save_rgb_png
from .suptitle import Suptitle

LEVELS = 192  # colormap entries; entry LEVELS is the NaN colour, the rest the static page
BAD = LEVELS
BAD_COLOR = (255, 255, 255)  # as PagePainter's cmap.with_extremes(bad="white")
MAX_LAYOUT_BYTES = 256 << 20  # static layouts kept per painter (a 3x3 mosaic page: ~4 MB)
CAPTION_REFERENCE = "min -0.1234, max 5.678"  # where matplotlib puts a value line
NOTE_REFERENCE = "constant 0.25"


def supports(cells: Sequence[Cell | None]) -> bool:
    """Whether the raster path can draw these cells: every cell a 2-D image (labels allowed)
    or an RGB picture, no side longer than the probe colours can encode, value lines and
    notes in printable ASCII."""
    return all(
        c is None
        or (
            c.problem is None
            and c.shape is not None
            and (len(c.shape) == 2 or c.rgb)
            and max(c.shape[:2]) <= pal.MAX_PROBE
            and (c.caption is None or drawable(c.caption))
            and (c.note is None or drawable(c.note))
        )
        for c in cells
    )


@dataclass
class _Cell:
    pos: np.ndarray  # page pixels (flat) that show the image
    src: np.ndarray  # the image pixel (flat) each of them shows; of a mosaic: the tiles' value
    caption: Anchor | None  # where the value line goes
    note: Anchor | None  # where a note goes
    rgb: bool = False  # an RGB picture: its colours are written after the palette expansion


@dataclass
class _Layout:
    index: np.ndarray  # (H, W) uint8 palette indices of the static page
    palette: np.ndarray  # (256, 3) uint8
    cells: list[_Cell | None]
    strip: int  # rows above every axes: the suptitle's strip
    strip_bg: object  # the blank strip as an Agg region, restored before each suptitle
    greys: np.ndarray  # (256,) uint8 grey level -> palette index
    rgb: bool = False  # a cell shows an RGB picture: the page is saved as RGB

    @property
    def nbytes(self) -> int:
        maps = sum(c.pos.nbytes + c.src.nbytes for c in self.cells if c is not None)
        return self.index.nbytes + maps


def _placeholder(cell: Cell) -> np.ndarray:
    """A mid-scale image of the cell's shape (a mosaic keeps its blank padding): the static
    pixels that blend with an image (rims of frames and label boxes) blend with this."""
    if cell.tiles is not None:
        h, w, _ = cell.tiles.shape
        n = min(cell.tiles.shape[2], cell.max_tiles)
        return layout.channel_mosaic(np.full((h, w, n), 0.5, np.float32), n)
    assert cell.shape is not None
    return np.full(cell.shape, 0.5, np.float32)


class RasterPainter:
    """Draws grid pages of image cells as palette PNGs (see the module docstring)."""

    def __init__(self, opts: GridOptions) -> None:
        import matplotlib
        from matplotlib.font_manager import FontProperties

        from . import decor

        self.opts = opts
        self.mpl = PagePainter(opts)
        cmap = matplotlib.colormaps.get_cmap(opts.cmap)
        self.lut = cmap((np.arange(LEVELS) + 0.5) / LEVELS, bytes=True)[:, :3]
        self.suptitle = Suptitle(self.mpl.fig, opts.dpi)
        self.captions: GlyphCache = glyph_cache(FontProperties(size=decor.VALUE_POINTS), opts.dpi)
        self.notes: GlyphCache = glyph_cache(FontProperties(size=decor.TITLE_POINTS), opts.dpi)
        self._layouts: dict[tuple, _Layout] = {}

    def close(self) -> None:
        self.mpl.fig.clear()
        self._layouts.clear()

    def draw(self, cells: Sequence[Cell | None], path: Path, suptitle: str | None = None) -> None:
        padded = [cells[i] if i < len(cells) else None for i in range(len(self.mpl.axes))]
        key = static_key(padded)
        lay = self._layouts.pop(key, None)  # re-inserted: the dict's order is least recent first
        if lay is None:
            lay = self._build(padded)
            kept = sum(v.nbytes for v in self._layouts.values())
            while self._layouts and kept + lay.nbytes > MAX_LAYOUT_BYTES:
                kept -= self._layouts.pop(next(iter(self._layouts))).nbytes
        self._layouts[key] = lay
        page = lay.index.copy()
        flat = page.reshape(-1)
        pictures: list[tuple[Cell, _Cell]] = []
        for cell, where in zip(padded, lay.cells, strict=True):
            if cell is None or where is None:
                continue
            if cell.note is not None:
                flat[where.pos] = BAD
            elif where.rgb:
                pictures.append((cell, where))  # written once the page is RGB
            else:
                self._fill(flat, where, cell)
            for text, anchor, cache in (
                (cell.caption, where.caption, self.captions),
                (cell.note, where.note, self.notes),
            ):
                if text is not None and anchor is not None:
                    line = cache.line(text)
                    stamp(page, line, anchor.place(line), lay.greys)
        if suptitle:
            self.suptitle.draw(page, suptitle, lay.greys, lay.strip_bg, lay.strip)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not lay.rgb:
            save_indexed_png(path, page, lay.palette, self.opts.dpi)
            return
        rgb = pal.expand(page, lay.palette)
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
        save_rgb_png(path, rgb, self.opts.dpi)

    @staticmethod
    def _fill(flat: np.ndarray, where: _Cell, cell: Cell) -> None:
        """The image's colormap levels into the page pixels that show it: the shown pixels
        only when fewer than the image's (a large mosaic in a small cell), else all. A mosaic
        is read from its channel maps (its padding is static)."""
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
        if values.size <= where.src.size:
            levels = pal.level_indices(values, vmin, vmax, LEVELS, BAD)
            flat[where.pos] = levels.take(where.src)
        else:
            flat[where.pos] = pal.level_indices(values.take(where.src), vmin, vmax, LEVELS, BAD)

    def _build(self, padded: list[Cell | None]) -> _Layout:
        """Draw the static page (placeholder images, no suptitle, value lines or notes), the
        probe pages and one page of reference texts."""
        # Placeholders: a mid-scale image (the static pixels that blend with an image, at
        # the rims of frames and label boxes, blend with this), reference texts
        placeholders = [
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
        mpl = self.mpl
        mpl.arrange(placeholders, None)
        self.suptitle.hide()
        canvas = mpl.fig.canvas
        anchors = self._anchors(placeholders)
        placeholders = [None if c is None else replace(c, note=None) for c in placeholders]
        mpl.arrange(placeholders, None)
        for text in mpl.captions + mpl.notes:
            if text is not None:
                text.set_visible(False)
        canvas.draw()
        rgb = np.asarray(canvas.buffer_rgba())[..., :3].copy()
        height, width = rgb.shape[:2]
        boxes = []
        for i, cell in enumerate(placeholders):
            if cell is None:
                boxes.append(None)
                continue
            x0, y0, x1, y1 = mpl.axes[i].get_window_extent().extents
            # display y grows upwards, array rows downwards; one pixel of margin
            r0, r1 = max(int(height - y1) - 1, 0), min(int(np.ceil(height - y0)) + 1, height)
            c0, c1 = max(int(x0) - 1, 0), min(int(np.ceil(x1)) + 1, width)
            boxes.append((r0, r1, c0, c1))
        strip = min(
            (r0 for r0, _, _, _ in filter(None, boxes)), default=height
        )  # the axes' own titles start lower: clip the strip at the first non-white row
        nonwhite = np.flatnonzero((rgb[:strip] != 255).any(axis=(1, 2)))
        strip = int(nonwhite[0]) if nonwhite.size else strip
        from matplotlib.transforms import Bbox

        strip_bg = canvas.copy_from_bbox(Bbox.from_extents(0, height - strip, width, height))
        probes = self._probe(placeholders, boxes)
        cells: list[_Cell | None] = []
        image_px = np.zeros((height, width), bool)
        for cell, real, box, probe, (cap, note) in zip(
            placeholders, padded, boxes, probes, anchors, strict=True
        ):
            if cell is None or real is None or box is None or probe is None or cell.shape is None:
                cells.append(None)
                continue
            r0, r1, c0, c1 = box
            pos, rows, cols = pal.pixel_maps(*probe, cell.shape[:2])
            if real.tiles is not None:  # a mosaic's pixels map to its channel maps
                ok, src = layout.mosaic_sources(rows, cols, real.tiles.shape, real.max_tiles)
                pos = pos[ok]
            else:  # an image's (or an RGB picture's) pixel, row by row
                src = rows * cell.shape[1] + cols
            br, bc = np.divmod(pos, c1 - c0)
            page_pos = (br + r0) * width + (bc + c0)
            image_px.ravel()[page_pos] = True
            cells.append(
                _Cell(page_pos.astype(np.intp), src.astype(np.intp), cap, note, rgb=real.rgb)
            )
        static = rgb.copy()
        static[image_px] = 255  # overwritten by every pattern: leave out of the palette
        codes = (
            static[..., 0].astype(np.int32) << 16
            | static[..., 1].astype(np.int32) << 8
            | static[..., 2]
        )
        uniq, inverse, counts = np.unique(codes.ravel(), return_inverse=True, return_counts=True)
        colors = np.stack([uniq >> 16, (uniq >> 8) & 255, uniq & 255], axis=1).astype(np.uint8)
        extra, entry = pal.fit_palette(colors, counts, 256 - LEVELS - 1)
        palette = np.zeros((256, 3), np.uint8)
        palette[:LEVELS] = self.lut
        palette[BAD] = BAD_COLOR
        palette[BAD + 1 : BAD + 1 + len(extra)] = extra
        index = (entry[inverse] + BAD + 1).astype(np.uint8).reshape(height, width)
        return _Layout(
            index=index,
            palette=palette,
            cells=cells,
            strip=strip,
            strip_bg=strip_bg,
            greys=pal.grey_map(extra, BAD + 1),
            rgb=any(c is not None and c.rgb for c in cells),
        )

    def _anchors(
        self, placeholders: list[Cell | None]
    ) -> list[tuple[Anchor | None, Anchor | None]]:
        """Per cell, where matplotlib draws its value line and its note: one draw of the page
        with the reference texts shown on blank cells (images and labels hidden), each
        text's ink read back inside its own extent."""
        mpl = self.mpl
        canvas = mpl.fig.canvas
        hidden = [im for im in mpl.images if im is not None and im.get_visible()]
        hidden += [t for labels in mpl.label_artists for t in labels if t.get_visible()]
        for artist in hidden:
            artist.set_visible(False)
        canvas.draw()
        grey = np.asarray(canvas.buffer_rgba())[..., 1]
        height, width = grey.shape
        renderer = canvas.get_renderer()
        out: list[tuple[Anchor | None, Anchor | None]] = []
        for i, cell in enumerate(placeholders):
            found: list[Anchor | None] = []
            for artist, text, cache in (
                (mpl.captions[i], None if cell is None else cell.caption, self.captions),
                (mpl.notes[i], None if cell is None else cell.note, self.notes),
            ):
                if artist is None or text is None or not artist.get_visible():
                    found.append(None)
                    continue
                x0, y0, x1, y1 = artist.get_window_extent(renderer).extents
                r0, r1 = max(int(height - y1) - 1, 0), min(int(np.ceil(height - y0)) + 1, height)
                c0, c1 = max(int(x0) - 1, 0), min(int(np.ceil(x1)) + 1, width)
                ink = grey[r0:r1, c0:c1] < 255
                found.append(Anchor.calibrate(ink, (r0, c0), cache, text))
            out.append((found[0], found[1]))
        for artist in hidden:
            artist.set_visible(True)
        return out

    def _probe(
        self, placeholders: list[Cell | None], boxes: list[tuple[int, int, int, int] | None]
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray] | None]:
        """Per cell, its box drawn three times: row indices in encodings 0 and 1, column
        indices in encoding 0 (see ``palette.pixel_maps``). Each probe restores the static
        page and redraws only the images and the frames over them, as a full draw would (so
        pixels under a frame are not image pixels); pixels under a channel label's box are
        marked as not image pixels too."""
        from matplotlib.colors import ListedColormap

        mpl = self.mpl
        fig, canvas = mpl.fig, mpl.fig.canvas
        static = canvas.copy_from_bbox(fig.bbox)
        drawn = [
            (cell, ax, im)
            for cell, ax, im in zip(placeholders, mpl.axes, mpl.images, strict=False)
            if cell is not None and im is not None
        ]
        shots = []
        for axis, variant in ((0, 0), (0, 1), (1, 0)):
            canvas.restore_region(static)
            for cell, ax, im in drawn:
                h, w = cell.shape[:2]  # an RGB picture is probed as its (H, W) map
                n = (h, w)[axis]
                im.set_data(np.indices((h, w), dtype=np.float32)[axis])
                im.set_cmap(
                    ListedColormap(np.minimum((pal.probe_colors(n, variant) + 0.25) / 255, 1))
                )
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
        out: list[tuple[np.ndarray, np.ndarray, np.ndarray] | None] = []
        for cell, box in zip(placeholders, boxes, strict=True):
            if cell is None or box is None:
                out.append(None)
                continue
            r0, r1, c0, c1 = box
            out.append(tuple(shot[r0:r1, c0:c1] for shot in shots))  # type: ignore[misc]
        return out


_PAINTERS: dict[str, RasterPainter] = {}
MAX_PAINTERS = 4


def painter(opts: GridOptions) -> RasterPainter:
    """The process's raster painter for ``opts``: kept between calls (with the layouts of
    every page it drew), so a pool worker drawing many pieces of patterns builds each page
    layout once."""
    key = repr(opts)
    found = _PAINTERS.get(key)
    if found is None:
        if len(_PAINTERS) >= MAX_PAINTERS:
            for old in _PAINTERS.values():
                old.close()
            _PAINTERS.clear()
        found = _PAINTERS[key] = RasterPainter(opts)
    return found
