"""Capture runs Keras on TensorFlow whatever ``KERAS_BACKEND`` says: the command line sets the
backend before Keras loads (one notice); a process whose Keras already runs on another backend
gets one line that says why (the CLI: exit 2; ``CaptureCallback``: ``ConfigError``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from externals import need_keras

from pipeline import open_run
from pipeline.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
NOTICE = "passage: KERAS_BACKEND=jax replaced by tensorflow for this process"
# main() in a child whose environment says jax; afterwards, the backend Keras actually ran on.
CHILD = (
    "import sys; from pipeline.cli import main; rc = main(sys.argv[1:]); import keras; "
    "sys.stderr.write('backend=' + keras.config.backend() + '\\n'); sys.exit(rc)"
)


def test_capture_with_keras_backend_jax_in_the_environment(tmp_path: Path) -> None:
    need_keras()
    # Where jax is not installed (make install brings none), Keras on the jax backend would
    # fail to import; either way the child reports the backend Keras ran on.
    out = tmp_path / "run"
    env = {
        **os.environ,
        "KERAS_BACKEND": "jax",
        "PYTHONPATH": str(ROOT),
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    argv = ["capture", "--model", "builtin:seed", "--patterns", "random:3", "--out", str(out)]
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, *argv, "--no-architecture"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert sum(line.startswith(NOTICE) for line in lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "fix the model" not in proc.stderr
    assert "backend=tensorflow" in lines
    run = open_run(out)
    assert run.num_patterns == 3 and len(run.layers) == 3  # the seed model's three maps


def test_no_notice_when_the_environment_already_says_tensorflow(tmp_path: Path) -> None:
    need_keras()
    env = {
        **os.environ,
        "KERAS_BACKEND": "tensorflow",
        "PYTHONPATH": str(ROOT),
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    argv = ["layers", "builtin:seed"]
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, *argv], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    assert "KERAS_BACKEND" not in proc.stderr and "backend=tensorflow" in proc.stderr


@pytest.fixture
def keras_on_another_backend(monkeypatch):
    """Keras in this process reporting the jax backend. A second real backend cannot run here
    (jax's absence is what the subprocess test above relies on, and TensorFlow imports jax
    whenever it is installed), so Keras' own report of its backend is what is changed."""
    keras = need_keras()
    import pipeline.capturing.training.callback  # noqa: F401 - loads on TensorFlow first

    monkeypatch.setattr(keras.config, "backend", lambda: "jax")
    return keras


def test_capture_callback_refuses_another_backend(tmp_path: Path, keras_on_another_backend):
    from pipeline import CaptureCallback

    with pytest.raises(ConfigError) as caught:
        CaptureCallback(tmp_path / "run", np.zeros((2, 4), np.float32))
    text = str(caught.value)
    assert "\n" not in text
    assert text.startswith("CaptureCallback needs Keras on the TensorFlow backend")
    assert "runs on 'jax'" in text and "KERAS_BACKEND=tensorflow" in text
    assert not (tmp_path / "run").exists()


def test_cli_refuses_when_keras_already_runs_elsewhere(tmp_path, capsys, keras_on_another_backend):
    from pipeline.cli import main

    out = tmp_path / "run"
    argv = ["capture", "--model", "builtin:seed", "--patterns", "random:2", "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("passage: error: "), err
    assert "runs on 'jax'" in err[0] and "KERAS_BACKEND=tensorflow" in err[0]
    assert not out.exists()
