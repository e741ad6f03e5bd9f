"""Raster grid pages: matplotlib draws a page layout once, numpy fills in every pattern.

For each static layout (same titles and image shapes) the page is drawn once with
placeholder images and kept as a palette image; probe draws record which image pixel lands
on which page pixel. Each pattern then costs a colormap lookup, a gather into a copy of the
background, a redrawn suptitle strip and a one-byte-per-pixel PNG. Pages with a marked
(problem) cell or mosaic channel labels are left to ``PagePainter``.

The colormap is quantized to ``LEVELS`` entries (sampled at their centres); the static
page's anti-aliased greys share the remaining palette entries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import palette as pal
from .grids import Cell, GridOptions, PagePainter, auto_limits, static_key
from .png import save_indexed_png
from .suptitle import Suptitle

LEVELS = 192  # colormap entries; entry LEVELS is the NaN colour, the rest the static page
BAD = LEVELS
BAD_COLOR = (255, 255, 255)  # as PagePainter's cmap.with_extremes(bad="white")
MAX_LAYOUTS = 4  # static layouts kept per painter


def supports(cells: Sequence[Cell | None]) -> bool:
    """Whether the raster path can draw these cells: every cell a 2-D image without labels,
    no side longer than the probe colours can encode."""
    return all(
        c is None
        or (
            c.problem is None
            and c.image is not None
            and not c.labels
            and c.image.ndim == 2
            and max(c.image.shape) <= pal.MAX_PROBE
        )
        for c in cells
    )


@dataclass
class _Layout:
    index: np.ndarray  # (H, W) uint8 palette indices of the static page
    palette: np.ndarray  # (256, 3) uint8
    cells: list[tuple[np.ndarray, np.ndarray, np.ndarray] | None]  # page pixel, row, col
    strip: int  # rows above every axes: the suptitle's strip
    strip_bg: object  # the blank strip as an Agg region, restored before each suptitle
    greys: np.ndarray  # (256,) uint8 grey level -> palette index


class RasterPainter:
    """Draws grid pages of image cells as palette PNGs (see the module docstring)."""

    def __init__(self, opts: GridOptions) -> None:
        import matplotlib

        self.opts = opts
        self.mpl = PagePainter(opts)
        cmap = matplotlib.colormaps.get_cmap(opts.cmap)
        self.lut = cmap((np.arange(LEVELS) + 0.5) / LEVELS, bytes=True)[:, :3]
        self.suptitle = Suptitle(self.mpl.fig, opts.dpi)
        self._layouts: dict[tuple, _Layout] = {}

    def close(self) -> None:
        self.mpl.fig.clear()

    def draw(self, cells: Sequence[Cell | None], path: Path, suptitle: str | None = None) -> None:
        padded = [cells[i] if i < len(cells) else None for i in range(len(self.mpl.axes))]
        key = static_key(padded)
        lay = self._layouts.get(key)
        if lay is None:
            if len(self._layouts) >= MAX_LAYOUTS:
                self._layouts.clear()
            lay = self._layouts[key] = self._build(padded)
        page = lay.index.copy()
        flat = page.ravel()
        for cell, where in zip(padded, lay.cells, strict=True):
            if cell is None or where is None:
                continue
            pos, rows, cols = where
            image = cell.image
            vmin, vmax = (cell.vmin, cell.vmax) if cell.vmin is not None else auto_limits(image)
            levels = pal.level_indices(image, vmin, vmax, LEVELS, BAD)
            flat[pos] = levels[rows, cols]
        if suptitle:
            strip = self.suptitle.strip(suptitle, lay.strip_bg, lay.strip, lay.index.shape[1])
            page[: lay.strip] = lay.greys[strip]
        path.parent.mkdir(parents=True, exist_ok=True)
        save_indexed_png(path, page, lay.palette, self.opts.dpi)

    def _build(self, padded: list[Cell | None]) -> _Layout:
        """Draw the static page (placeholder images, no suptitle) and the probe pages."""
        placeholders = [
            None if c is None else Cell(c.title, np.zeros(c.image.shape, np.float32), 0.0, 1.0)
            for c in padded
        ]
        mpl = self.mpl
        mpl.arrange(placeholders, None)
        self.suptitle.hide()
        canvas = mpl.fig.canvas
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
        cells: list[tuple[np.ndarray, np.ndarray, np.ndarray] | None] = []
        image_px = np.zeros((height, width), bool)
        for cell, box, probe in zip(placeholders, boxes, probes, strict=True):
            if cell is None or box is None or probe is None:
                cells.append(None)
                continue
            r0, r1, c0, c1 = box
            pos, rows, cols = pal.pixel_maps(*probe, cell.image.shape)
            br, bc = np.divmod(pos, c1 - c0)
            page_pos = (br + r0) * width + (bc + c0)
            image_px.ravel()[page_pos] = True
            cells.append((page_pos, rows, cols))
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
        )

    def _probe(
        self, placeholders: list[Cell | None], boxes: list[tuple[int, int, int, int] | None]
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray] | None]:
        """Per cell, its box drawn three times: row indices in encodings 0 and 1, column
        indices in encoding 0 (see ``palette.pixel_maps``). Each probe restores the static
        page and redraws only the images and the frames over them, as a full draw would."""
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
                h, w = cell.image.shape
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


_PAINTERS: dict[tuple[str, int], RasterPainter] = {}
MAX_PAINTERS = 8


def painter(opts: GridOptions, page_index: int) -> RasterPainter:
    """The process's raster painter for page ``page_index`` under ``opts``: kept between
    calls, so a pool worker drawing many pieces of patterns builds each layout once."""
    key = (repr(opts), page_index)
    found = _PAINTERS.get(key)
    if found is None:
        if len(_PAINTERS) >= MAX_PAINTERS:
            for old in _PAINTERS.values():
                old.close()
            _PAINTERS.clear()
        found = _PAINTERS[key] = RasterPainter(opts)
    return found
