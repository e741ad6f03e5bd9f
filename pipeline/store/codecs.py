"""Encode and decode one data file (NPY or JSON).

NPY files are prepared from their header (``npy_header``) by ``prepare.encode``; JSON is one
orjson text that keeps dtype and shape.
"""

from __future__ import annotations

import io
import threading
from pathlib import Path

import numpy as np
import orjson

from ..errors import StoreError
from .crc import crc32


def format_checksum(crc: int) -> str:
    return f"crc32:{crc & 0xFFFFFFFF:08x}"


def npy_header(dtype: np.dtype, shape: tuple[int, ...]) -> bytes:
    """The NPY 1.0 header of a C-ordered array (its length is a multiple of 64)."""
    header = {
        "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
        "fortran_order": False,
        "shape": tuple(shape),
    }
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue()


def encode_json(arr: np.ndarray) -> bytes:
    """JSON text of an array. JSON has no NaN or infinity: orjson writes them as ``null`` (read
    back as NaN), so the flat positions of +inf and -inf are stored beside the data."""
    arr = np.ascontiguousarray(arr)
    payload: dict[str, object] = {"dtype": arr.dtype.name, "shape": list(arr.shape), "data": arr}
    if arr.dtype.kind == "f" and arr.size and not np.isfinite(arr).all():
        flat = arr.reshape(-1)
        payload["posinf"] = np.flatnonzero(np.isposinf(flat))
        payload["neginf"] = np.flatnonzero(np.isneginf(flat))
    return orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)


def decode_json(data: bytes) -> np.ndarray:
    obj = orjson.loads(data)
    dtype = np.dtype(obj["dtype"])
    arr = np.asarray(obj["data"], dtype=dtype).reshape(obj["shape"])
    if "posinf" in obj or "neginf" in obj:
        flat = arr.reshape(-1)
        flat[np.asarray(obj.get("posinf", []), dtype=np.int64)] = np.inf
        flat[np.asarray(obj.get("neginf", []), dtype=np.int64)] = -np.inf
    return arr


FORMATS = ("npy", "json")


# numpy parses an NPY header with ast.literal_eval, which CPython 3.11 cannot run on two
# threads at once (rarely: "SystemError: AST constructor recursion depth mismatch"; the
# viewer's request threads met it). Headers are parsed one at a time; data is read freely.
_HEADER_LOCK = threading.Lock()


def decode_npy(data: bytes) -> np.ndarray:
    """The read-only array of a whole NPY file held in memory (no copy; never unpickles)."""
    buf = io.BytesIO(data)
    with _HEADER_LOCK:
        version = np.lib.format.read_magic(buf)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(buf)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(buf)
    if dtype.hasobject:
        raise ValueError("the array holds Python objects (pickles are never read)")
    count = int(np.prod(shape, dtype=np.int64))
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=buf.tell())
    return arr.reshape(shape, order="F" if fortran else "C")


def read_checked(path: Path, fmt: str) -> tuple[int, int, np.ndarray | None]:
    """(size, crc32, array) of a small data file in ONE read: checked and decoded from the same
    bytes. The array is None when the file does not decode (the checksum says why, first)."""
    with path.open("rb") as fh:
        data = fh.read()
    try:
        arr = decode_npy(data) if fmt == "npy" else decode_json(data)
    except (ValueError, KeyError, TypeError, IndexError, EOFError, orjson.JSONDecodeError):
        arr = None
    return len(data), crc32(data), arr


def read_array(path: Path, fmt: str, mmap: bool = True) -> np.ndarray:
    """Read one data file; NPY is memory-mapped read-only and never unpickles."""
    try:
        if fmt == "npy":
            with _HEADER_LOCK:  # a memory map: the header is all np.load reads
                arr = np.load(path, mmap_mode="r", allow_pickle=False)
            return arr if mmap else np.array(arr)
        with path.open("rb") as fh:
            return decode_json(fh.read())
    except FileNotFoundError:
        raise
    except (ValueError, KeyError, TypeError, IndexError, OSError, orjson.JSONDecodeError) as exc:
        raise StoreError(f"cannot read data file {path}: {exc}") from exc


def file_checksum(path: Path, chunk: int = 1 << 22) -> tuple[int, int]:
    """(size, crc32) of a whole file, read in chunks."""
    crc = 0
    size = 0
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            crc = crc32(block, crc)
            size += len(block)
    return size, crc
