"""Run every suite into one scratch folder and write ``results.json``."""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson

from .figures import Figure
from .machine import describe, load_average
from .sizes import Sizes

log = logging.getLogger(__name__)

SUITES = (
    "capture",
    "render",
    "analysis",
    "compare",
    "training",
    "viewer",
    "distributed",
    "visualize",
)


def run_all(
    sizes: Sizes, results: Path, tmp_root: Path | None = None, suites: tuple[str, ...] = SUITES
) -> tuple[list[Figure], dict[str, Any]]:
    """Measure the figures of ``suites``; write them with the machine to ``results``."""
    from .analysis_suite import analysis_figures
    from .capture_suite import capture_figures
    from .cka_bench import cka_figures
    from .compare_command import compare_command_figures
    from .distributed_suite import distributed_figures
    from .encoding_bench import encoding_figures
    from .rdm_bench import rdm_figures
    from .render_suite import render_figures
    from .training_suite import training_figures
    from .viewer_suite import viewer_figures
    from .visualize_bench import visualize_figures

    tmp = Path(tempfile.mkdtemp(prefix="passage-bench-", dir=tmp_root))
    machine = describe(tmp)
    start = time.perf_counter()
    figures: list[Figure] = []
    try:
        if "capture" in suites:
            figures += capture_figures(sizes, tmp)
        if "render" in suites:
            figures += render_figures(sizes, tmp)
        if "analysis" in suites:
            figures += analysis_figures(sizes, tmp)
            figures += cka_figures(sizes, tmp)
        if "compare" in suites:
            figures += rdm_figures(sizes, tmp)
            figures += encoding_figures(sizes, tmp)
            figures += compare_command_figures(sizes, tmp)
        if "training" in suites:
            figures += training_figures(sizes)
        if "viewer" in suites:
            figures += viewer_figures(sizes, tmp)
        if "distributed" in suites:
            figures += distributed_figures(sizes, tmp)
        if "visualize" in suites:
            figures += visualize_figures(sizes, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    machine["load_average_end"] = load_average()
    doc = {
        "figures": [f.to_dict() for f in figures],
        "sizes": asdict(sizes),
        "machine": machine,
        "seconds": round(time.perf_counter() - start, 1),
        "method": (
            "every ratio is ours vs a baseline measured in the same process, interleaved "
            "(baseline, ours, ...), after one untimed warm-up each; medians over the repeats. "
            "Peak RSS: a fresh child process per measurement, polled with psutil."
        ),
    }
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    return figures, doc
