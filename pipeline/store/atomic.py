"""Writing into the run safely: one error for a write the disk refuses (``disk_error``), and
whole files under a temporary name, then renamed (``atomic_write_bytes``), so that a reader
never sees half a file and a rerun knows what to clean up (``TMP_MARK``)."""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

from ..errors import DiskFullError, StoreError

# Full disk, quota, file-size limit (RLIMIT_FSIZE), read-only or forbidden folder.
_DISK_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM}
TMP_MARK = ".tmp"


def disk_error(exc: OSError, what: Path | str) -> StoreError:
    """Map an OSError from a write to our error; full/read-only disks get their own class."""
    reason = exc.strerror or str(exc)
    if exc.errno in _DISK_ERRORS:
        return DiskFullError(
            f"cannot write {what}: {reason}; the run stays consistent: free space (or make the "
            "folder writable) and rerun the same command to resume"
        )
    return StoreError(f"cannot write {what}: {reason}")


def temporary(path: Path) -> Path:
    """The name ``path`` is written under until its rename (this process's ``TMP_MARK``)."""
    return path.with_name(path.name + f"{TMP_MARK}{os.getpid()}")


def remove_temporary(tmp: Path) -> None:
    """Remove a temporary after a failed write, if there is one (its folder may be gone)."""
    with contextlib.suppress(OSError):
        tmp.unlink()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    tmp = temporary(path)
    try:
        with tmp.open("wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        remove_temporary(tmp)
        raise disk_error(exc, path) from exc
