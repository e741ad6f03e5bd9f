"""One writer at a time (a live process holds the lock; a dead one's lock is taken over), and a
full or read-only disk: one clear line, a consistent store, and a rerun that resumes."""

from __future__ import annotations

import errno
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import dead_pid
from externals import missing
from helpers_reliability import (
    ROOT,
    assert_same_data,
    child_env,
    error_lines,
    passage_cmd,
    temporaries,
)

from pipeline.cli import main
from pipeline.errors import DiskFullError, RunLockedError
from pipeline.store import MANIFEST, RunWriter, open_run
from pipeline.store.lock import LOCK
from pipeline.store.verify import check_run

INFO = {"mode": "batch", "fingerprint": "lock-test", "num_patterns": 1, "layers": []}
SMALL = ["--patterns", "random:40:3", "--batch-size", "4", "--select", "all"]
SMALL += ["--no-architecture"]

HOLDER = textwrap.dedent(
    """
    import sys, time
    from pipeline.store import RunWriter
    writer = RunWriter(sys.argv[1], {"fingerprint": "holder", "layers": []}).open()
    print("locked", flush=True)
    time.sleep(600)
    """
)


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen]]:
    """A live child process that owns RUN's lock."""
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(run)], stdout=subprocess.PIPE, text=True, env=child_env()
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        yield run, proc
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)


def test_second_capture_into_a_run_being_written_refuses(
    holder: tuple[Path, subprocess.Popen], capsys: pytest.CaptureFixture[str]
) -> None:
    run, proc = holder
    before = sorted(p.name for p in run.iterdir())
    code = main(["-q", "capture", *SMALL, "--out", str(run)])
    assert code == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1, err
    assert f"is being written by process {proc.pid}" in err[0]
    assert "wait for it to finish" in err[0]
    assert sorted(p.name for p in run.iterdir()) == before  # nothing touched
    assert (run / LOCK).read_text().split()[0] == str(proc.pid)  # the owner keeps its lock


def test_stale_lock_of_a_dead_process_is_taken_over_with_a_log_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    pid = dead_pid()
    (run / LOCK).write_text(f"{pid} {socket.gethostname()}\n")
    assert main(["capture", *SMALL, "--out", str(run)]) == 0
    err = capsys.readouterr().err
    assert f"taking over a stale lock of dead process {pid}" in err
    assert not (run / LOCK).exists()
    assert check_run(open_run(run)).ok


@pytest.mark.parametrize("content", ["", "garbage"])
def test_unreadable_lock_is_taken_over(
    tmp_path: Path, content: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An empty lock (its writer died before writing its pid) or a garbled one, not held."""
    (tmp_path / LOCK).write_text(content)
    with RunWriter(tmp_path, INFO):
        assert (tmp_path / LOCK).read_text().split()[0] == str(os.getpid())
    assert ("taking over an unreadable lock file" in caplog.text) == bool(content)
    assert not (tmp_path / LOCK).exists()


def test_lock_held_in_this_process_refuses_a_second_writer(tmp_path: Path) -> None:
    with RunWriter(tmp_path, INFO):
        with pytest.raises(RunLockedError, match=f"process {os.getpid()} on "):
            RunWriter(tmp_path, INFO).open()
    with RunWriter(tmp_path, INFO):  # released: free again
        pass


def test_lock_of_another_host_is_not_taken_over(tmp_path: Path) -> None:
    (tmp_path / LOCK).write_text("1 some-other-host\n")
    with pytest.raises(RunLockedError, match="process 1 on some-other-host"):
        RunWriter(tmp_path, INFO).open()


# -- full disk and read-only folder -------------------------------------------------------------


def _mount(target: Path, options: str) -> bool:
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], capture_output=True
    )
    return done.returncode == 0


IN_NAMESPACE = "PASSAGE_TEST_IN_USERNS"  # set in the child pytest run under `unshare -rm`


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path | None]:
    """A real 1 MiB tmpfs: mounted here where this process may (root, CAP_SYS_ADMIN), else None
    (the test then runs itself again in a user+mount namespace, ``unshare -rm``)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if not _mount(mnt, "size=1m,mode=0755"):
        if os.environ.get(IN_NAMESPACE):
            pytest.fail("cannot mount a tmpfs even inside `unshare -rm`")
        yield None
        return
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _again_in_a_user_namespace(nodeid: str, tmp: Path) -> None:
    """Run test ``nodeid`` in a child pytest as root of a new user+mount namespace, where it may
    mount its tmpfs; the child's failure is this test's failure."""
    unshare = shutil.which("unshare")
    if unshare is None or subprocess.run([unshare, "-rm", "true"]).returncode != 0:
        missing(
            "cannot mount a tmpfs: not root, and no user namespaces for `unshare -rm` "
            "(apt-get install util-linux; sysctl kernel.unprivileged_userns_clone=1)"
        )
    done = subprocess.run(
        [unshare, "-rm", sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        + ["--basetemp", str(tmp / "in-namespace"), nodeid],
        cwd=ROOT,
        env=dict(child_env(), **{IN_NAMESPACE: "1"}),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "1 passed" in done.stdout, done.stdout[-2000:]


def _remount(mnt: Path, options: str) -> None:
    # only the options given: the mount's recorded uid= cannot be mapped in a user namespace
    cmd = ["mount", "--options-mode", "ignore", "-o", f"remount,{options}", str(mnt)]
    subprocess.run(cmd, check=True)


def _listed(run: Path) -> dict[str, tuple[int, int]]:
    return {
        e.path: ((run / e.path).stat().st_ino, (run / e.path).stat().st_mtime_ns)
        for e in open_run(run).entries
    }


def _assert_consistent_after_failure(run: Path) -> None:
    report = check_run(open_run(run))
    assert report.missing == [] and report.corrupt == []
    # A manifest line cut by the full disk may be left at the end, and only there.
    assert open_run(run).bad_manifest_lines in ([], [len(open_run(run).entries) + 1])
    assert temporaries(run) == []
    assert not (run / LOCK).exists()


def test_full_disk_then_read_only_then_resume(
    small_fs: Path | None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> None:
    if small_fs is None:
        _again_in_a_user_namespace(request.node.nodeid, tmp_path)
        return
    run = small_fs / "run"
    # 40 patterns x 6 layers take about 1.4 MB: the 1 MiB file system fills up on the way.
    assert main(["-q", "capture", *SMALL, "--out", str(run)]) == 2
    err = error_lines(capsys.readouterr().err)
    assert len(err) == 1, err
    assert "No space left on device" in err[0]
    assert "rerun the same command to resume" in err[0]
    _assert_consistent_after_failure(run)
    kept = _listed(run)
    assert 0 < len(kept) < 60

    _remount(small_fs, "ro")
    manifest = (run / MANIFEST).read_bytes()
    assert main(["-q", "capture", *SMALL, "--out", str(run)]) == 2
    err = error_lines(capsys.readouterr().err)
    assert len(err) == 1 and "Read-only file system" in err[0], err
    assert (run / MANIFEST).read_bytes() == manifest

    _remount(small_fs, "rw,size=8m")
    assert main(["-q", "capture", *SMALL, "--out", str(run)]) == 0
    ref = tmp_path / "ref"
    assert main(["-q", "capture", *SMALL, "--out", str(ref)]) == 0
    assert_same_data(ref, run)
    assert check_run(open_run(run)).ok
    now = _listed(run)
    assert all(now[p] == ident for p, ident in kept.items())  # nothing written twice


def _capture_fails_at_size_limit(args: list[str], limit: int) -> None:
    """Run ``passage -q ARGS`` in a child whose files may not grow past ``limit`` bytes (a real
    RLIMIT_FSIZE: write(2) fails with EFBIG); expect one error line and exit status 2."""

    def limit_size() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    done = subprocess.run(
        passage_cmd("-q", *args),
        capture_output=True,
        text=True,
        env=child_env(),
        preexec_fn=limit_size,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    err = error_lines(done.stderr)
    assert len(err) == 1 and "File too large" in err[0] and "to resume" in err[0], done.stderr


@pytest.mark.slow
def test_file_size_limit_fails_cleanly_and_the_rerun_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without mount rights: a real RLIMIT_FSIZE makes write(2) fail with EFBIG in the child.

    Data files of this capture are at most 60 KB; the manifest passes the 64 KB limit after
    about 200 lines, so the failure hits in the middle of a manifest append.
    """
    run = tmp_path / "run"
    limit = 64 * 1024
    _capture_fails_at_size_limit(
        ["capture", *SMALL[:1], "random:200:3", *SMALL[2:], "--out", str(run)], limit
    )
    assert (run / MANIFEST).stat().st_size == limit
    _assert_consistent_after_failure(run)
    assert open_run(run).bad_manifest_lines != []  # the cut line is there, and reported
    kept = _listed(run)

    args = ["-q", "capture", *SMALL[:1], "random:200:3", *SMALL[2:]]
    assert main([*args, "--out", str(run)]) == 0
    assert "dropping 1 malformed manifest line(s)" in capsys.readouterr().err
    ref = tmp_path / "ref"
    assert main([*args, "--out", str(ref)]) == 0
    assert_same_data(ref, run)
    assert check_run(open_run(run)).ok
    assert all(_listed(run)[p] == ident for p, ident in kept.items())


@pytest.mark.slow
def test_size_limit_in_a_direct_write_fails_cleanly_and_the_rerun_resumes(tmp_path: Path) -> None:
    """Data files of 7.7 MB go through direct I/O; a real 3 MiB RLIMIT_FSIZE cuts the first
    one short, the next write gets EFBIG: one line, a consistent store, and a rerun without the
    limit ends equal to an uninterrupted run."""
    run = tmp_path / "run"
    args = ["capture", "--patterns", "random:600:3", "--batch-size", "512", "--no-architecture"]
    _capture_fails_at_size_limit([*args, "--out", str(run)], 3 << 20)
    _assert_consistent_after_failure(run)
    assert main(["-q", *args, "--out", str(run)]) == 0
    ref = tmp_path / "ref"
    assert main(["-q", *args, "--out", str(ref)]) == 0
    assert_same_data(ref, run)
    assert check_run(open_run(run)).ok


def _open_as_unprivileged(run: Path) -> str:
    """RunWriter.open() in a forked child that is not root (root ignores folder permissions);
    returns the child's outcome as text."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            if os.geteuid() == 0:
                os.setgid(65534)
                os.setuid(65534)
            try:
                RunWriter(run, INFO).open()
                result = "opened"
            except Exception as exc:  # noqa: BLE001 - reported to the parent
                result = f"{type(exc).__name__}: {exc}"
            os.write(write_end, result.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as fh:
        text = fh.read().decode()
    os.waitpid(pid, 0)
    return text


def test_read_only_folder_is_one_clear_error() -> None:
    # Outside pytest's private (0700) temporary tree, so the unprivileged child can reach it.
    base = Path(tempfile.mkdtemp(prefix="passage-ro-"))
    try:
        base.chmod(0o755)
        run = base / "run"
        run.mkdir()
        run.chmod(0o555)
        outcome = _open_as_unprivileged(run)
        assert outcome.startswith(f"DiskFullError: cannot write {run / LOCK}: "), outcome
        assert "Permission denied" in outcome and "make the folder writable" in outcome
        assert list(run.iterdir()) == []
    finally:
        (base / "run").chmod(0o755)
        shutil.rmtree(base)


def test_disk_error_mapping_names_the_fix() -> None:
    from pipeline.store.atomic import disk_error

    for code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS):
        err = disk_error(OSError(code, os.strerror(code)), "x")
        assert isinstance(err, DiskFullError)
        assert "rerun the same command to resume" in str(err)
    assert not isinstance(disk_error(OSError(errno.EIO, "I/O error"), "x"), DiskFullError)


RACER = textwrap.dedent(
    """
    import os, sys, time
    from pipeline.errors import RunLockedError
    from pipeline.store.lock import RunLock
    run, go, log = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    while time.time() < go:
        pass
    lock = RunLock(run)
    try:
        lock.acquire()
    except RunLockedError:
        sys.exit(3)
    with open(log, "a") as fh:
        fh.write(f"start {time.monotonic()}\\n")
    time.sleep(0.3)
    with open(log, "a") as fh:
        fh.write(f"end {time.monotonic()}\\n")
    lock.release()
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("stale", [False, True])
def test_writers_started_together_never_share_the_lock(tmp_path: Path, stale: bool) -> None:
    """Processes that start at the same instant (on a free run, or on a dead owner's lock):
    at most one holds the lock at any time."""
    run = tmp_path / "run"
    run.mkdir()
    if stale:
        (run / LOCK).write_text(f"{dead_pid()} {socket.gethostname()}\n")
    log = tmp_path / "log"
    import time

    go = f"{time.time() + 1.0:.6f}"
    procs = [
        subprocess.Popen([sys.executable, "-c", RACER, str(run), go, str(log)], env=child_env())
        for _ in range(4)
    ]
    codes = [p.wait(60) for p in procs]
    assert set(codes) <= {0, 3} and 0 in codes, codes
    events = [line.split() for line in log.read_text().splitlines()]
    holders = 0
    for kind, _ in sorted(events, key=lambda e: float(e[1])):
        holders += 1 if kind == "start" else -1
        assert holders <= 1, "two processes held the lock at once"
