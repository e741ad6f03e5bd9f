"""Shared helpers of the reliability tests: run the real CLI in a child process, compare runs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from pipeline.store import MANIFEST, open_run, read_manifest

ROOT = Path(__file__).resolve().parents[1]


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    env["CUDA_VISIBLE_DEVICES"] = ""
    return env


def passage_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipeline", *args]


def run_passage(*args: str, timeout: float = 120, **kw: object) -> subprocess.CompletedProcess:
    """Run ``passage ARGS`` to completion in a child process."""
    return subprocess.run(
        passage_cmd(*args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=child_env(),
        cwd=ROOT,
        **kw,  # type: ignore[arg-type]
    )


def start_passage(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        passage_cmd(*args),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
        cwd=ROOT,
    )


def manifest_lines(run_dir: Path) -> int:
    try:
        return (run_dir / MANIFEST).read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def wait_for(predicate, proc: subprocess.Popen, timeout: float = 90) -> bool:
    """Poll ``predicate()`` until true; False when ``proc`` ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        if proc.poll() is not None:
            return predicate()
        time.sleep(0.002)
    raise AssertionError(f"condition not reached within {timeout}s")


def error_lines(stderr: str) -> list[str]:
    """The ``passage: error:`` lines of a child's stderr."""
    return [line for line in stderr.splitlines() if line.startswith("passage: error:")]


def manifest_keys(run_dir: Path) -> dict[tuple[object, str, int], str]:
    """(epoch, layer, first) -> checksum, from the manifest (the last line of a key wins)."""
    return {e.key: e.checksum for e in read_manifest(run_dir / MANIFEST).entries}


def assert_same_data(a: Path, b: Path) -> None:
    """Both runs hold the same layers, epochs, chunks and arrays, bit for bit."""
    ra, rb = open_run(a), open_run(b)
    assert ra.layers == rb.layers
    assert ra.epochs == rb.epochs
    assert ra.num_patterns == rb.num_patterns
    assert manifest_keys(a) == manifest_keys(b)
    for epoch in ra.epochs:
        for layer in ra.layers:
            ca = list(ra.iter_chunks(layer, epoch))
            cb = list(rb.iter_chunks(layer, epoch))
            assert [f for f, _ in ca] == [f for f, _ in cb]
            for (_, xa), (_, xb) in zip(ca, cb, strict=True):
                assert xa.dtype == xb.dtype
                np.testing.assert_array_equal(xa, xb)


def temporaries(run_dir: Path) -> list[Path]:
    return [p for p in run_dir.rglob("*") if ".tmp" in p.name]
