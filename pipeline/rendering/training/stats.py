"""``stats.png``: per selected layer over the recorded epochs, the mean, the standard
deviation and the fraction of exact zeros (dead ReLUs) of the watched patterns' outputs,
beside the training loss and accuracy curves from ``metrics.jsonl``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..grids import PNG_OPTIONS
from ..timeline import LayerStats, Timeline


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
        panels = (
            (axes[0][0], "mean", lambda s: s.mean),
            (axes[0][1], "standard deviation", lambda s: s.std),
            (axes[1][0], "fraction of zeros (dead ReLUs)", lambda s: s.zero_fraction),
        )
        for ax, title, value in panels:
            for layer in layers:
                xs = [k for k in keys if (layer, k) in stats]
                ax.plot(xs, [value(stats[(layer, k)]) for k in xs], marker=".", label=layer)
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
