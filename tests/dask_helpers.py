"""A real Dask cluster for the tests: a `dask scheduler` and `dask worker` processes on
127.0.0.1, started as subprocesses (workers under their nanny, as on a real cluster) and
stopped, process group and all, when the test is done."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def env() -> dict[str, str]:
    """The environment of a subprocess that imports this checkout's `pipeline`."""
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }


@dataclass
class Cluster:
    address: str
    folder: Path
    scheduler: subprocess.Popen
    workers: list[subprocess.Popen] = field(default_factory=list)

    def client(self):
        from distributed import Client

        return Client(self.address, timeout=30)

    def worker_pids(self) -> dict[str, int]:
        """Worker address -> pid of its worker process (not its nanny)."""
        with self.client() as client:
            return client.run(os.getpid)


def _spawn(args: list[str], log: Path) -> subprocess.Popen:
    out = log.open("wb")
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "dask", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env(),
            cwd=log.parent,
            start_new_session=True,  # its own process group: stopped whole at the end
        )
    finally:
        out.close()


def _stop(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # the nanny's worker process too
    proc.wait(timeout=15)


@contextlib.contextmanager
def cluster(folder: Path, workers: int = 2, timeout: float = 60.0) -> Iterator[Cluster]:
    """A scheduler and ``workers`` one-thread workers on 127.0.0.1, ready to take tasks."""
    folder.mkdir(parents=True, exist_ok=True)
    info = folder / "scheduler.json"
    sched = _spawn(
        [
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--no-dashboard",
            "--scheduler-file",
            str(info),
        ],
        folder / "scheduler.log",
    )
    running = Cluster("", folder, sched)
    try:
        deadline = time.monotonic() + timeout
        while not info.exists() or not info.read_text().strip():
            if sched.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((folder / "scheduler.log").read_text())
            time.sleep(0.1)
        running.address = json.loads(info.read_text())["address"]
        for i in range(workers):
            running.workers.append(
                _spawn(
                    [
                        "worker",
                        running.address,
                        "--nthreads",
                        "1",
                        "--no-dashboard",
                        "--local-directory",
                        str(folder / f"w{i}"),
                        "--name",
                        f"w{i}",
                    ],
                    folder / f"worker{i}.log",
                )
            )
        if workers:
            with running.client() as client:
                client.wait_for_workers(workers, timeout=timeout)
        yield running
    finally:
        for proc in [*running.workers, sched]:
            _stop(proc)
