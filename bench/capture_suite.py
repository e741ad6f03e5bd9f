"""Capture figures: throughput against the article's method and against the bare forward
pass (article's model and a CNN), peak RSS growth, JSON against NPY."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from pipeline.config import Config

from .baselines import BareForward, article_capture
from .common import (
    CONV_SELECT,
    StoreAlone,
    TimedCapture,
    capture_config,
    child_env,
    fit_to_disk,
    passage_cmd,
)
from .figures import Figure
from .measure import folder_bytes, interleaved, peak_rss
from .sizes import Sizes

log = logging.getLogger(__name__)


def capture_figures(sizes: Sizes, tmp: Path) -> list[Figure]:
    figures: list[Figure] = []
    rss_small, bytes_small = _rss_capture(tmp, sizes.capture_small, sizes.batch_size)
    n = fit_to_disk(sizes.capture, bytes_small / sizes.capture_small, tmp)
    note = "" if n == sizes.capture else f"reduced from {sizes.capture:,} to fit the free disk"
    figures += _throughput(sizes, tmp, n, note)
    figures += _cnn_ratio(sizes, tmp)
    rss_large, _ = _rss_capture(tmp, n, sizes.batch_size)
    figures.append(
        Figure(
            f"capture peak RSS, {n:,} / {sizes.capture_small:,} patterns",
            rss_small / 2**20,
            rss_large / 2**20,
            "MiB",
            rss_large / rss_small,
            ("<=", 1.15),
            note,
        )
    )
    figures.append(_json_ratio(sizes, tmp))
    return figures


def _throughput(sizes: Sizes, tmp: Path, n: int, note: str) -> list[Figure]:
    config = capture_config(tmp / "capture", n, sizes.batch_size)
    bare = BareForward(config)
    ours = TimedCapture(config, bare.model)
    half = TimedCapture(
        capture_config(tmp / "capture16", n, sizes.batch_size, dtype="float16"), bare.model
    )
    patterns = bare.source.batch(0, sizes.article)[0]
    names = bare.layer_names

    def article() -> float:
        return article_capture(bare.model, names, patterns)

    log.info("capture: warm-up (one untimed capture and forward pass)")
    ours(), bare()
    log.info("capture: %d x (bare, ours, ours float16, article) on %d patterns", sizes.repeats, n)
    med = interleaved({"bare": bare, "ours": ours, "half": half, "article": article}, sizes.repeats)
    ours_rate = n / med["ours"]
    article_rate = sizes.article / med["article"]
    return [
        Figure(
            f"capture throughput NPY float32, {n:,} patterns / article's method",
            article_rate,
            ours_rate,
            "patterns/s",
            ours_rate / article_rate,
            (">=", 800),
            f"article's method timed on {sizes.article} patterns" + (f"; {note}" if note else ""),
        ),
        _versus_bare(
            "capture throughput / bare forward pass (builtin:seed)",
            n,
            med,
            "ours",
            (">=", 0.60),
            f"{n:,} patterns, batch {bare.batch_size}, {ours.bytes / 2**20:,.0f} MiB written; "
            "both draw the same batches from the same pattern source",
        ),
        _versus_bare(
            "capture throughput / bare forward pass, --dtype float16",
            n,
            med,
            "half",
            None,
            f"same run stored as float16: {half.bytes / 2**20:,.0f} MiB written",
        ),
    ]


def _versus_bare(
    name: str,
    n: int,
    med: dict[str, float],
    key: str,
    target: tuple[str, float] | None,
    note: str,
) -> Figure:
    """Patterns/s of ``med[key]`` against the bare forward pass over the same ``n`` patterns."""
    return Figure(
        name, n / med["bare"], n / med[key], "patterns/s", med["bare"] / med[key], target, note
    )


def _cnn_ratio(sizes: Sizes, tmp: Path) -> list[Figure]:
    label = "builtin:cnn"

    def config(name: str, batch_size: int) -> Config:
        return capture_config(tmp / name, sizes.cnn, batch_size, model=label, select=CONV_SELECT)

    bare = BareForward(config("cnn", sizes.batch_size))
    ours = TimedCapture(bare.config, bare.model)
    store = StoreAlone(ours.config, bare, tmp / "cnn-store")
    bare_fixed = BareForward(config("cnn-fixed", sizes.fixed_batch))
    fixed = TimedCapture(bare_fixed.config, bare_fixed.model)
    ours(), bare(), store(), fixed(), bare_fixed()
    med = interleaved(
        {"bare": bare, "ours": ours, "store": store, "fixed": fixed, "bare_fixed": bare_fixed},
        sizes.repeats,
    )
    return [
        _versus_bare(
            "capture throughput / bare forward pass (CNN, Conv2D layers)",
            sizes.cnn,
            med,
            "ours",
            (">=", 0.60),
            f"{label}; {sizes.cnn:,} patterns, batch {bare.batch_size} (by memory budget), "
            f"{ours.bytes / 2**20:,.0f} MiB written",
        ),
        _versus_bare(
            f"same, --batch-size {sizes.fixed_batch}",
            sizes.cnn,
            {"bare": med["bare_fixed"], "fixed": med["fixed"]},
            "fixed",
            None,
            "smaller batches: the fixed costs of each forward pass and file weigh more",
        ),
        _versus_bare(
            "ceiling: store alone (no model) / bare forward pass (CNN)",
            sizes.cnn,
            med,
            "store",
            None,
            f"the same {store.bytes / 2**20:,.0f} MiB of files written from arrays made once: "
            f"{store.bytes / med['store'] / 1e9:.2f} GB/s. Below 1, the disk is slower than the "
            "forward pass and no capture ratio can exceed this one",
        ),
        Figure(
            "capture throughput / store alone (CNN): how near the disk's limit",
            sizes.cnn / med["store"],
            sizes.cnn / med["ours"],
            "patterns/s",
            med["store"] / med["ours"],
            None,
            "1 would be a capture as fast as writing its files with no model at all",
        ),
    ]


def _rss_capture(tmp: Path, n: int, batch_size: int) -> tuple[int, int]:
    """(peak RSS, bytes written) of a CLI capture of ``n`` patterns in a fresh process."""
    out = tmp / f"rss-{n}"
    cmd = passage_cmd(
        "capture",
        "--model",
        "builtin:seed",
        "--patterns",
        f"random:{n}",
        "--out",
        str(out),
        "--batch-size",
        str(batch_size),
        "--no-architecture",
        "--overwrite",
    )
    log.info("capture: peak RSS of %d patterns in a child process", n)
    peak, _ = peak_rss(cmd, env=child_env())
    size = folder_bytes(out)
    shutil.rmtree(out, ignore_errors=True)
    return peak, size


def _json_ratio(sizes: Sizes, tmp: Path) -> Figure:
    npy = TimedCapture(capture_config(tmp / "npy", sizes.json, sizes.batch_size))
    json = TimedCapture(capture_config(tmp / "json", sizes.json, sizes.batch_size, fmt="json"))
    npy(), json()
    med = interleaved({"npy": npy, "json": json}, sizes.repeats)
    return Figure(
        "capture time JSON / NPY",
        med["npy"],
        med["json"],
        "s",
        med["json"] / med["npy"],
        None,
        f"{sizes.json:,} patterns; JSON {json.bytes / 2**20:,.0f} MiB vs "
        f"NPY {npy.bytes / 2**20:,.0f} MiB",
    )
