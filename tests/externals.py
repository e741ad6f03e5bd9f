"""What a test needs from outside Python: Graphviz's ``dot``, Chromium (through Playwright),
Keras/TensorFlow, a user+mount namespace.

On a developer's machine a missing one **skips** the test (or the part of it that needs the
program) with a reason that says what to install; ``make test`` lists those skips in one line
at the end. Under ``PASSAGE_TEST_STRICT=1`` (``.ci/run`` sets it, after installing Graphviz and
Chromium) a missing one **fails** instead, so CI runs everything or goes red.
"""

from __future__ import annotations

import os
import shutil

import pytest

from bench.browser import find_chromium, playwright_missing

STRICT_ENV = "PASSAGE_TEST_STRICT"
GRAPHVIZ_HINT = "Graphviz's dot is not on PATH (apt-get install graphviz)"


def strict() -> bool:
    """True where a missing program must fail the test (CI)."""
    return os.environ.get(STRICT_ENV, "") not in ("", "0")


def missing(reason: str) -> None:
    """Skip (or, under PASSAGE_TEST_STRICT, fail) because ``reason`` is missing."""
    if strict():
        pytest.fail(f"{reason} — and {STRICT_ENV} is set, so nothing may be skipped")
    pytest.skip(reason, allow_module_level=True)


_deferred: list[str] = []


def missing_later(reason: str) -> None:
    """The test goes on (checking what it can without the program) and is reported as skipped
    with ``reason`` if it passes; under PASSAGE_TEST_STRICT it fails now."""
    if strict():
        pytest.fail(f"{reason} — and {STRICT_ENV} is set, so nothing may be skipped")
    if reason not in _deferred:
        _deferred.append(reason)


def take_deferred() -> list[str]:
    """The reasons ``missing_later`` collected for the test that just ran (and forget them)."""
    reasons = list(_deferred)
    _deferred.clear()
    return reasons


def have_graphviz() -> bool:
    """Whether Graphviz's ``dot`` runs here; under strict mode its absence fails the test."""
    if shutil.which("dot") is not None:
        return True
    if strict():
        pytest.fail(f"{GRAPHVIZ_HINT} — and {STRICT_ENV} is set")
    return False


def need_graphviz() -> str:
    """``dot``'s path, or skip/fail the test."""
    path = shutil.which("dot")
    if path is None:
        missing(GRAPHVIZ_HINT)
    return path


def need_chromium() -> str:
    """The Chromium binary with Playwright importable, or skip/fail the test."""
    why = playwright_missing()
    if why is not None:
        missing(why)
    return find_chromium()


def need_keras():
    """The ``keras`` module (TensorFlow backend), or skip/fail: a broken install must not turn
    dozens of tests into silent skips in CI."""
    try:
        import keras
    except ImportError as exc:
        missing(f"Keras/TensorFlow cannot be imported ({exc}); make install brings them")
    return keras
