"""Capture, render and analyze on a real Dask cluster (a `dask scheduler` and two `dask
worker` processes on 127.0.0.1), compared with the same work done here: data files and
manifest byte for byte, pages byte for byte, analysis arrays. Faults are real: a worker,
the client and the scheduler are SIGKILLed in the middle of a capture."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from dask_helpers import cluster, env

from pipeline import cli
from pipeline import config as cfgmod

# A model whose batches take a while (two wide Dense layers) but whose captured output is
# small ("narrow" only): a capture long enough to be interrupted in its middle.
SLOW_MODEL = """
import keras

def build():
    init = keras.initializers.GlorotUniform
    x = inputs = keras.Input((64, 64), name="x")
    x = keras.layers.Dense(768, activation="relu", name="wide", kernel_initializer=init(1))(x)
    x = keras.layers.Dense(768, activation="relu", name="wide2", kernel_initializer=init(2))(x)
    x = keras.layers.Dense(16, name="narrow", kernel_initializer=init(3))(x)
    return keras.Model(inputs, x, name="slow")
"""

SLOW_TOML = """
[capture]
model = "slow.py:build"
patterns = "random:4800:5"
out = "{out}"
batch_size = 32
architecture = false

[select]
include = ["narrow"]

[dask]
batches_per_task = 2
"""


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    with cluster(tmp_path_factory.mktemp("dask")) as running:
        yield running


@pytest.fixture(scope="module")
def slow_dir(tmp_path_factory):
    """A folder with the slow model and a reference run of it captured here (no Dask)."""
    folder = tmp_path_factory.mktemp("slow")
    (folder / "slow.py").write_text(SLOW_MODEL)
    for name in ("reference", "worker-kill", "client-kill", "scheduler-kill"):
        (folder / f"{name}.toml").write_text(SLOW_TOML.format(out=name))
    _passage(["capture", "--config", "reference.toml"], folder)
    return folder


def _passage(args: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline", "-q", *args],
        cwd=cwd,
        env=env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", "-q", *args],
        cwd=cwd,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def assert_same_run(a: Path, b: Path) -> None:
    """Same data files byte for byte, and the same manifest (line order included)."""
    assert (a / "manifest.jsonl").read_bytes() == (b / "manifest.jsonl").read_bytes()
    data_a, data_b = _tree(a / "data"), _tree(b / "data")
    assert data_a.keys() == data_b.keys()
    assert data_a == data_b


def _manifest_lines(run: Path) -> int:
    try:
        return len((run / "manifest.jsonl").read_bytes().splitlines())
    except FileNotFoundError:
        return 0


def _capture_started(name: str, address: str, folder: Path, lines: int):
    """`passage capture --config NAME.toml --dask ADDRESS` running in ``folder``, once its
    run holds ``lines`` manifest lines: (run folder, process)."""
    proc = _start(["capture", "--config", f"{name}.toml", "--dask", address], folder)
    try:
        _wait_lines(folder / name, proc, lines)
    except BaseException:
        proc.kill()
        proc.communicate()
        raise
    return folder / name, proc


def _wait_lines(run: Path, proc: subprocess.Popen, lines: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while _manifest_lines(run) < lines:
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "the capture wrote too few manifest lines"
        time.sleep(0.05)


def _config(tmp_path: Path, out: str, **capture) -> cfgmod.Config:
    return cfgmod.from_dict(
        {
            "capture": {"out": str(tmp_path / out), "architecture": False, **capture},
            "dask": {"batches_per_task": 1},
        }
    )


def test_capture_render_analyze_on_the_cluster_equal_local(dask_cluster, tmp_path, monkeypatch):
    from pipeline import analyze, open_run, render
    from pipeline.capturing.stream import capture
    from pipeline.distributed import capture as capture_on
    from pipeline.distributed import connect
    from pipeline.distributed.worker import builds

    monkeypatch.chdir(tmp_path)  # relative specs: the workers' working folder is another
    rng = np.random.default_rng(0)
    np.save("patterns.npy", rng.normal(size=(600, 50, 50)).astype(np.float32))
    spec = {"patterns": "patterns.npy", "batch_size": 64, "keep_inputs": True}
    local = capture(_config(tmp_path, "local", **spec), quiet=True)
    with connect(dask_cluster.address) as pool:
        before = sum(pool.client.run(builds).values())
        run = capture_on(_config(tmp_path, "cluster", **spec), pool, quiet=True)
        built = sum(pool.client.run(builds).values()) - before
        assert_same_run(local.path, run.path)
        assert 1 <= built <= 2  # once per worker, not once per task (10 tasks)
        assert run.num_patterns == 600 and run.inputs == ["input"]

        # Render: the same pages, byte for byte.
        render(local, tmp_path / "pages-here", quiet=True, workers=1)
        report = render(run, tmp_path / "pages-cluster", quiet=True, pool=pool)
        assert report.pages > 0 and not report.problems
        here, there = _tree(tmp_path / "pages-here"), _tree(tmp_path / "pages-cluster")
        assert len(here) > 10 and here.keys() == there.keys()
        assert here == there

        # Analyze: the pieces reduced on the workers give the local arrays.
        analyze(local, quiet=True, pictures=False, workers=1)
        result = analyze(run, quiet=True, pictures=False, pool=pool)
        assert result.pieces >= 3
    ran = open_run(run.path)
    for layer in ran.layers:
        mine, theirs = local.analysis(layer), ran.analysis(layer)
        assert mine.keys() == theirs.keys()
        for key in mine:
            np.testing.assert_allclose(theirs[key], mine[key], rtol=1e-6, equal_nan=True)
    assert ran.cka().layers == local.cka().layers
    np.testing.assert_allclose(ran.cka().matrix, local.cka().matrix, rtol=1e-6)


def test_a_worker_killed_mid_capture_is_retried(dask_cluster, slow_dir):
    run, proc = _capture_started("worker-kill", dask_cluster.address, slow_dir, 4)
    try:
        with dask_cluster.client() as client:
            pids = client.run(os.getpid)
            deadline = time.monotonic() + 60
            busy = []
            while not busy and time.monotonic() < deadline:
                busy = [
                    worker
                    for worker, keys in client.processing().items()
                    if any(str(key).startswith("capture_task") for key in keys)
                ]
                time.sleep(0.02)
        assert busy, "no worker was running a capture task"
        os.kill(pids[busy[0]], signal.SIGKILL)  # the worker process, mid-task
        _, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert_same_run(slow_dir / "reference", run)
    with dask_cluster.client() as client:  # its nanny started a new worker
        client.wait_for_workers(2, timeout=60)
        assert pids[busy[0]] not in client.run(os.getpid).values()


def test_a_client_killed_mid_capture_leaves_a_run_a_rerun_resumes(dask_cluster, slow_dir):
    from pipeline import open_run

    run, proc = _capture_started("client-kill", dask_cluster.address, slow_dir, 6)
    try:
        owner = (run / ".lock").read_text().split()
        assert int(owner[0]) == proc.pid  # the lock names the client
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
        proc.communicate()
    kept = _manifest_lines(run)
    assert 0 < kept < _manifest_lines(slow_dir / "reference")
    assert open_run(run).num_patterns == 4800  # valid as it stands: whole files only
    resumed = _passage(
        ["-v", "capture", "--config", "client-kill.toml", "--dask", dask_cluster.address], slow_dir
    )
    assert f"{kept} file(s) already complete" in resumed.stderr
    assert_same_run(slow_dir / "reference", run)


def test_a_lost_scheduler_is_one_line_and_a_local_rerun_resumes(slow_dir, tmp_path):
    with cluster(tmp_path / "lost", workers=1) as running:
        run, proc = _capture_started("scheduler-kill", running.address, slow_dir, 4)
        try:
            os.kill(running.scheduler.pid, signal.SIGKILL)
            _, err = proc.communicate(timeout=120)
        finally:
            proc.kill()
    assert proc.returncode == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("passage: error: lost the Dask scheduler at ")
    assert "rerun the same command" in lines[0]
    # Whole files only: none listed is missing or damaged (files the worker finished after
    # the scheduler went are orphans, unlisted, written again by the rerun).
    assert "0 missing, 0 corrupt" in _passage(["verify", "scheduler-kill"], slow_dir, False).stdout
    _passage(["capture", "--config", "scheduler-kill.toml"], slow_dir)  # here, no Dask
    assert_same_run(slow_dir / "reference", run)


def test_render_on_a_local_cluster_from_the_command_line(tmp_path):
    from pipeline.capturing.stream import capture

    run = capture(_config(tmp_path, "run", patterns="random:40:1"), quiet=True).path
    _passage(["render", str(run), "--out", "here", "--workers", "1"], tmp_path)
    _passage(["render", str(run), "--out", "there", "--dask", "local:2"], tmp_path)
    here, there = _tree(tmp_path / "here"), _tree(tmp_path / "there")
    assert len(here) >= 40 and here == there


@pytest.mark.parametrize("command", ["capture", "render", "analyze"])
def test_an_unreachable_scheduler_is_one_line(command, tmp_path, capsys):
    toml = tmp_path / "c.toml"
    toml.write_text(f'[capture]\nout = "{tmp_path / "run"}"\n[dask]\ntimeout = 1\n')
    code = cli.main([command, "--config", str(toml), "--dask", "tcp://127.0.0.1:9"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith(
        "passage: error: cannot reach a Dask scheduler at tcp://127.0.0.1:9 within 1 s"
    ), err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("address", "fragment"),
    [("bogus://x", "expected tcp://HOST:PORT"), ("local:0", "N must be a whole number")],
)
def test_a_malformed_address_is_one_line(address, fragment, tmp_path, capsys):
    code = cli.main(["capture", "--out", str(tmp_path / "r"), "--dask", address])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and fragment in err[0], err


def test_what_the_workers_cannot_run_is_refused_before_connecting(tmp_path, capsys):
    gen = ["capture", "--patterns", "mymodule:patterns", "--out", str(tmp_path / "g")]
    assert cli.main([*gen, "--dask", "tcp://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert "come from a generator" in err and "np.save" in err and "cannot reach" not in err
    toml = tmp_path / "t.toml"
    toml.write_text('[train]\ndataset = "builtin:stripes"\n[dask]\naddress = "tcp://127.0.0.1:9"\n')
    assert cli.main(["capture", "--config", str(toml)]) == 2
    assert "training runs stay on one machine" in capsys.readouterr().err


def test_in_memory_patterns_are_refused(seed_model, tmp_path):
    from pipeline.capturing.stream import capture_model
    from pipeline.distributed.capture import DaskRunner
    from pipeline.errors import ConfigError

    x = np.zeros((4, 50, 50), np.float32)
    with pytest.raises(ConfigError, match="in-memory models and patterns cannot reach"):
        capture_model(seed_model, _config(tmp_path, "m"), patterns=[x], runner=DaskRunner(None))


UNSEEDED_MODEL = """
import keras

def build():
    x = inputs = keras.Input((50, 50), name="x")
    x = keras.layers.Dense(20, name="d")(x)  # no seed: other weights in every process
    return keras.Model(inputs, x, name="unseeded")
"""


def test_a_factory_building_other_weights_on_a_worker_is_refused(dask_cluster, tmp_path):
    from pipeline.distributed import capture as capture_on
    from pipeline.distributed import connect
    from pipeline.errors import SpecError

    (tmp_path / "unseeded.py").write_text(UNSEEDED_MODEL)
    cfg = _config(
        tmp_path, "u", model=f"{tmp_path}/unseeded.py:build", patterns="random:8", batch_size=4
    )
    with connect(dask_cluster.address) as pool:
        with pytest.raises(SpecError, match=r"other weights than on the client.*\.keras"):
            capture_on(cfg, pool, quiet=True)
        assert _manifest_lines(tmp_path / "u") == 0


def test_cluster_errors_are_one_line(dask_cluster, tmp_path):
    from distributed.scheduler import KilledWorker

    from pipeline.distributed import connect
    from pipeline.errors import DistributedError

    with connect(dask_cluster.address) as pool:
        error = pool.failed(
            KilledWorker("capture_task-1", SimpleNamespace(address="tcp://127.0.0.1:1"), 3)
        )
        assert isinstance(error, DistributedError)
        assert "KilledWorker" in str(error) and "\n" not in str(error)
        plain = ValueError("a bug")
        assert pool.failed(plain) is plain  # not the cluster's: raised as it is
    with cluster(tmp_path / "empty", workers=0) as empty:  # a scheduler without workers
        with pytest.raises(DistributedError, match="has no workers after 1 s.*dask worker"):
            with connect(empty.address, timeout=1):
                pass
