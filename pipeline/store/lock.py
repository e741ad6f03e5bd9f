"""One writer at a time: ``RUN/.lock``, held with ``flock`` and holding the owner's pid and host.

The kernel releases a ``flock`` when its process dies, however it dies, so a lock left by a
dead writer is free at once and taken over with a log line; two writers that start at the same
instant cannot both win (the pid-file-only check could: each could see the other's lock as
stale or half-written). The pid in the file is for messages. A file system without ``flock``
falls back to the pid check alone.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import socket
from pathlib import Path

from ..errors import RunLockedError
from .atomic import disk_error

log = logging.getLogger(__name__)

LOCK = ".lock"
_NO_FLOCK = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _parse_owner(text: str) -> tuple[int, str] | None:
    try:
        pid, host = text.split()
        return int(pid), host
    except ValueError:
        return None


class RunLock:
    """Owns ``RUN/.lock`` while a writer works in RUN: ``acquire``, then ``release``."""

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / LOCK
        self.held = False
        self._fd: int | None = None

    def acquire(self) -> None:
        host = socket.gethostname()
        for _ in range(20):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise disk_error(exc, self.path) from exc
            try:
                if not self._try_lock(fd, host):
                    continue  # the file we locked was released and removed meanwhile: retry
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd
            self.held = True
            return
        raise RunLockedError(f"could not take the lock {self.path}; other writers keep taking it")

    def _try_lock(self, fd: int, host: str) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            flocked = True
        except BlockingIOError:
            owner = _parse_owner(os.pread(fd, 200, 0).decode(errors="replace"))
            who = f"process {owner[0]} on {owner[1]}" if owner else "another process"
            raise self._locked(who) from None
        except OSError as exc:
            if exc.errno not in _NO_FLOCK:
                raise
            flocked = False  # no flock on this file system: the pid check below decides
        try:
            if os.fstat(fd).st_ino != os.stat(self.path).st_ino:
                os.close(fd)
                return False
        except FileNotFoundError:
            os.close(fd)
            return False
        text = os.pread(fd, 200, 0).decode(errors="replace")
        owner = _parse_owner(text)
        if owner is not None and owner[1] != host:
            # We cannot tell whether a writer on another machine is alive.
            raise self._locked(f"process {owner[0]} on {owner[1]}")
        if owner is not None and owner[0] != os.getpid():
            if not flocked and _alive(owner[0]):
                raise self._locked(f"process {owner[0]} on {owner[1]}")
            log.warning("taking over a stale lock of dead process %d in %s", owner[0], self.path)
        elif text.strip() and owner is None:
            log.warning("taking over an unreadable lock file %s", self.path)
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {host}\n".encode(), 0)
        except OSError as exc:  # a full disk can refuse even these few bytes
            raise disk_error(exc, self.path) from exc
        return True

    def _locked(self, who: str) -> RunLockedError:
        return RunLockedError(
            f"run {self.path.parent} is being written by {who}; wait for it to finish, or "
            f"remove {self.path} if it is gone"
        )

    def release(self) -> None:
        if self.held and self._fd is not None:
            # Unlink while still holding the flock: a waiter that opened this file sees that
            # it is gone and retries on a fresh one.
            self.path.unlink(missing_ok=True)
            os.close(self._fd)
        self._fd = None
        self.held = False
