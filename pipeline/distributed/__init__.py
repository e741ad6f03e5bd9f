"""Capture, render and analyze on a Dask cluster (``--dask ADDRESS`` or ``[dask] address``).

``connect(address)`` yields a ``DaskPool`` (a running scheduler's ``tcp://host:port``, or
``local[:N]`` worker processes started here); ``capture(config, pool)`` runs a batch capture's
batches on its workers, and ``render(..., pool=pool)`` / ``analyze(..., pool=pool)`` draw pages
and reduce pieces there. Workers must see run folders at the same paths as the client (a
shared filesystem). Importing this package imports Dask; nothing else in Passage does.
"""

from .address import Address, parse_address
from .capture import capture
from .cluster import DaskPool, connect

__all__ = ["Address", "DaskPool", "capture", "connect", "parse_address"]
