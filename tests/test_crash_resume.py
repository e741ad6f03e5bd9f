"""Crash safety: `passage capture` killed with SIGKILL at random moments, then resumed, ends
with exactly the data of an uninterrupted run; training-style runs accept continued epochs."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import dead_pid
from helpers_reliability import (
    assert_same_data,
    child_env,
    manifest_keys,
    manifest_lines,
    run_passage,
    start_passage,
    temporaries,
    wait_for,
)

from pipeline.store import RunWriter, open_run
from pipeline.store.lock import LOCK
from pipeline.store.verify import check_run

# 1000 patterns in batches of 4 through the six layers of `builtin:seed` (`--select all`):
# 1500 data files, long enough for several kills in the middle of writing.
CAPTURE = ["--patterns", "random:1000:7", "--batch-size", "4", "--select", "all"]
CAPTURE += ["--no-architecture"]
TOTAL_FILES = 250 * 6


def _stat_listed(run_dir: Path) -> dict[str, tuple[int, int]]:
    if not (run_dir / "run.json").exists():
        return {}
    run = open_run(run_dir)
    out = {}
    for e in run.entries:
        st = (run_dir / e.path).stat()
        out[e.path] = (st.st_ino, st.st_mtime_ns)
    return out


def _assert_consistent(run_dir: Path) -> None:
    """What a killed run leaves: every manifest line names a complete file, checksum right."""
    if not (run_dir / "run.json").exists():  # killed before run.json: only the lock, temporaries
        assert all(p.name == LOCK or ".tmp" in p.name for p in run_dir.iterdir())
        return
    run = open_run(run_dir)
    report = check_run(run)
    assert report.missing == []
    assert report.corrupt == []
    # A kill in the middle of an append could only leave the last line cut (one small write).
    assert run.bad_manifest_lines in ([], [len(run.entries) + 1])
    # Orphans are temporaries, or files renamed into place whose manifest line was not yet
    # appended (the writer threads rename files, then append their lines in order). A file is
    # renamed only once complete, so every such orphan reads back whole.
    for orphan in report.orphans:
        rel = orphan.split(" (")[0]
        if ".tmp" in rel:
            continue
        layer_dir = rel.split("/")[2]
        rec = next(r for r in run.layer_records if r.dir == layer_dir)
        arr = np.load(run_dir / rel, allow_pickle=False)
        assert arr.shape[1:] == tuple(rec.shape) and 1 <= arr.shape[0] <= 4, orphan


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_equals_uninterrupted_run(tmp_path: Path) -> None:
    ref = tmp_path / "ref"
    done = run_passage("-q", "capture", *CAPTURE, "--out", str(ref))
    assert done.returncode == 0, done.stderr
    assert manifest_lines(ref) == TOTAL_FILES

    seed = int.from_bytes(os.urandom(2), "little")
    rng = random.Random(seed)
    thresholds = sorted(rng.sample(range(1, TOTAL_FILES - 100), 2))
    run = tmp_path / "killed"
    before_kill: dict[str, tuple[int, int]] = {}
    kills = 0
    # First kill: as soon as the writer holds the lock (before or while the first files land).
    for moment in [0, *thresholds]:
        stale = (run / LOCK).exists() and (run / LOCK).read_text().strip() != ""
        proc = start_passage("-q", "capture", *CAPTURE, "--out", str(run))
        if moment == 0:
            reached = wait_for(lambda: (run / LOCK).exists(), proc)
        else:
            reached = wait_for(lambda m=moment: manifest_lines(run) >= m, proc)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(30)
        stderr = proc.stderr.read() if proc.stderr else ""
        assert reached, f"seed {seed}: capture ended before moment {moment}: {stderr}"
        if stale:  # the killed writer's lock (unless it died before writing its pid)
            assert "taking over a stale lock of dead process" in stderr, f"seed {seed}: {stderr}"
        _assert_consistent(run)
        now = _stat_listed(run)
        # Files completed before an earlier kill were not written again.
        for path, ident in before_kill.items():
            assert now[path] == ident, f"seed {seed}: {path} was rewritten"
        before_kill = now
    assert kills >= 3, f"seed {seed}: the capture finished before it could be killed"
    assert (run / LOCK).exists()  # left by the killed process

    stale = (run / LOCK).read_text().strip() != ""
    final = run_passage("-q", "capture", *CAPTURE, "--out", str(run))
    assert final.returncode == 0, final.stderr
    assert ("taking over a stale lock of dead process" in final.stderr) == stale
    assert_same_data(ref, run)
    assert temporaries(run) == []
    assert not (run / LOCK).exists()
    assert check_run(open_run(run)).ok
    after = _stat_listed(run)
    for path, ident in before_kill.items():
        assert after[path] == ident, f"seed {seed}: {path} was rewritten by the resume"


# -- training mode: the store accepts continued epochs after a killed process --------------------

TRAIN_INFO = {
    "mode": "train",
    "model": "builtin:seed",
    "model_name": "seed",
    "fingerprint": "train-resume-test",
    "num_patterns": 6,
    "layers": [
        {"index": 1, "name": "dense", "class": "Dense", "shape": [50, 75], "dir": "001-dense"},
        {"index": 2, "name": "my_dense", "class": "Dense", "shape": [50, 50], "dir": "002-my"},
    ],
}


def epoch_data(epoch: int, layer: str) -> np.ndarray:
    rng = np.random.default_rng(epoch * 100 + len(layer))
    shape = (6, 50, 75) if layer == "dense" else (6, 50, 50)
    return rng.standard_normal(shape).astype(np.float32)


def write_epoch(writer: RunWriter, epoch: int) -> None:
    for layer in ("dense", "my_dense"):
        writer.write(layer, epoch, 0, epoch_data(epoch, layer)[:4])
        writer.write(layer, epoch, 4, epoch_data(epoch, layer)[4:])
    writer.append_metrics({"epoch": epoch, "loss": 1.0 / (epoch + 1)})


CHILD = textwrap.dedent(
    """
    import sys, time, orjson
    sys.path.insert(0, sys.argv[2])
    from pathlib import Path
    from test_crash_resume import TRAIN_INFO, write_epoch
    from pipeline.store import RunWriter
    writer = RunWriter(Path(sys.argv[1]), TRAIN_INFO).open()
    for epoch in range(3):
        write_epoch(writer, epoch)
    print("ready", flush=True)
    time.sleep(600)  # killed here, the lock still held
    """
)


def test_training_run_killed_then_continued_with_later_epochs(tmp_path: Path) -> None:
    run_dir = tmp_path / "train"
    tests_dir = str(Path(__file__).parent)
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(run_dir), tests_dir],
        stdout=subprocess.PIPE,
        text=True,
        env=child_env(),
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    assert (run_dir / LOCK).exists()
    recorded = open_run(run_dir)
    assert recorded.epochs == [0, 1, 2]

    with RunWriter(run_dir, TRAIN_INFO) as writer:  # same fingerprint: resume, stale lock taken
        assert len(writer.done) == 12
        for epoch in (3, 4):
            write_epoch(writer, epoch)
    run = open_run(run_dir)
    assert run.is_training
    assert run.epochs == [0, 1, 2, 3, 4]
    for epoch in range(5):
        for layer in ("dense", "my_dense"):
            got = np.concatenate([a for _, a in run.iter_chunks(layer, epoch)])
            np.testing.assert_array_equal(got, epoch_data(epoch, layer))
            np.testing.assert_array_equal(run.get(layer, 5, epoch), epoch_data(epoch, layer)[5])
    assert [m["epoch"] for m in run.metrics()] == [0, 1, 2, 3, 4]
    assert len(manifest_keys(run_dir)) == 20
    assert check_run(run).ok
    assert not (run_dir / LOCK).exists()


def test_capture_killed_before_run_json_resumes_without_overwrite(tmp_path: Path) -> None:
    """The folder of a writer killed between its lock and run.json holds only the lock and a
    temporary run.json; the next writer treats it as empty (was: refused as a foreign folder)."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / LOCK).write_text(f"{dead_pid()} {socket.gethostname()}\n")
    (run_dir / "run.json.tmp999").write_bytes(b'{"fingerprint": "half')
    with RunWriter(run_dir, TRAIN_INFO) as writer:
        write_epoch(writer, 0)
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "data",
        "manifest.jsonl",
        "metrics.jsonl",
        "run.json",
    ]
    assert open_run(run_dir).epochs == [0]


def test_rerun_rewrites_listed_files_that_are_missing_or_resized(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The repair path that verify and render point to: a rerun captures again what is gone
    or truncated; a same-size corrupt file is rewritten once deleted."""
    from pipeline.cli import main

    args = ["-q", "capture", "--patterns", "random:12:5", "--batch-size", "4", "--select", "all"]
    args += ["--no-architecture"]
    run_dir, ref = tmp_path / "run", tmp_path / "ref"
    assert main([*args, "--out", str(run_dir)]) == 0
    assert main([*args, "--out", str(ref)]) == 0
    entries = open_run(run_dir).entries
    untouched = _stat_listed(run_dir)
    gone, cut, flipped = (run_dir / e.path for e in entries[:3])
    gone.unlink()
    cut.write_bytes(cut.read_bytes()[:-4])
    data = bytearray(flipped.read_bytes())
    data[-1] ^= 0xFF
    flipped.write_bytes(bytes(data))
    capsys.readouterr()

    assert main([*args, "--out", str(run_dir)]) == 0
    assert "2 listed file(s) are missing or have the wrong size" in capsys.readouterr().err
    report = check_run(open_run(run_dir))
    assert report.missing == [] and len(report.corrupt) == 1  # same size: verify's job
    flipped.unlink()
    assert main([*args, "--out", str(run_dir)]) == 0
    assert check_run(open_run(run_dir)).ok
    assert_same_data(ref, run_dir)
    after = _stat_listed(run_dir)
    rewritten = {p for p in untouched if after[p] != untouched[p]}
    assert rewritten == {e.path for e in entries[:3]}
