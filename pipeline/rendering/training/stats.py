"""``stats.png``: per selected layer over the recorded epochs, the mean, the standard
deviation and the fraction of exact zeros (dead ReLUs) of the watched patterns' outputs,
beside the training loss and accuracy curves from ``metrics.jsonl``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..grids import PNG_OPTIONS
from ..timeline import LayerStats, Timeline

# The three statistics panels, in reading order: title, the value of one (layer, record).
PANELS: tuple[tuple[str, Callable[[LayerStats], float]], ...] = (
    ("mean", lambda s: s.mean),
    ("standard deviation", lambda s: s.std),
    ("fraction of zeros (dead ReLUs)", lambda s: s.zero_fraction),
)
Series = dict[str, dict[str, tuple[list[int], list[float]]]]


def stats_series(
    layers: Sequence[str], keys: Sequence[int], stats: dict[tuple[str, int], LayerStats]
) -> Series:
    """What the statistics panels draw: panel title -> layer -> (records, values), one line per
    layer over the records it has statistics for."""
    series: Series = {}
    for title, value in PANELS:
        lines = series[title] = {}
        for layer in layers:
            xs = [k for k in keys if (layer, k) in stats]
            lines[layer] = (xs, [value(stats[(layer, k)]) for k in xs])
    return series


def draw_stats(
    path: Path,
    layers: Sequence[str],
    keys: Sequence[int],
    stats: dict[tuple[str, int], LayerStats],
    timeline: Timeline,
    dpi: int = 100,
) -> Path:
    """Draw the 2x2 statistics figure into ``path``."""
    fig = Figure(figsize=(12, 8), dpi=dpi)
    FigureCanvasAgg(fig)
    try:
        axes = fig.subplots(2, 2, squeeze=False)
        panels = (axes[0][0], axes[0][1], axes[1][0])
        for ax, (title, lines) in zip(
            panels, stats_series(layers, keys, stats).items(), strict=True
        ):
            for layer, (xs, ys) in lines.items():
                ax.plot(xs, ys, marker=".", label=layer)
            ax.set_title(title)
            ax.set_xlabel(timeline.unit)
            ax.grid(True, alpha=0.3)
        axes[0][0].legend(fontsize="small")
        axes[1][0].set_ylim(-0.02, 1.02)
        _draw_curves(axes[1][1], timeline)
        fig.suptitle("watched patterns' layer outputs over training")
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=dpi, pil_kwargs=PNG_OPTIONS)
    finally:
        fig.clear()
    return path


def _draw_curves(ax: Axes, timeline: Timeline) -> None:
    curves = timeline.curves()
    losses = {k: v for k, v in curves.items() if "loss" in k}
    others = {k: v for k, v in curves.items() if "loss" not in k}
    ax.set_title("training loss and metrics")
    ax.set_xlabel(timeline.unit)
    ax.grid(True, alpha=0.3)
    if not curves:
        ax.text(0.5, 0.5, "no metrics.jsonl", ha="center", transform=ax.transAxes)
        return
    handles = []
    for name, (xs, ys) in losses.items():
        handles += ax.plot(xs, ys, marker=".", label=name)
    ax.set_ylabel("loss")
    if others:
        twin = ax.twinx()
        for i, (name, (xs, ys)) in enumerate(others.items()):
            handles += twin.plot(xs, ys, marker=".", linestyle="--", color=f"C{i + 3}", label=name)
        twin.set_ylabel("metrics")
    ax.legend(handles=handles, fontsize="small", loc="center right")
