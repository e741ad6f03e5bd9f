"""The layer profile: each layer's score (model order) with its bootstrap interval, the noise
ceiling as a band, the best layer marked with the fraction of bootstrap samples in which it
stays best, and the median encoding r as a second series when there is one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ..analysis import heat_layout as hl
from ..analysis.canvas import new_figure, save_figure
from . import views

SCORE = "#4c72b0"  # the analysis pictures' bar colour
ENCODING = "#dd8452"
CEILING = "#c8c8c8"
BEST = "#c00000"  # as the analysis pictures mark what stands out
TITLE_POINTS = 11.0
CAP = 0.18  # half the width of an interval's caps, in layers


def figure_profile(
    profile: views.Profile, title: str = "", method: str = "score", epoch_note: bool = True
) -> Figure:
    """The profile's figure (not yet drawn); ``method`` labels the y axis."""
    names = hl.short_names(profile.layers)
    n = len(names)
    x = np.arange(n, dtype=np.float64)
    rotate = views.tick_rotation(names)
    longest = max((len(s) for s in names), default=1)
    below = 0.9 + (longest * 0.085 * (0.75 if rotate == 45 else 1.0) if rotate else 0.2)
    width = min(max(6.5, 1.6 + 0.42 * n), 22.0)
    fig = new_figure(width, 5.0 + below, layout="constrained")
    ax = fig.add_subplot()
    handles: list[Any] = []
    ceiling = views.band(profile.ceiling)
    if ceiling is not None:
        handles.append(
            ax.axhspan(
                *ceiling,
                color=CEILING,
                alpha=0.6,
                linewidth=0,
                zorder=0,
                label=f"noise ceiling {ceiling[0]:.3f}..{ceiling[1]:.3f}",
            )
        )
    if profile.score is not None:
        handles += _scores(ax, x, profile, method)
    if profile.encoding is not None:
        target = ax.twinx() if profile.score is not None else ax
        (line,) = target.plot(
            x,
            profile.encoding,
            color=ENCODING,
            marker="s",
            markersize=4,
            linewidth=1.2,
            linestyle="--",
            label="median encoding r (held-out conditions)",
        )
        target.set_ylabel("median encoding r", color=ENCODING if target is not ax else "black")
        handles.append(line)
    ax.set_xticks(x, names, rotation=rotate, ha="right" if rotate == 45 else "center")
    ax.tick_params(axis="x", labelsize=hl.TICK_POINTS[1] if n <= 30 else 7.0)
    ax.set_xlim(-0.6, n - 0.4)
    ax.set_xlabel("layer (model order)")
    ax.set_ylabel(method if profile.score is not None else "median encoding r")
    ax.axhline(0.0, color="#888888", linewidth=0.6, zorder=0)
    if handles:  # under the plot, so that it never hides a point
        fig.legend(handles=handles, fontsize=8, loc="outside lower center", ncols=2, frameon=False)
    if epoch_note and profile.epoch is not None:
        title = f"{title} (epoch {profile.epoch})" if title else f"epoch {profile.epoch}"
    if title:
        ax.set_title(views.wrap_lines(title, width - 0.5, TITLE_POINTS), fontsize=TITLE_POINTS)
    return fig


def _scores(ax: Any, x: np.ndarray, profile: views.Profile, method: str) -> list[Any]:
    score = np.asarray(profile.score, np.float64)
    (line,) = ax.plot(
        x,
        score,
        color=SCORE,
        marker="o",
        markersize=4.5,
        linewidth=1.4,
        label=f"{method}, mean over references",
        zorder=3,
    )
    handles = [line]
    if profile.ci is not None:
        lo, hi = profile.ci[:, 0], profile.ci[:, 1]
        ok = np.isfinite(lo) & np.isfinite(hi)
        bars = ax.vlines(
            x[ok],
            lo[ok],
            hi[ok],
            color=SCORE,
            linewidth=1.2,
            zorder=2,
            label="bootstrap 95 % interval",
        )
        ax.hlines(
            np.r_[lo[ok], hi[ok]],
            np.r_[x[ok], x[ok]] - CAP,
            np.r_[x[ok], x[ok]] + CAP,
            color=SCORE,
            linewidth=1.2,
            zorder=2,
        )
        handles.append(bars)
    if profile.best >= 0:
        b = profile.best
        (star,) = ax.plot(
            [x[b]],
            [score[b]],
            marker="*",
            markersize=15,
            color=BEST,
            linestyle="none",
            zorder=4,
            label=f"best: {hl.shorten(profile.layers[b])} ({views.fraction_text(profile.best_p)} of bootstrap samples)",
        )
        handles.append(star)
    return handles


def draw_profile(
    profile: views.Profile, path: Path | str, title: str = "", method: str = "score"
) -> Path:
    """Draw the profile to ``path`` (PNG, atomically)."""
    return save_figure(figure_profile(profile, title, method), path)
