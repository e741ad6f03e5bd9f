"""Shared fixtures: seeded tiny models, real files under tmp_path, leak checks."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A test that passed after ``externals.missing_later`` is reported as skipped, with why."""
    outcome = yield
    if call.when != "call":
        return
    from externals import take_deferred

    reasons = take_deferred()
    report = outcome.get_result()
    if reasons and report.passed:
        report.outcome = "skipped"
        line = item.location[1] if item.location[1] is not None else 0
        report.longrepr = (str(item.path), line, "Skipped: " + "; ".join(reasons))


@pytest.fixture(autouse=True)
def no_leaked_threads_or_figures():
    """Fail a test that leaves a Python thread running or a pyplot figure open."""
    before = {t.ident for t in threading.enumerate()}
    yield
    leaked = [
        t
        for t in threading.enumerate()
        if t.ident not in before and t.is_alive() and t.name.startswith("passage")
    ]
    assert not leaked, f"threads left running: {leaked}"
    import sys

    if "matplotlib.pyplot" in sys.modules:
        import matplotlib.pyplot as plt

        assert not plt.get_fignums(), "pyplot figures left open"


@pytest.fixture(scope="session")
def keras():
    from pipeline.capturing.framework import keras_and_tf

    k, _ = keras_and_tf()
    return k


@pytest.fixture(scope="session")
def seed_model(keras):
    from pipeline.capturing.builtin_models import seed_model

    return seed_model()


def layer_output(keras, model, name: str, x: np.ndarray) -> np.ndarray:
    """What Keras itself computes for one layer (an independent sub-model, no Passage code)."""
    sub = keras.Model(model.inputs, model.get_layer(name).output)
    return np.asarray(sub([x], training=False))


@pytest.fixture
def keras_layer_output(keras):
    def compute(model, name, x):
        return layer_output(keras, model, name, x)

    return compute


def dead_pid() -> int:
    """The pid of a process that has exited (for stale-lock tests)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ARG001
    """One closing line: what was skipped and why (what to install to run it)."""
    reasons: dict[str, int] = {}
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        reason = reason.removeprefix("Skipped: ")
        # "<what is missing> (<how to install it>): <what was checked instead>"
        reason = reason.split("): ", 1)[0] + ")" if "): " in reason else reason
        reasons[reason] = reasons.get(reason, 0) + 1
    if reasons:
        total = sum(reasons.values())
        listed = "; ".join(
            f"{n} × {why}" for why, n in sorted(reasons.items(), key=lambda r: -r[1])
        )
        terminalreporter.write_line(f"skipped {total} (pytest -rs for each): {listed}")
