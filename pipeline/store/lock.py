"""One writer at a time: a lock file holding the owner's pid.

Created atomically (O_EXCL). A lock left by a dead process is taken over, with a log line.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

from ..errors import RunLockedError

log = logging.getLogger(__name__)

LOCK = ".lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """Context manager owning ``RUN/.lock`` while a writer works in RUN."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK
        self.held = False

    def acquire(self) -> None:
        host = socket.gethostname()
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self._owner()
                if owner is not None and owner[1] == host and not _alive(owner[0]):
                    log.warning(
                        "taking over a stale lock of dead process %d in %s", owner[0], self.path
                    )
                    self.path.unlink(missing_ok=True)
                    continue
                if owner is None:
                    # Unreadable or half-written lock: its writer died between create and write.
                    log.warning("taking over an unreadable lock file %s", self.path)
                    self.path.unlink(missing_ok=True)
                    continue
                raise RunLockedError(
                    f"run {self.path.parent} is being written by process {owner[0]} on "
                    f"{owner[1]}; wait for it to finish, or remove {self.path} if it is gone"
                ) from None
            except OSError as exc:
                from .writer import disk_error  # the writer imports this module

                raise disk_error(exc, self.path) from exc
            try:
                with os.fdopen(fd, "w") as fh:
                    fh.write(f"{os.getpid()} {host}\n")
            except OSError as exc:  # a full disk can refuse even these few bytes
                from .writer import disk_error

                self.path.unlink(missing_ok=True)
                raise disk_error(exc, self.path) from exc
            self.held = True
            return
        raise RunLockedError(f"could not take the lock {self.path}; another writer keeps it")

    def _owner(self) -> tuple[int, str] | None:
        try:
            pid, host = self.path.read_text().split()
            return int(pid), host
        except (OSError, ValueError):
            return None

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
