"""What the figures were measured on: CPU model, cores, load, library versions."""

from __future__ import annotations

import os
import platform
import shutil
from pathlib import Path
from typing import Any

from pipeline.store.crc import backend as crc_backend


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def describe(tmp: Path) -> dict[str, Any]:
    import matplotlib
    import PIL

    from pipeline.capturing.identity import versions

    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        "memory_gib": _memory_gib(),
        "tmp": str(tmp),
        "tmp_free_gib": round(shutil.disk_usage(tmp).free / 2**30, 1),
        "load_average_start": load_average(),
        "crc32": crc_backend(),
        "versions": {**versions(), "matplotlib": matplotlib.__version__, "pillow": PIL.__version__},
    }


def _memory_gib() -> float | None:
    try:
        import psutil

        return round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        return None
