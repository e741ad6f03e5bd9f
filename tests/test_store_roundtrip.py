"""Property tests: any arrays written through RunWriter read back identical through open_run
(shapes incl. empty axes, float16/float32/ints/bool, NaN and +-inf, chunk sizes, npy and json,
layer names of any text)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from pipeline.store import ManifestEntry, RunWriter, open_run
from pipeline.store.manifest import complete_records
from pipeline.store.naming import layer_dir
from pipeline.store.verify import check_run

DTYPES = ["float16", "float32", "float64", "int8", "int32", "int64", "uint8", "uint64", "bool"]


@st.composite
def runs(draw: st.DrawFn) -> tuple[str, str, int, int, list[tuple[str, np.ndarray]]]:
    fmt = draw(st.sampled_from(["npy", "json"]))
    store_dtype = draw(st.sampled_from(["float32", "float16"]))
    n = draw(st.integers(1, 9))
    chunk = draw(st.integers(1, 10))
    names = draw(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=3, unique=True))
    layers = []
    for name in names:
        dtype = np.dtype(draw(st.sampled_from(DTYPES)))
        per = draw(array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
        elements = (
            st.floats(width=dtype.itemsize * 8, allow_nan=True, allow_infinity=True)
            if dtype.kind == "f"
            else None
        )
        layers.append((name, draw(arrays(dtype, (n, *per), elements=elements))))
    return fmt, store_dtype, n, chunk, layers


def expected(arr: np.ndarray, store_dtype: str) -> np.ndarray:
    """What the store keeps: floats in the run's float type, everything else as is."""
    if arr.dtype.kind != "f":
        return arr
    with np.errstate(over="ignore"):
        return arr.astype(store_dtype)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(runs())
def test_any_arrays_round_trip_through_the_store(
    case: tuple[str, str, int, int, list[tuple[str, np.ndarray]]],
) -> None:
    fmt, store_dtype, n, chunk, layers = case
    records = [
        {
            "index": i,
            "name": name,
            "class": "X",
            "shape": list(a.shape[1:]),
            "dir": layer_dir(i, name),
        }
        for i, (name, a) in enumerate(layers)
    ]
    info = {"mode": "batch", "fingerprint": "prop", "num_patterns": n, "layers": records}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "run"
        with RunWriter(root, info, fmt=fmt, dtype=store_dtype) as w:
            for first in range(0, n, chunk):
                for name, arr in layers:
                    w.write(name, None, first, arr[first : first + chunk])
        # Nothing outside RUN/data and the run's own files, whatever the layer names.
        assert {p.name for p in Path(tmp).iterdir()} == {"run"}
        assert {p.name for p in root.iterdir()} <= {"run.json", "manifest.jsonl", "data"}
        run = open_run(root)
        assert run.layers == [name for name, _ in layers]
        assert check_run(run).ok
        for name, arr in layers:
            want = expected(arr, store_dtype)
            chunks = list(run.iter_chunks(name))
            assert [f for f, _ in chunks] == list(range(0, n, chunk))
            got = np.concatenate([a for _, a in chunks])
            assert got.dtype == want.dtype and got.shape == want.shape
            np.testing.assert_array_equal(got, want)  # NaN == NaN here, +-inf kept
            for p in (0, n - 1):
                np.testing.assert_array_equal(run.get(name, p), want[p])
            for e in run.chunks(name):
                part = want[e.first : e.first + e.count]
                bad = int(np.count_nonzero(~np.isfinite(part))) if part.dtype.kind == "f" else 0
                assert e.nonfinite == bad
                finite = part[np.isfinite(part)] if part.dtype.kind == "f" else part
                if finite.size:
                    assert e.min == float(finite.min()) and e.max == float(finite.max())
                else:
                    assert e.min is None and e.max is None


def record(name: str, index: int) -> dict[str, object]:
    return {"index": index, "name": name, "class": "X", "shape": [3], "dir": layer_dir(index, name)}


def test_json_keeps_infinities(tmp_path: Path) -> None:
    """JSON has no inf: orjson writes null. The codec keeps their positions (was: read as NaN)."""
    arr = np.array([[np.inf, -np.inf, np.nan, 1.5]], np.float32)
    info = {"fingerprint": "inf", "num_patterns": 1, "layers": [record("a", 1)]}
    with RunWriter(tmp_path, info, fmt="json") as w:
        entry = w.write("a", None, 0, arr)
    assert entry.nonfinite == 3 and entry.min == entry.max == 1.5
    np.testing.assert_array_equal(open_run(tmp_path).get("a", 0), arr[0])


def test_layer_names_with_separators_stay_inside_the_run(tmp_path: Path) -> None:
    names = ["../../../etc/passwd", "a/b", "/abs", "..", "C:\\x", "\u00e9t\u00e9 \U0001f600"]
    layers = [record(n, i) for i, n in enumerate(names)]
    info = {"fingerprint": "names", "num_patterns": 2, "layers": layers}
    root = tmp_path / "box" / "run"
    with RunWriter(root, info) as w:
        for i, n in enumerate(names):
            w.write(n, None, 0, np.full((2, 3), i, np.float32))
    assert sorted(p.name for p in (tmp_path / "box").iterdir()) == ["run"]
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert all(p.is_relative_to(root) for p in files)
    run = open_run(root)
    for i, n in enumerate(names):
        np.testing.assert_array_equal(run.get(n, 1), np.full(3, i, np.float32))


def test_complete_records_need_every_layer_and_every_pattern() -> None:
    def entry(layer: str, epoch: int | None, first: int, count: int) -> ManifestEntry:
        return ManifestEntry(
            f"{layer}/{epoch}-{first}.npy", layer, epoch, first, count, (2,), "float32",
            0.0, 1.0, 0, 8, "00000000",
        )  # fmt: skip

    entries = [
        *(entry(name, 0, first, n) for name in "ab" for first, n in ((0, 3), (3, 2))),
        entry("a", 1, 0, 3),  # epoch 1: layer a's second batch and all of b missing
        entry("a", 1, 3, 2),
        entry("b", 1, 0, 3),
        entry("a", 1, 0, 3),  # written again: counts once
        *(entry(name, 2, 0, 5) for name in "ab"),  # another batch size: one file each
        entry("a", None, 0, 5),  # batch-mode files are no record
    ]
    assert complete_records(entries, ["a", "b"], 5) == [0, 2]
    assert complete_records(entries, ["a"], 5) == [0, 1, 2]
    assert complete_records([], ["a"], 5) == []


@pytest.mark.parametrize(
    "arr",
    [
        np.arange(24, dtype=np.float32).reshape(2, 3, 4),
        np.asfortranarray(np.arange(12, dtype=np.float64).reshape(3, 4)),
        np.array(3.5, dtype=np.float16),
        np.zeros((0, 5), dtype=np.int32),
        np.array([True, False]),
        np.arange(6, dtype=">i4"),
    ],
)
def test_one_read_decode_equals_numpy_load(tmp_path, arr):
    """A small checked file is decoded from the bytes its checksum was computed on: the same
    array, dtype and memory order as ``np.load``, read-only, and the same size and CRC-32 as
    the streaming checksum."""
    from pipeline.store import codecs

    path = tmp_path / "a.npy"
    np.save(path, arr)
    size, crc, got = codecs.read_checked(path, "npy")
    expected = np.load(path, allow_pickle=False)
    assert (size, crc) == codecs.file_checksum(path)
    assert got is not None and got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)
    assert got.flags.f_contiguous == expected.flags.f_contiguous and not got.flags.writeable


def test_one_read_decode_never_unpickles(tmp_path):
    from pipeline.store import codecs

    path = tmp_path / "o.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert codecs.read_checked(path, "npy")[2] is None
    with pytest.raises(ValueError):
        codecs.decode_npy(path.read_bytes())
