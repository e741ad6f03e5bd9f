"""Neural data for the compare stage: reference RDMs, responses, and the run's conditions.

Readers check everything a neuroscientist's file can get wrong and raise ``NeuralDataError``
with one line saying what was expected, what was received and what to do:

- ``read_rdms``: reference RDMs from ``.npy`` ((N, N), (S, N, N), condensed (K,) or (S, K)),
  MATLAB ``.mat`` (the RSA toolbox's struct array ``RDMs`` with fields ``RDM`` and ``name``,
  or one plain numeric variable; ``file.mat:variable`` picks one) and the HDF5 files
  rsatoolbox's ``RDMs.save(path, file_type="hdf5")`` writes. Condensed vectors are the upper
  triangle, row-major (scipy's ``squareform``, rsatoolbox's ``get_vectors``, the MATLAB
  toolbox's ``vectorizeRDM``). A square RDM must be symmetric and have a zero diagonal to
  within rounding (``sqrt(eps)`` of its largest entry; a NaN diagonal counts as zero), and is
  returned exactly symmetric with an exact zero diagonal. NaN marks a missing pair and is
  kept; Inf is refused.
- ``read_responses``: (N, V) or (R, N, V) arrays from ``.npy``, ``.npz[:key]``,
  ``.mat[:variable]``, ``.h5[:dataset]``; ``responses_rdm`` (in ``neural_distances``) turns
  them into an RDM.
- ``read_conditions``: the run's pattern indices chosen as conditions (a 1-D integer .npy).
- ``check_count``: the one-line refusal when two counts of conditions differ.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import NeuralDataError
from .neural_distances import DISTANCES, responses_rdm
from .neural_files import (
    existing,
    load_h5_array,
    load_mat,
    load_npy,
    load_npz,
    load_rdm_file,
    split_key,
)

__all__ = [
    "DISTANCES",
    "MIN_CONDITIONS",
    "References",
    "Responses",
    "check_count",
    "parse_named",
    "read_conditions",
    "read_rdms",
    "read_responses",
    "responses_rdm",
]

MIN_CONDITIONS = 3  # fewer conditions give at most one pair: nothing to compare
_NAME = re.compile(r"^([A-Za-z0-9_][A-Za-z0-9_.-]*)=(.*)$")


@dataclass(frozen=True)
class References:
    """Reference RDMs of one file: ``matrices`` (S, N, N) float64, one name per RDM."""

    names: list[str]
    matrices: np.ndarray
    source: str
    measure: str | None = None  # the dissimilarity measure the file names (rsatoolbox's)


@dataclass(frozen=True)
class Responses:
    """Responses of one file: ``data`` (R, N, V) float64, R = 1 when the file holds (N, V)."""

    data: np.ndarray
    source: str


def parse_named(text: str) -> tuple[str | None, str]:
    """``"V1=data/v1.mat"`` -> ("V1", "data/v1.mat"); ``"x.npy"`` -> (None, "x.npy").

    A name is letters, digits, ``_``, ``.`` and ``-`` (not starting with ``.`` or ``-``), so a
    path holding ``=`` after a folder (``data/a=b.npy``) stays a path.
    """
    match = _NAME.match(text)
    if match is None or Path(text).exists():
        return None, text
    if not match.group(2):
        raise NeuralDataError(
            f"expected NAME=FILE (e.g. V1=data/v1.mat), received {text!r} with no file after "
            "'='; give the file's path after the name"
        )
    return match.group(1), match.group(2)


def read_rdms(path: str | Path) -> References:
    """Reference RDMs from a .npy, .mat or .h5/.hdf5 file (``file:variable`` picks one)."""
    file, key = split_key(path)
    existing(file, "reference RDMs")
    raw = load_rdm_file(file, key)
    array = _numeric(raw.array, str(path))
    if raw.matlab and array.ndim == 3:
        array = _matlab_stack(array)
    matrices = _as_matrices(array, str(path), stacked=raw.stacked)
    names = raw.names if raw.names is not None else _default_names(file, len(matrices))
    if len(names) != len(matrices):
        raise NeuralDataError(
            f"{path}: expected one name per RDM, received {len(names)} names for "
            f"{len(matrices)} RDMs; save the file again with one name per RDM"
        )
    return References(names=list(names), matrices=matrices, source=str(path), measure=raw.measure)


def read_responses(path: str | Path) -> Responses:
    """Responses (N, V) or (R, N, V) from .npy, .npz[:key], .mat[:variable], .h5[:dataset]."""
    file, key = split_key(path)
    existing(file, "responses")
    suffix = file.suffix.lower()
    if suffix == ".npy":
        array = load_npy(file)
    elif suffix == ".npz":
        array = load_npz(file, key)
    elif suffix == ".mat":
        array = load_mat(file, key)
    elif suffix in (".h5", ".hdf5"):
        array = load_h5_array(file, key)
    else:
        raise NeuralDataError(
            f"{path}: expected responses in a .npy, .npz, .mat, .h5 or .hdf5 file, received a "
            f"{suffix or 'suffix-less'} file; convert it (numpy.save(path, array))"
        )
    array = _numeric(array, str(path))
    if array.ndim not in (2, 3) or array.shape[-2] < MIN_CONDITIONS or array.shape[-1] < 1:
        raise NeuralDataError(
            f"{path}: expected responses of shape (conditions, voxels) or (repeats, "
            f"conditions, voxels) with at least {MIN_CONDITIONS} conditions, received shape "
            f"{array.shape}; save one row per condition (and one block per repeat)"
        )
    bad = int(np.count_nonzero(~np.isfinite(array)))
    if bad:
        raise NeuralDataError(
            f"{path}: expected finite responses, received {bad} NaN or Inf value(s) of "
            f"{array.size}; drop or impute the voxels or conditions they belong to"
        )
    data = array.astype(np.float64)
    return Responses(data=data[None] if data.ndim == 2 else data, source=str(path))


def read_conditions(path: str | Path, num_patterns: int) -> np.ndarray:
    """The run's pattern indices chosen as conditions, in condition order: int64 (N,)."""
    file = existing(Path(path), "--conditions")
    if file.suffix.lower() != ".npy":
        raise NeuralDataError(
            f"{path}: expected the conditions as a .npy file of pattern indices, received a "
            f"{file.suffix or 'suffix-less'} file; save them with numpy.save(path, indices)"
        )
    array = load_npy(file)
    if array.ndim != 1 or array.dtype.kind not in "iu" or array.size == 0:
        received = "an empty array" if array.size == 0 else f"{array.dtype} {array.shape}"
        raise NeuralDataError(
            f"{path}: expected a non-empty 1-D integer array of the run's pattern indices, "
            f"received {received}; save numpy.asarray(indices, dtype=int)"
        )
    indices = array.astype(np.int64)
    outside = indices[(indices < 0) | (indices >= num_patterns)]
    if outside.size:
        raise NeuralDataError(
            f"{path}: expected pattern indices from 0 to {num_patterns - 1} (the run has "
            f"{num_patterns} patterns), received {_few(outside)}; index the run's patterns "
            "from 0"
        )
    values, counts = np.unique(indices, return_counts=True)
    if np.any(counts > 1):
        raise NeuralDataError(
            f"{path}: expected each pattern index once, received repeated indices "
            f"{_few(values[counts > 1])}; list each condition's pattern once"
        )
    return indices


def check_count(what: str, received: int, expected: int, *, against: str = "the run") -> None:
    """Refuse, in one line, ``what`` holding ``received`` conditions where ``expected`` fit.

    ``what`` names the data (``"v1.mat"``, ``"responses r.npy"``); ``against`` names where the
    expected count comes from (``"run runs/seed (its patterns, or --conditions)"``).
    """
    if received == expected:
        return
    raise NeuralDataError(
        f"{what} holds {received} conditions; {against} has {expected}: expected the same "
        "count; give one condition per pattern, in the run's order, or say which of the run's "
        "patterns the conditions are with --conditions FILE.npy (a 1-D array of indices)"
    )


def _numeric(array: np.ndarray, source: str) -> np.ndarray:
    if array.dtype.kind not in "iuf":
        raise NeuralDataError(
            f"{source}: expected an array of real numbers, received dtype {array.dtype}; "
            "convert it to float64 before saving"
        )
    return array


def _matlab_stack(array: np.ndarray) -> np.ndarray:
    """A MATLAB 3-D stack is usually N x N x S; (S, N, N) is taken when the shape says so."""
    a, b, c = array.shape
    moved = np.moveaxis(array, 2, 0)
    if a == b and b != c:
        return moved
    if a == b == c and not _zero_diagonals(array) and _zero_diagonals(moved):
        return moved
    return array


def _zero_diagonals(stack: np.ndarray) -> bool:
    diagonals = np.diagonal(stack, axis1=1, axis2=2)
    return bool(np.all((diagonals == 0) | np.isnan(diagonals)))


def _as_matrices(array: np.ndarray, source: str, stacked: bool = False) -> np.ndarray:
    """(S, N, N) from any accepted layout; ``stacked``: a 2-D array is (S, K) even if square."""
    if array.ndim == 2 and array.shape[1] == 1 and array.shape[0] > 1 and not stacked:
        array = array[:, 0]  # a column vector (K, 1), as MATLAB may store one condensed RDM
    square = array.ndim == 2 and array.shape[0] == array.shape[1] and not stacked
    if array.ndim == 1 or (array.ndim == 2 and not square):
        return _from_condensed(np.atleast_2d(array), source)
    if array.ndim == 2:
        return _checked_squares(array[None], source, hint=_is_triangular(array.shape[1]))
    if array.ndim == 3 and array.shape[1] == array.shape[2]:
        return _checked_squares(array, source, hint=False)
    raise NeuralDataError(
        f"{source}: expected RDMs of shape (N, N), (S, N, N), (K,) or (S, K) with K = "
        f"N(N-1)/2, received shape {array.shape}; save square matrices or condensed vectors"
    )


def _from_condensed(vectors: np.ndarray, source: str) -> np.ndarray:
    k = vectors.shape[1]
    if not _is_triangular(k):
        raise NeuralDataError(
            f"{source}: expected condensed RDMs of K = N(N-1)/2 entries (3, 6, 10, 15, ...), "
            f"received vectors of {k} entries (shape {vectors.shape}); save the upper triangle "
            "of each N x N matrix, row by row (scipy.spatial.distance.squareform)"
        )
    n = _conditions(k)
    _check_conditions(n, source)
    values = vectors.astype(np.float64)
    _check_finite(values, source)
    rows, cols = np.triu_indices(n, 1)
    matrices = np.zeros((len(values), n, n))
    matrices[:, rows, cols] = values
    matrices[:, cols, rows] = values
    return matrices


def _checked_squares(stack: np.ndarray, source: str, hint: bool) -> np.ndarray:
    n = stack.shape[1]
    _check_conditions(n, source)
    eps = np.finfo(stack.dtype if stack.dtype.kind == "f" else np.float64).eps
    matrices = stack.astype(np.float64)
    _check_finite(matrices, source)
    transposed = np.swapaxes(matrices, 1, 2)
    also = (
        " (if the rows are condensed RDMs, save them as square (S, N, N) matrices)" if hint else ""
    )
    for s, (matrix, mirror) in enumerate(zip(matrices, transposed, strict=True)):
        where = f"RDM {s + 1} of {len(matrices)}" if len(matrices) > 1 else "the RDM"
        tolerance = math.sqrt(eps) * max(1.0, float(np.nanmax(np.abs(matrix), initial=0.0)))
        off = ~np.eye(n, dtype=bool)
        nan_mismatch = (np.isnan(matrix) != np.isnan(mirror)) & off
        gap = np.where(off & ~np.isnan(matrix) & ~np.isnan(mirror), np.abs(matrix - mirror), 0)
        if nan_mismatch.any() or gap.max() > tolerance:
            i, j = np.argwhere(nan_mismatch | (gap > tolerance))[0]
            raise NeuralDataError(
                f"{source}: expected symmetric square RDMs, received {where} with entry "
                f"({i}, {j}) = {matrix[i, j]:.6g} but ({j}, {i}) = {matrix[j, i]:.6g}; save a "
                f"symmetric matrix (NaN on both sides for a missing pair){also}"
            )
        diagonal = np.diagonal(matrix)
        bad = np.flatnonzero(~np.isnan(diagonal) & (np.abs(diagonal) > tolerance))
        if bad.size:
            raise NeuralDataError(
                f"{source}: expected a zero diagonal (a condition's dissimilarity to itself), "
                f"received {where} with diagonal entry ({bad[0]}, {bad[0]}) = "
                f"{diagonal[bad[0]]:.6g}; save dissimilarities, not similarities{also}"
            )
    matrices = (matrices + transposed) / 2
    matrices[:, np.arange(n), np.arange(n)] = 0.0
    return matrices


def _check_finite(values: np.ndarray, source: str) -> None:
    infinite = int(np.count_nonzero(np.isinf(values)))
    if infinite:
        raise NeuralDataError(
            f"{source}: expected finite dissimilarities (NaN for a missing pair), received "
            f"{infinite} infinite value(s); replace them with NaN or a finite value"
        )


def _check_conditions(n: int, source: str) -> None:
    if n < MIN_CONDITIONS:
        raise NeuralDataError(
            f"{source}: expected RDMs of at least {MIN_CONDITIONS} conditions, received RDMs "
            f"of {n}; an RDM needs at least three conditions to compare"
        )


def _is_triangular(k: int) -> bool:
    return k >= 1 and _conditions(k) * (_conditions(k) - 1) // 2 == k


def _conditions(k: int) -> int:
    return (1 + math.isqrt(1 + 8 * k)) // 2


def _default_names(file: Path, count: int) -> list[str]:
    return [f"{file.stem}-{i}" for i in range(count)]


def _few(values: np.ndarray) -> str:
    shown = ", ".join(str(int(v)) for v in values[:10])
    return f"[{shown}{', ...' if len(values) > 10 else ''}] ({len(values)} in all)"
