"""What ``--dask`` names: a running scheduler, or a cluster on this machine (pure logic)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from ..errors import ConfigError

SCHEMES = ("tcp", "tls", "ws", "wss", "ucx", "inproc")
_HOST_PORT = re.compile(r"^[A-Za-z0-9_.\-\[\]:]+:\d{1,5}$")


@dataclass(frozen=True)
class Address:
    """``url`` of a running scheduler, or (``url`` None) ``workers`` local processes."""

    url: str | None
    workers: int = 0

    @property
    def local(self) -> bool:
        return self.url is None

    def __str__(self) -> str:
        return f"local:{self.workers}" if self.url is None else self.url


def parse_address(text: str) -> Address:
    """``tcp://host:port`` (``host:port`` means tcp), or ``local[:N]``: N worker processes
    started here (default one per core)."""
    value = text.strip()
    hint = (
        "expected tcp://HOST:PORT of a running Dask scheduler (`dask scheduler` prints it) or "
        "local[:N] for N worker processes on this machine"
    )
    if value == "local" or value.startswith("local:"):
        count = value.partition(":")[2]
        if not count:
            return Address(None, os.cpu_count() or 1)
        if not count.isdigit() or int(count) < 1:
            raise ConfigError(
                f"dask address: {hint}; received {text!r} (N must be a whole number >= 1)"
            )
        return Address(None, int(count))
    scheme, sep, rest = value.partition("://")
    if not sep:
        scheme, rest = "tcp", value
    if scheme not in SCHEMES or not rest or (scheme != "inproc" and not _HOST_PORT.match(rest)):
        raise ConfigError(f"dask address: {hint}; received {text!r}")
    return Address(f"{scheme}://{rest}")
