"""Neural data readers: every file written by the real writer (numpy, scipy.io.savemat, h5py,
rsatoolbox's RDMs.save), read back through pipeline.compare.neural and checked against what
was written and against rsatoolbox's own reader and calc_rdm."""

from __future__ import annotations

import warnings

import h5py
import numpy as np
import pytest
import rsatoolbox  # the oracle: a dev dependency, never skipped
import scipy.io
from scipy.spatial.distance import squareform

from pipeline.compare.neural import (
    References,
    Responses,
    check_count,
    parse_named,
    read_conditions,
    read_rdms,
    read_responses,
    responses_rdm,
)
from pipeline.errors import ConfigError, NeuralDataError


def vectors(rng, s: int, n: int, nan: int = 0) -> np.ndarray:
    v = rng.uniform(0.1, 2.0, size=(s, n * (n - 1) // 2))
    if nan:
        v[:, rng.choice(v.shape[1], nan, replace=False)] = np.nan
    return v


def squares(v: np.ndarray) -> np.ndarray:
    return np.stack([squareform(row, checks=False) for row in v])


def assert_rdms(got: References, expected: np.ndarray) -> None:
    assert got.matrices.dtype == np.float64
    np.testing.assert_array_equal(got.matrices, expected)  # NaN where expected has NaN
    np.testing.assert_array_equal(got.matrices, np.swapaxes(got.matrices, 1, 2))
    assert np.all(np.diagonal(got.matrices, axis1=1, axis2=2) == 0)


def one_line_error(call, *fragments: str) -> str:
    with pytest.raises(NeuralDataError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    return message


# ------------------------------------------------------------------------------- .npy RDMs


@pytest.mark.parametrize("s", [1, 4])
@pytest.mark.parametrize("layout", ["square", "condensed"])
def test_npy_rdms_square_and_condensed(tmp_path, s, layout):
    rng = np.random.default_rng(s)
    v = vectors(rng, s, 6, nan=2)
    array = squares(v) if layout == "square" else v
    path = tmp_path / "v1.npy"
    np.save(path, array[0] if s == 1 else array)
    got = read_rdms(path)
    assert_rdms(got, squares(v))
    assert got.names == [f"v1-{i}" for i in range(s)]
    assert got.source == str(path)
    assert np.isnan(got.matrices).sum() == 2 * 2 * s  # each NaN pair on both sides


def test_npy_single_condensed_vector(tmp_path):
    v = vectors(np.random.default_rng(0), 1, 5)
    np.save(tmp_path / "c.npy", v[0])
    assert_rdms(read_rdms(tmp_path / "c.npy"), squares(v))


def test_float32_rounding_is_accepted_and_symmetrised(tmp_path):
    rng = np.random.default_rng(1)
    m = squares(vectors(rng, 1, 8))[0].astype(np.float32)
    m[2, 5] = np.nextafter(m[2, 5], np.float32(3))  # one ulp apart: rounding, not asymmetry
    m[4, 4] = np.float32(1e-9)
    np.save(tmp_path / "f.npy", m)
    got = read_rdms(tmp_path / "f.npy").matrices[0]
    np.testing.assert_allclose(got, m, rtol=1e-6, atol=1e-8)
    assert got[2, 5] == got[5, 2] and got[4, 4] == 0


def test_nan_diagonal_counts_as_zero(tmp_path):
    m = squares(vectors(np.random.default_rng(2), 1, 4))[0]
    np.fill_diagonal(m, np.nan)
    np.save(tmp_path / "d.npy", m)
    assert np.all(np.diagonal(read_rdms(tmp_path / "d.npy").matrices[0]) == 0)


# -------------------------------------------------------------------------- rsatoolbox HDF5


@pytest.mark.parametrize("s", [1, 3])
@pytest.mark.parametrize("named", [True, False])
def test_hdf5_written_by_rsatoolbox(tmp_path, s, named):
    v = vectors(np.random.default_rng(s), s, 7, nan=3)
    descriptors = {"name": [f"subject {i}" for i in range(s)]} if named else None
    rdms = rsatoolbox.rdm.RDMs(v, dissimilarity_measure="correlation", rdm_descriptors=descriptors)
    path = tmp_path / "it.hdf5"
    rdms.save(str(path), file_type="hdf5")
    got = read_rdms(path)
    assert_rdms(got, squares(v))
    oracle = rsatoolbox.rdm.load_rdm(str(path), file_type="hdf5").get_matrices()
    np.testing.assert_array_equal(got.matrices, oracle)
    assert got.names == (descriptors["name"] if named else [f"it-{i}" for i in range(s)])
    assert got.measure == "correlation"


def test_hdf5_from_square_matrices_and_no_measure(tmp_path):
    m = squares(vectors(np.random.default_rng(5), 2, 5))
    rsatoolbox.rdm.RDMs(m).save(str(tmp_path / "sq.h5"), file_type="hdf5")
    got = read_rdms(tmp_path / "sq.h5")
    assert_rdms(got, m)
    assert got.measure is None and got.names == ["sq-0", "sq-1"]


def test_hdf5_three_rdms_of_three_conditions_stay_three(tmp_path):
    # (S, K) = (3, 3) is square: the rsatoolbox layout says the rows are RDMs
    v = vectors(np.random.default_rng(6), 3, 3)
    rsatoolbox.rdm.RDMs(v).save(str(tmp_path / "t.h5"), file_type="hdf5")
    assert_rdms(read_rdms(tmp_path / "t.h5"), squares(v))


def test_plain_hdf5_dataset_by_key(tmp_path):
    m = squares(vectors(np.random.default_rng(7), 2, 4))
    with h5py.File(tmp_path / "p.h5", "w") as f:
        f["group/rdms"] = m
        f["other"] = np.arange(3.0)
    assert_rdms(read_rdms(f"{tmp_path / 'p.h5'}:group/rdms"), m)
    one_line_error(
        lambda: read_rdms(tmp_path / "p.h5"),
        "'dissimilarities'",
        "'group/rdms'",
        "'other'",
        "after a colon",
    )


# ------------------------------------------------------------------------------------ .mat


def struct_array(rdms: list[np.ndarray], names: list[str], shape=(2, 3)) -> np.ndarray:
    """An RSA-toolbox struct array; rdms/names listed in MATLAB's column-major order."""
    s = np.empty(shape, dtype=[("RDM", "O"), ("name", "O"), ("color", "O")])
    flat = np.arange(s.size).reshape(shape, order="F")
    for index in np.ndindex(shape):
        s[index]["RDM"] = rdms[flat[index]]
        s[index]["name"] = names[flat[index]]
        s[index]["color"] = np.array([[1.0, 0.0, 0.0]])
    return s


@pytest.mark.parametrize("layout", ["square", "condensed"])
def test_mat_struct_array_of_subjects_by_sessions(tmp_path, layout):
    v = vectors(np.random.default_rng(8), 6, 5, nan=1)
    # MATLAB's vectorizeRDM writes a 1 x K row: the upper triangle row-major, as squareform
    rdms = [squares(v[i : i + 1])[0] if layout == "square" else v[i][None] for i in range(6)]
    names = [f"subject{i % 2 + 1}-session{i // 2 + 1}" for i in range(6)]
    scipy.io.savemat(tmp_path / "v1.mat", {"RDMs": struct_array(rdms, names)})
    got = read_rdms(tmp_path / "v1.mat")
    assert_rdms(got, squares(v))
    assert got.names == names  # column-major: subject1-session1, subject2-session1, ...


def test_mat_struct_empty_name_falls_back_and_any_variable_name(tmp_path):
    v = vectors(np.random.default_rng(9), 3, 4)
    s = struct_array([row[None] for row in v], ["a", "", "c"], shape=(1, 3))
    scipy.io.savemat(tmp_path / "x.mat", {"RDMs_V1": s, "labels": np.arange(4.0)})
    got = read_rdms(tmp_path / "x.mat")
    assert got.names == ["a", "x-1", "c"]
    assert_rdms(got, squares(v))


def test_mat_struct_three_condensed_rdms_of_three_conditions(tmp_path):
    v = vectors(np.random.default_rng(10), 3, 3)
    s = struct_array([row[None] for row in v], ["a", "b", "c"], shape=(3, 1))
    scipy.io.savemat(tmp_path / "t.mat", {"RDMs": s})
    assert_rdms(read_rdms(tmp_path / "t.mat"), squares(v))


@pytest.mark.parametrize("layout", ["N,N", "N,N,S", "S,N,N", "1,K", "K,1", "S,K"])
def test_mat_plain_numeric_variable(tmp_path, layout):
    s = 1 if layout in ("N,N", "1,K", "K,1") else 3
    v = vectors(np.random.default_rng(11), s, 5)
    m = squares(v)
    array = {
        "N,N": m[0],
        "N,N,S": np.moveaxis(m, 0, 2),
        "S,N,N": m,
        "1,K": v,
        "K,1": v.T,
        "S,K": v,
    }[layout]
    scipy.io.savemat(tmp_path / "n.mat", {"rdm": array})
    assert_rdms(read_rdms(tmp_path / "n.mat"), m)


def test_mat_cube_prefers_the_layout_with_zero_diagonals(tmp_path):
    m = squares(vectors(np.random.default_rng(12), 4, 4))  # (4, 4, 4): S == N
    scipy.io.savemat(tmp_path / "a.mat", {"r": m})
    scipy.io.savemat(tmp_path / "b.mat", {"r": np.moveaxis(m, 0, 2)})
    assert_rdms(read_rdms(tmp_path / "a.mat"), m)
    assert_rdms(read_rdms(tmp_path / "b.mat"), m)


def test_mat_variable_picked_by_key_and_listed_when_ambiguous(tmp_path):
    a, b = squares(vectors(np.random.default_rng(13), 2, 4))
    scipy.io.savemat(tmp_path / "two.mat", {"first": a, "second": b})
    assert_rdms(read_rdms(f"{tmp_path / 'two.mat'}:second"), b[None])
    one_line_error(lambda: read_rdms(tmp_path / "two.mat"), "'first'", "'second'", "two.mat:")
    one_line_error(lambda: read_rdms(f"{tmp_path / 'two.mat'}:third"), "'third'", "'first'")


def test_mat_struct_errors(tmp_path):
    s = np.empty((1, 2), dtype=[("dissim", "O")])
    s[0, 0]["dissim"] = s[0, 1]["dissim"] = np.zeros((3, 3))
    scipy.io.savemat(tmp_path / "f.mat", {"RDMs": s})
    one_line_error(lambda: read_rdms(tmp_path / "f.mat"), "field 'RDM'", "'dissim'")
    mixed = struct_array([np.zeros((3, 3)), np.zeros((4, 4))], ["a", "b"], shape=(1, 2))
    scipy.io.savemat(tmp_path / "m.mat", {"RDMs": mixed})
    one_line_error(lambda: read_rdms(tmp_path / "m.mat"), "(3, 3)", "(4, 4)", "same number")


def test_mat_v73_is_named(tmp_path):
    # MATLAB v7.3 files are HDF5 with a 512-byte MAT header (version 0x0200, 'IM' endian)
    path = tmp_path / "new.mat"
    with h5py.File(path, "w", userblock_size=512) as f:
        f["RDMs"] = np.zeros((3, 3))
    with open(path, "r+b") as f:
        f.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64".ljust(116) + b"\0" * 8 + b"\x00\x02IM")
    one_line_error(lambda: read_rdms(path), "v7.3", "HDF5", "-v7")


# -------------------------------------------------------------------------- RDM refusals


@pytest.mark.parametrize(
    "array, fragments",
    [
        (np.arange(1.0, 8.0), ["N(N-1)/2", "7 entries", "squareform"]),
        (np.ones((2, 5)), ["N(N-1)/2", "5 entries"]),
        (np.zeros((2, 3, 4)), ["(S, N, N)", "(2, 3, 4)"]),
        (np.zeros((2, 2)), ["at least 3 conditions", "of 2"]),
        (np.array([0.5]), ["at least 3 conditions", "of 2"]),
        (np.array([[0, 1, 2], [1, 0, np.inf], [2, np.inf, 0]]), ["finite", "2 infinite"]),
        (
            np.array([[0, 1, 2], [1, 0, 3], [2, 3.1, 0]]),
            ["symmetric", "(1, 2) = 3 but (2, 1) = 3.1"],
        ),
        (np.array([[0, 1, 2], [1, 0, 3], [np.nan, 3, 0]]), ["symmetric", "(0, 2) = 2"]),
        (np.array([[1, 1, 2], [1, 1, 3], [2, 3, 1.0]]), ["zero diagonal", "(0, 0) = 1"]),
        (np.array(["a", "b", "c"]), ["real numbers", "<U1"]),
    ],
)
def test_rdm_refusals(tmp_path, array, fragments):
    np.save(tmp_path / "bad.npy", array)
    message = one_line_error(lambda: read_rdms(tmp_path / "bad.npy"), "bad.npy", *fragments)
    assert "received" in message and "expected" in message


def test_square_stack_refusal_names_the_rdm_and_hints_condensed(tmp_path):
    m = squares(vectors(np.random.default_rng(14), 3, 4))
    m[2, 0, 0] = 0.3
    np.save(tmp_path / "s.npy", m)
    one_line_error(lambda: read_rdms(tmp_path / "s.npy"), "RDM 3 of 3", "(0, 0) = 0.3")
    np.save(tmp_path / "k.npy", vectors(np.random.default_rng(15), 6, 4))  # (6, 6): looks square
    one_line_error(lambda: read_rdms(tmp_path / "k.npy"), "condensed RDMs, save them as square")


def test_file_refusals(tmp_path):
    one_line_error(lambda: read_rdms(tmp_path / "none.npy"), "does not exist")
    (tmp_path / "r.csv").write_text("0,1\n1,0\n")
    one_line_error(lambda: read_rdms(tmp_path / "r.csv"), ".csv", ".npy, .mat, .h5")
    (tmp_path / "broken.h5").write_bytes(b"not hdf5 at all")
    one_line_error(lambda: read_rdms(tmp_path / "broken.h5"), "HDF5", "h5py cannot open")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    one_line_error(lambda: read_rdms(tmp_path / "obj.npy"), "without pickle")


# ------------------------------------------------------------------------------- responses


def test_responses_npy_two_and_three_dimensions(tmp_path):
    rng = np.random.default_rng(20)
    np.save(tmp_path / "a.npy", rng.integers(0, 9, size=(5, 7)).astype(np.int16))
    got = read_responses(tmp_path / "a.npy")
    assert got.data.shape == (1, 5, 7) and got.data.dtype == np.float64
    data = rng.normal(size=(3, 5, 7)).astype(np.float32)
    np.save(tmp_path / "b.npy", data)
    got = read_responses(tmp_path / "b.npy")
    assert got.data.dtype == np.float64 and got.source == str(tmp_path / "b.npy")
    np.testing.assert_array_equal(got.data, data.astype(np.float64))


def test_responses_npz_mat_h5_keys(tmp_path):
    rng = np.random.default_rng(21)
    a, b = rng.normal(size=(2, 4, 6)), rng.normal(size=(4, 6))
    np.savez(tmp_path / "r.npz", train=a, test=b)
    np.savez(tmp_path / "one.npz", only=a)
    scipy.io.savemat(tmp_path / "r.mat", {"V1": a, "IT": b})
    with h5py.File(tmp_path / "r.h5", "w") as f:
        f["sub/V1"] = a
        f["IT"] = b
    with h5py.File(tmp_path / "one.hdf5", "w") as f:
        f["deep/inside/x"] = b
    np.testing.assert_array_equal(read_responses(f"{tmp_path}/r.npz:test").data[0], b)
    np.testing.assert_array_equal(read_responses(tmp_path / "one.npz").data, a)
    np.testing.assert_array_equal(read_responses(f"{tmp_path}/r.mat:V1").data, a)
    np.testing.assert_array_equal(read_responses(f"{tmp_path}/r.h5:sub/V1").data, a)
    np.testing.assert_array_equal(read_responses(tmp_path / "one.hdf5").data[0], b)
    for name, keys in [("r.npz", ["'train'", "'test'"]), ("r.mat", ["'V1'", "'IT'"])]:
        one_line_error(lambda n=name: read_responses(tmp_path / n), "2 ", *keys, "after a colon")
    one_line_error(lambda: read_responses(tmp_path / "r.h5"), "'sub/V1'", "'IT'")
    one_line_error(lambda: read_responses(f"{tmp_path}/r.npz:nope"), "'nope'", "'train'")
    one_line_error(lambda: read_responses(f"{tmp_path}/r.h5:nope"), "'nope'", "'IT'")


def test_responses_refusals(tmp_path):
    bad = np.ones((2, 4, 5))
    bad[0, 1, 2], bad[1, 3, 0], bad[1, 0, 0] = np.nan, np.inf, -np.inf
    np.save(tmp_path / "nan.npy", bad)
    one_line_error(lambda: read_responses(tmp_path / "nan.npy"), "3 NaN or Inf", "of 40")
    np.save(tmp_path / "flat.npy", np.ones(5))
    one_line_error(lambda: read_responses(tmp_path / "flat.npy"), "received shape (5,)")
    np.save(tmp_path / "two.npy", np.ones((2, 5)))
    one_line_error(lambda: read_responses(tmp_path / "two.npy"), "at least 3 conditions")
    (tmp_path / "r.txt").write_text("1 2 3")
    one_line_error(lambda: read_responses(tmp_path / "r.txt"), ".txt", ".npz")
    s = np.empty((1, 1), dtype=[("x", "O")])
    s[0, 0]["x"] = np.ones((3, 3))
    scipy.io.savemat(tmp_path / "s.mat", {"resp": s})
    one_line_error(lambda: read_responses(tmp_path / "s.mat"), "'resp'", "numeric", "struct")


# ------------------------------------------------------------------ responses_rdm vs rsatoolbox


def rsatoolbox_rdm(data: np.ndarray, method: str) -> np.ndarray:
    r, n, v = data.shape
    dataset = rsatoolbox.data.Dataset(
        data.reshape(r * n, v),
        obs_descriptors={"conds": np.tile(np.arange(n), r), "run": np.repeat(np.arange(r), n)},
    )
    extra = {"cv_descriptor": "run", "noise": None} if method == "crossnobis" else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # rsatoolbox's own casts of NaN
        rdms = rsatoolbox.rdm.calc_rdm(dataset, method=method, descriptor="conds", **extra)
    return rdms.get_matrices()[0]


@pytest.mark.parametrize(
    "method, shape",
    [
        (method, shape)
        for method in ("correlation", "euclidean", "crossnobis")
        for shape in ((1, 6, 40), (3, 12, 25), (5, 4, 300), (2, 30, 7))
        if not (method == "crossnobis" and shape[0] == 1)  # needs repeats: refused below
    ],
)
def test_responses_rdm_equals_rsatoolbox(method, shape):
    rng = np.random.default_rng(sum(shape))
    data = rng.normal(size=shape) + rng.normal(size=shape[1:]) * 2 + 10.0
    got = responses_rdm(Responses(data, "x"), method)
    expected = rsatoolbox_rdm(data, method)
    # both are O(V) float64 sums of terms of size ~1: rounding ~1e-15 relative; 1e-10 is safe
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-10 * np.abs(expected).max())
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, got.T)
    assert np.all(np.diag(got) == 0)


def test_auto_distance_and_refusals():
    rng = np.random.default_rng(30)
    one, many = rng.normal(size=(1, 5, 9)), rng.normal(size=(3, 5, 9))
    np.testing.assert_array_equal(
        responses_rdm(Responses(one, "x")), responses_rdm(Responses(one, "x"), "correlation")
    )
    np.testing.assert_array_equal(
        responses_rdm(Responses(many, "x")), responses_rdm(Responses(many, "x"), "crossnobis")
    )
    one_line_error(
        lambda: responses_rdm(Responses(one, "r.npy"), "crossnobis"), "r.npy", "R >= 2", "(1, 5, 9)"
    )
    with pytest.raises(ConfigError, match=r"^distance: expected one of .*received 'cosine'"):
        responses_rdm(Responses(one, "x"), "cosine")


def test_constant_pattern_gives_nan_row_without_warning():
    data = np.random.default_rng(31).normal(size=(1, 5, 8))
    data[0, 2] = 4.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rdm = responses_rdm(Responses(data, "x"), "correlation")
    others = [0, 1, 3, 4]
    assert np.all(np.isnan(rdm[2, others])) and np.all(np.isnan(rdm[others, 2]))
    assert rdm[2, 2] == 0 and np.all(np.isfinite(rdm[np.ix_(others, others)]))


# ------------------------------------------------------------------ conditions, counts, names


def test_read_conditions(tmp_path):
    np.save(tmp_path / "c.npy", np.array([4, 0, 2], dtype=np.int32))
    got = read_conditions(tmp_path / "c.npy", 5)
    assert got.dtype == np.int64 and got.tolist() == [4, 0, 2]
    for name, array, fragments in [
        ("range", np.array([0, 5, 7]), ["0 to 4", "5 patterns", "[5, 7] (2 in all)"]),
        ("negative", np.array([0, -1]), ["[-1]"]),
        ("dup", np.array([1, 3, 1, 3, 2]), ["repeated indices [1, 3]"]),
        ("empty", np.array([], dtype=int), ["non-empty", "an empty array"]),
        ("float", np.array([0.0, 1.0]), ["integer", "float64"]),
        ("matrix", np.zeros((2, 2), dtype=int), ["1-D", "(2, 2)"]),
    ]:
        np.save(tmp_path / f"{name}.npy", array)
        one_line_error(lambda n=name: read_conditions(tmp_path / f"{n}.npy", 5), *fragments)
    (tmp_path / "c.txt").write_text("0 1 2")
    one_line_error(lambda: read_conditions(tmp_path / "c.txt", 5), ".npy")


def test_check_count():
    check_count("v1.mat", 32, 32)
    message = one_line_error(
        lambda: check_count("v1.mat", 40, 32, against="run runs/seed"),
        "v1.mat holds 40 conditions",
        "run runs/seed has 32",
        "--conditions",
    )
    assert message.count("40") == 1


def test_parse_named(tmp_path, monkeypatch):
    assert parse_named("V1=data/v1.mat") == ("V1", "data/v1.mat")
    assert parse_named("it_layer=b.h5:RDMs") == ("it_layer", "b.h5:RDMs")
    assert parse_named("x.npy") == (None, "x.npy")
    assert parse_named("data/a=b.npy") == (None, "data/a=b.npy")
    monkeypatch.chdir(tmp_path)
    np.save("V2=odd.npy", np.zeros(3))  # an existing file whose name holds '=' stays a path
    assert parse_named("V2=odd.npy") == (None, "V2=odd.npy")
    one_line_error(lambda: parse_named("V1="), "NAME=FILE", "'V1='")
