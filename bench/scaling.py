"""How cost grows with patterns, layers and layer size: ``python -m bench.scaling``.

Prints seconds (median of ``--repeats``) for captures and renders that vary one thing at a
time; these are the measured sentences of docs/performance.md's "How cost grows".
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pipeline.capturing.stream import capture
from pipeline.config import SelectConfig
from pipeline.rendering import render

from .common import SEED_SELECT, TimedCapture, capture_config
from .measure import seconds


def _wide(width: int) -> Any:
    import keras

    inputs = keras.Input(shape=(50, 50), name="input")
    x = keras.layers.Dense(
        width, name="wide", kernel_initializer=keras.initializers.GlorotUniform(1)
    )(inputs)
    return keras.Model(inputs, keras.layers.Flatten(name="flatten")(x), name=f"wide{width}")


def wide_25() -> Any:
    return _wide(25)


def wide_100() -> Any:
    return _wide(100)


def wide_400() -> Any:
    return _wide(400)


def _median(fn: Callable[[], float], repeats: int) -> float:
    fn()  # warm-up
    return statistics.median(fn() for _ in range(repeats))


def _row(label: str, secs: float, patterns: int, nbytes: int) -> str:
    return (
        f"| {label} | {patterns:,} | {nbytes / 2**20:,.0f} | {secs:.2f} | "
        f"{patterns / secs:,.0f} | {nbytes / 2**20 / secs:,.0f} |"
    )


def capture_rows(tmp: Path, n: int, repeats: int) -> list[str]:
    rows = ["| capture | patterns | MiB | s | patterns/s | MiB/s |", "|---|---|---|---|---|---|"]
    cases: list[tuple[str, int, str, SelectConfig]] = [
        (f"seed model, 3 layers, {m:,} patterns", m, "builtin:seed", SEED_SELECT)
        for m in (n // 4, n // 2, n)
    ]
    cases += [
        ("seed model, 1 layer (my_dense)", n, "builtin:seed", SelectConfig(include=("my_dense",))),
        ("seed model, rule all (every layer)", n, "builtin:seed", SelectConfig(rule="all")),
    ]
    cases += [
        (f"one Dense layer, 50x{w} per pattern", n, f"bench.scaling:wide_{w}", SEED_SELECT)
        for w in (25, 100, 400)
    ]
    for label, m, model, select in cases:
        timed = TimedCapture(capture_config(tmp / "scale", m, 0, model=model, select=select))
        secs = _median(timed, repeats)
        rows.append(_row(label, secs, m, timed.bytes))
    return rows


def render_rows(tmp: Path, n: int, repeats: int) -> list[str]:
    rows = ["| render (in one process) | grids | s | grids/s |", "|---|---|---|---|"]
    cases = [
        (f"seed model, 3 cells per 2x2 page, {m} patterns", m, "builtin:seed", SEED_SELECT)
        for m in (n // 2, n)
    ]
    cases += [
        (
            f"seed model, 1 cell per 2x2 page, {n} patterns",
            n,
            "builtin:seed",
            SelectConfig(include=("my_dense",)),
        ),
        (f"one Dense layer 50x400, 1 cell, {n} patterns", n, "bench.scaling:wide_400", SEED_SELECT),
    ]
    out = tmp / "render-out"
    for label, m, model, select in cases:
        run = capture(
            capture_config(tmp / "render-run", m, 0, model=model, select=select), quiet=True
        )

        def once(run: Any = run, m: int = m) -> float:
            shutil.rmtree(out, ignore_errors=True)
            return seconds(
                lambda: render(
                    run, out, grid=(2, 2), patterns=list(range(m)), workers=1, quiet=True
                )
            )

        secs = _median(once, repeats)
        rows.append(f"| {label} | {m} | {secs:.2f} | {m / secs:,.1f} |")
        shutil.rmtree(tmp / "render-run", ignore_errors=True)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scaling", description=__doc__)
    parser.add_argument("--patterns", type=int, default=40_000, help="largest capture")
    parser.add_argument("--grids", type=int, default=60, help="largest render")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    tmp = Path(tempfile.mkdtemp(prefix="passage-scaling-"))
    try:
        print("\n".join(capture_rows(tmp, args.patterns, args.repeats)))
        print()
        print("\n".join(render_rows(tmp, args.grids, args.repeats)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
