"""Which path reduces a clean chunk: the compiled fused pass (``fused``, Numba) or numpy.

``$PASSAGE_STATS_KERNEL``: ``numba`` (always the compiled pass, failing loudly when it cannot
load), ``numpy`` (never), or unset / ``auto``: the compiled pass for an analysis of at least
``AUTO_MIN_BYTES`` of data (``plan``, decided once by the runner from the data alone, so the
path never depends on how the work is spread over processes), numpy below. A reduction given
no plan takes the compiled pass for the patterns past a layer's first ``AUTO_MIN_BYTES`` (by
position, as deterministic). Why a threshold: each process pays about 0.65 s of CPU to import
Numba and load the cached kernel (a first compile after install: about 4 s), and the fused
pass saves about 0.85 ms per MiB against numpy's passes, so below about 0.75 GiB a process
would wait longer. When Numba cannot be imported or compile, one warning is logged and numpy
is used.

Nothing here imports Numba until a chunk asks for the compiled pass.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from ..errors import ConfigError

log = logging.getLogger(__name__)

KERNEL_ENV = "PASSAGE_STATS_KERNEL"
CHOICES = ("auto", "numba", "numpy")
AUTO_MIN_BYTES = 1 << 30

_loaded: Callable | None = None
_failed: str | None = None


def choice() -> str:
    """``$PASSAGE_STATS_KERNEL``, checked: auto (unset), numba or numpy."""
    text = os.environ.get(KERNEL_ENV, "").strip().lower() or "auto"
    if text not in CHOICES:
        raise ConfigError(
            f"{KERNEL_ENV}: expected one of {', '.join(CHOICES)}, received {text!r}; "
            "unset it to let analyze choose"
        )
    return text


def plan(total_bytes: int) -> bool:
    """Whether an analysis of ``total_bytes`` of data should take the compiled pass (the
    choice, or in auto whether it is large enough); the reductions still fall back to numpy
    when the kernel cannot load."""
    how = choice()
    return how == "numba" or (how == "auto" and total_bytes >= AUTO_MIN_BYTES)


def wanted(offset_bytes: int, planned: bool | None = None) -> bool:
    """Whether a clean chunk starting ``offset_bytes`` into its layer's data takes the
    compiled pass: the forced choice, else ``planned``, else by position (module docstring)."""
    how = choice()
    if how == "numpy":
        return False
    if how == "auto":
        if planned is None:
            planned = offset_bytes >= AUTO_MIN_BYTES
        if not planned:
            return False
    return load(strict=how == "numba") is not None


def load(strict: bool = False) -> Callable | None:
    """The compiled ``fused.clean_pass`` (imported and compiled once per process), or None
    when Numba is missing or cannot compile it (warned once); ``strict``: raise instead."""
    global _loaded, _failed
    if _loaded is not None:
        return _loaded
    if _failed is not None and not strict:
        return None
    try:
        from . import fused

        _warm(fused.clean_pass)
    except Exception as exc:  # ImportError, numba.TypingError, LLVM errors: all mean "no kernel"
        _failed = f"{type(exc).__name__}: {exc}"
        if strict:
            raise ConfigError(
                f"{KERNEL_ENV}=numba: expected the compiled statistics kernel to load, "
                f"received {_failed}; install numba (pip install numba) or unset {KERNEL_ENV}"
            ) from exc
        log.warning(
            "analyze: the compiled statistics kernel is unavailable (%s); using numpy", _failed
        )
        return None
    _loaded = fused.clean_pass
    return _loaded


def cached() -> bool:
    """Whether the compiled kernel is in Numba's cache (beside ``fused.py``, or under
    ``$NUMBA_CACHE_DIR``): looked up on disk, without importing Numba."""
    root = os.environ.get("NUMBA_CACHE_DIR")
    here = Path(__file__).resolve().parent
    folders = [here / "__pycache__"] if not root else list(Path(root).rglob("*analysis*"))
    return any(any(f.glob("fused.clean_pass-*.nbi")) for f in folders if f.is_dir())


def prepare_pool(planned: bool) -> None:
    """Before a pool whose workers will take the compiled pass: compile it here once when it
    is not cached yet, so that the workers load it from the cache instead of each compiling
    it (4-10 s per process on the first analysis after an install)."""
    if planned and choice() != "numpy" and not cached():
        load(strict=choice() == "numba")


def _warm(fn: Callable) -> None:
    """Compile (or load from the cache) the one signature analyze uses, on a tiny input, so
    that a failure shows here and not in the middle of a chunk."""
    import numpy as np

    flat = np.zeros((2, 4), np.float32)
    f = flat.shape[1]
    fn(
        flat,
        flat[0].copy(),
        np.float32(0.0),
        np.float32(64.0),
        2,
        1,
        np.zeros(f),
        np.zeros(f),
        np.full(f, np.inf, np.float32),
        np.full(f, -np.inf, np.float32),
        np.zeros(f, np.int64),
        np.zeros(65, np.int64),
        np.empty((2, 2), np.float32),
    )
