"""Every mergeable partial result of analyze speaks one vocabulary (pipeline/analysis/partial.py):
fed whole, or fed in two parts of which one is saved, loaded and merged, in either order, it
gives the same result.

The data are small integers in float32, cut into blocks of 8 patterns: every float32 sum the
partial results take is then exact (and so are the exact CKA's shifts, multiples of 1/8), so
the parts can only differ by float64 rounding of the merges (``FLOAT64``), and counts,
extremes, histograms and top K not at all. test_cka.py covers what float32 rounding does to
CKA on data where sums are not exact."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest

from pipeline.analysis import cka
from pipeline.analysis.partial import Chunk, Partial
from pipeline.analysis.reductions import LayerReduction
from pipeline.analysis.topk import TopK

FLOAT64 = 1e-12  # float64 rounding of a few merges of values below 100
N, BLOCK = 48, 8


def _values(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(seed).integers(-8, 9, (N, *shape)).astype(np.float32)


def _layer_chunks() -> list[Chunk]:
    values = _values(1, (2, 3))
    values[17, 1, 2] = np.nan  # one block goes the masked way
    labels = np.arange(N) % 3
    return [
        Chunk(values[a : a + BLOCK], a, labels[a : a + BLOCK], clean=not (a <= 17 < a + BLOCK))
        for a in range(0, N, BLOCK)
    ]


def _topk_chunks() -> list[Chunk]:
    activations = _values(2, (5,)) / 2  # many ties: broken towards the lower pattern index
    return [Chunk(activations[a : a + BLOCK], a) for a in range(0, N, BLOCK)]


def _cka_chunks() -> list[list[np.ndarray]]:
    views = [_values(3, (2, 2)), _values(4, (3,)), _values(5, (1, 2))]
    views[1] += views[0].reshape(N, -1)[:, :3]  # related views: CKA inside (0, 1)
    return [[v[a : a + BLOCK] for v in views] for a in range(0, N, BLOCK)]


KINDS: dict[str, tuple[Callable[[], Any], Callable[[], Sequence[Any]]]] = {
    "LayerReduction": (lambda: LayerReduction((2, 3), -8.0, 8.0, 4, np.arange(3)), _layer_chunks),
    "TopK": (lambda: TopK.empty(5, 6), _topk_chunks),
    "ExactCka": (lambda: cka.ExactCka([4, 3, 2]), _cka_chunks),
    "MinibatchCka": (lambda: cka.MinibatchCka(3, BLOCK), _cka_chunks),
}


def _same(got: Any, want: Any) -> None:
    if isinstance(want, dict):
        assert got.keys() == want.keys()
        for key in want:
            _same(got[key], want[key])
    elif np.asarray(want).dtype.kind == "f":
        np.testing.assert_allclose(got, want, rtol=0, atol=FLOAT64, equal_nan=True)
    else:
        np.testing.assert_array_equal(got, want)


def _saved(partial: Partial, tmp_path, name: str) -> Partial:
    np.savez(tmp_path / f"{name}.npz", **partial.state())
    with np.load(tmp_path / f"{name}.npz", allow_pickle=False) as saved:
        return type(partial).from_state(saved)


@pytest.mark.parametrize("kind", list(KINDS))
def test_parts_merged_in_either_order_equal_the_whole(kind, tmp_path):
    make, chunks = KINDS[kind]
    parts = list(chunks())
    whole = make()
    assert isinstance(whole, Partial)
    for chunk in parts:
        whole.add(chunk)
    want = whole.result()

    for cut in (1, 3, 5):
        left, right = make(), make()
        for chunk in parts[:cut]:
            left.add(chunk)
        for chunk in parts[cut:]:
            right.add(chunk)
        saved_left, saved_right = _saved(left, tmp_path, "left"), _saved(right, tmp_path, "right")
        _same(saved_right.result(), right.result())
        left.merge(saved_right)
        _same(left.result(), want)
        saved_right = _saved(right, tmp_path, "right")
        saved_right.merge(saved_left)
        _same(saved_right.result(), want)


def test_the_results_are_what_the_data_say():
    """The law above holds for the right answers: spot checks against numpy on all the data."""
    make, chunks = KINDS["TopK"]
    top = make()
    for chunk in chunks():
        top.add(chunk)
    activations = np.concatenate([c.values for c in chunks()])
    order = np.lexsort((np.arange(N)[:, None].repeat(5, 1).T, -activations.T), axis=1)[:, :6]
    np.testing.assert_array_equal(top.result()["top_index"], order)

    make, chunks = KINDS["LayerReduction"]
    reduction = make()
    for chunk in chunks():
        reduction.add(chunk)
    values = np.concatenate([c.values for c in chunks()]).astype(np.float64)
    result = reduction.result()
    np.testing.assert_allclose(result["mean"], np.nanmean(values, axis=0), rtol=0, atol=FLOAT64)
    np.testing.assert_allclose(result["std"], np.nanstd(values, axis=0), rtol=0, atol=FLOAT64)
    assert int(result["nonfinite"]) == 1 and result["count"][1, 2] == N - 1

    make, chunks = KINDS["ExactCka"]
    exact = make()
    for chunk in chunks():
        exact.add(chunk)
    views = [np.concatenate([c[i] for c in chunks()]) for i in range(3)]
    want = [[cka.linear_cka(a, b) for b in views] for a in views]
    np.testing.assert_allclose(exact.result(), want, rtol=0, atol=FLOAT64)
    assert 0.1 < exact.result()[0, 1] < 0.99
