"""`passage compare` from the command line: every input format on a batch and a training run,
one-line errors, the [compare] table, a comparison killed with SIGKILL and resumed, a process
pool and a Dask cluster giving the results computed here."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import rsatoolbox  # the oracle: a dev dependency, never skipped
import scipy.io
from analysis_helpers import write_run
from dask_helpers import env as child_env

from pipeline import open_run
from pipeline.cli import main
from pipeline.store import compare_files
from pipeline.store.atomic import TMP_MARK

N = 18


def layers(rng: np.random.Generator, epochs: int | None) -> dict[str, np.ndarray]:
    lead = (N,) if epochs is None else (epochs, N)
    return {
        "conv": rng.normal(size=(*lead, 3, 3, 4)).astype(np.float32),
        "IT_dense": rng.normal(size=(*lead, 16)).astype(np.float32),
    }


def rdm(x: np.ndarray) -> np.ndarray:
    flat = x.reshape(x.shape[0], -1).astype(np.float64)
    return rsatoolbox.rdm.calc_rdm(rsatoolbox.data.Dataset(flat)).get_matrices()[0]


def subjects(square: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    out = []
    for _ in range(count):
        e = rng.normal(scale=0.1, size=square.shape)
        s = square + (e + e.T) / 2
        np.fill_diagonal(s, 0.0)
        out.append(s)
    return np.stack(out)


def condensed(square: np.ndarray) -> np.ndarray:
    rows, cols = np.triu_indices(square.shape[-1], 1)
    return square[..., rows, cols]


def write_format(kind: str, folder: Path, refs: np.ndarray, responses: np.ndarray) -> list[str]:
    """The compare flags that hand ``refs`` (S, N, N) or ``responses`` (R, N, V) over in one
    of the formats neuroscientists have."""
    if kind == "npy-condensed":
        np.save(folder / "refs.npy", condensed(refs))
        return ["--rdms", str(folder / "refs.npy")]
    if kind == "mat":  # the MATLAB RSA toolbox's struct array RDMs(1, S), fields RDM and name
        cells = np.zeros((1, refs.shape[0]), dtype=[("RDM", "O"), ("name", "O")])
        for i, square in enumerate(refs):
            cells[0, i] = (square, f"subject {i + 1}")
        scipy.io.savemat(folder / "refs.mat", {"RDMs": cells})
        return ["--rdms", str(folder / "refs.mat")]
    if kind == "h5":  # what rsatoolbox writes
        data = rsatoolbox.rdm.RDMs(
            condensed(refs), rdm_descriptors={"name": [f"s{i}" for i in range(len(refs))]}
        )
        data.save(str(folder / "refs.h5"), file_type="hdf5")
        return ["--rdms", str(folder / "refs.h5")]
    if kind == "responses-npz":
        np.savez(folder / "cells.npz", rates=responses, other=np.zeros(3))
        return ["--responses", f"{folder / 'cells.npz'}:rates"]
    if kind == "responses-mat":
        scipy.io.savemat(folder / "cells.mat", {"resp": responses[0]})  # N x V, no repeats
        return ["--responses", str(folder / "cells.mat")]
    if kind == "responses-h5":
        with h5py.File(folder / "cells.h5", "w") as fh:
            fh.create_dataset("session1/responses", data=responses)
        return ["--responses", f"{folder / 'cells.h5'}:session1/responses"]
    raise AssertionError(kind)


FORMATS = ["npy-condensed", "mat", "h5", "responses-npz", "responses-mat", "responses-h5"]


@pytest.mark.parametrize("training", [False, True], ids=["batch", "training"])
@pytest.mark.parametrize("kind", FORMATS)
def test_every_input_format_on_batch_and_training_runs(tmp_path, capsys, kind, training):
    rng = np.random.default_rng(FORMATS.index(kind))
    acts = layers(rng, 2 if training else None)
    run = write_run(tmp_path / "run", acts, batch=5, epochs=[0, 1] if training else None)
    planted = acts["IT_dense"][-1] if training else acts["IT_dense"]
    refs = subjects(rdm(planted), 3, rng)
    weights = rng.normal(size=(16, 12))
    signal = planted.astype(np.float64) @ weights
    responses = signal[None] + rng.normal(scale=0.3, size=(3, N, 12))
    flags = write_format(kind, tmp_path, refs, responses)
    assert main(["-q", "compare", str(run), *flags, "--bootstrap", "30", "--name", "x"]) == 0
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("passage: x: best layer IT_dense")
    result = open_run(run).comparison("x")
    assert result["best_layer"] == "IT_dense" or result["best_layer"][-1] == "IT_dense"
    assert ("epochs" in result) == training
    expected_s = 1 if kind.startswith("responses") else 3
    assert len(result["references"]) == expected_s
    if kind.startswith("responses"):
        assert result["encoding"].shape[-1] == 12
        assert ("reliability" in result) == (kind != "responses-mat")
    if kind in ("mat", "h5"):
        names = ["subject 1", "subject 2", "subject 3"] if kind == "mat" else ["s0", "s1", "s2"]
        assert result["references"] == names
        np.testing.assert_allclose(
            compare_files.read_references(run, "x"), refs, rtol=0, atol=1e-15
        )


def test_a_count_mismatch_is_one_line_and_exit_2(tmp_path, capsys):
    rng = np.random.default_rng(1)
    run = write_run(tmp_path / "run", layers(rng, None), batch=6)
    np.save(tmp_path / "big.npy", np.zeros((N + 2, N + 2)))
    assert main(["-q", "compare", str(run), "--rdms", str(tmp_path / "big.npy")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("passage: error: ")
    assert f"{N + 2} conditions" in err[0] and f"has {N}" in err[0]


def test_bad_options_name_their_flag(tmp_path, capsys):
    rng = np.random.default_rng(2)
    run = write_run(tmp_path / "run", layers(rng, None), batch=6)
    np.save(tmp_path / "r.npy", rdm(rng.normal(size=(N, 4))))
    assert (
        main(["-q", "compare", str(run), "--rdms", str(tmp_path / "r.npy"), "--method", "x"]) == 2
    )
    assert "--method: expected one of" in capsys.readouterr().err
    assert main(["-q", "compare", str(run)]) == 2
    assert "--rdms: expected reference RDMs" in capsys.readouterr().err


def test_the_compare_table_of_a_config(tmp_path, capsys):
    rng = np.random.default_rng(3)
    acts = layers(rng, None)
    write_run(tmp_path / "runs" / "mine", acts, batch=6)
    (tmp_path / "data").mkdir()
    np.save(tmp_path / "data" / "v1.npy", subjects(rdm(acts["conv"]), 2, rng))
    np.save(tmp_path / "data" / "it.npy", subjects(rdm(acts["IT_dense"]), 2, rng))
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "c.toml").write_text(
        '[capture]\nout = "../runs/mine"\n\n[compare]\n'
        'rdms = ["V1=../data/v1.npy", "IT=../data/it.npy"]\nmethod = "spearman"\nbootstrap = 40\n'
    )
    assert main(["-q", "compare", "--config", str(tmp_path / "configs" / "c.toml")]) == 0
    err = capsys.readouterr().err
    assert "passage: regions: V1 -> conv" in err and "IT -> IT_dense" in err
    assert "named IT_dense: agrees" in err
    run = open_run(tmp_path / "runs" / "mine")
    assert run.comparisons == ["IT", "V1"]
    assert run.comparison("V1")["method"] == "spearman"
    assert run.regions()["agrees"].tolist() == [-1, 1]
    assert (run.path / "compare" / "regions.png").is_file()
    assert (run.path / "compare" / "IT" / "profile.png").is_file()


KILLED = """
import sys
from pipeline.cli import main
sys.exit(main(["-q", "compare", sys.argv[1], "--rdms", sys.argv[2], "--bootstrap", "50",
               "--workers", "1", "--no-pictures"]))
"""


def test_a_comparison_killed_with_sigkill_resumes_from_its_grams(tmp_path):
    rng = np.random.default_rng(4)
    wide = {f"layer_{i}": rng.normal(size=(400, 4000)).astype(np.float32) for i in range(8)}
    run = write_run(tmp_path / "run", wide, batch=50)
    np.save(tmp_path / "ref.npy", rdm(wide["layer_5"]))
    index = run / "compare" / "grams" / "index.json"
    env = {**child_env(), "PASSAGE_GRAM_BYTES": str(2 << 20)}  # several panels: slower Grams
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED, str(run), str(tmp_path / "ref.npy")], env=env
    )
    try:
        deadline = time.monotonic() + 120
        while not index.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    kept = compare_files_kept(run)
    assert 1 <= len(kept) < 8, "the kill should land while Grams are being computed"
    assert not (run / "compare" / "ref" / compare_files.COMPARISON).exists()
    stamps = {p: p.stat().st_mtime_ns for p in kept}
    assert main(["-q", "compare", str(run), "--rdms", str(tmp_path / "ref.npy"),
                 "--bootstrap", "50", "--no-pictures"]) == 0  # fmt: skip
    assert {p: p.stat().st_mtime_ns for p in kept} == stamps  # kept, not computed again
    assert not [p for p in (run / "compare").rglob(f"*{TMP_MARK}*")]
    resumed = open_run(run).comparison("ref")
    fresh = write_run(tmp_path / "fresh", wide, batch=50)
    assert main(["-q", "compare", str(fresh), "--rdms", str(tmp_path / "ref.npy"),
                 "--bootstrap", "50", "--no-pictures"]) == 0  # fmt: skip
    again = open_run(fresh).comparison("ref")
    for key in ("scores", "score", "ci", "best_layer_p"):
        np.testing.assert_array_equal(resumed[key], again[key])
    assert resumed["best_layer"] == "layer_5"


def compare_files_kept(run: Path) -> list[Path]:
    from pipeline.store.gram_cache import read_gram_index

    return [run / "compare" / "grams" / name for name in read_gram_index(run)]


def test_a_process_pool_and_a_dask_cluster_give_the_same_results(tmp_path):
    rng = np.random.default_rng(5)
    acts = layers(rng, 3)
    refs = subjects(rdm(acts["conv"][2]), 2, rng)
    np.save(tmp_path / "ref.npy", refs)
    results = {}
    for how in (["--workers", "1"], ["--workers", "2"], ["--dask", "local:2"]):
        run = write_run(tmp_path / "-".join(how).strip("-").replace(":", ""), acts, batch=5,
                        epochs=[0, 1, 2])  # fmt: skip
        args = ["-q", "compare", str(run), "--rdms", str(tmp_path / "ref.npy"), *how]
        assert main([*args, "--bootstrap", "40", "--no-pictures"]) == 0
        results[" ".join(how)] = open_run(run).comparison("ref")
        assert len(list((run / "compare" / "grams").rglob("*.npy"))) == 6
    here = results["--workers 1"]
    for how, result in results.items():
        for key in ("scores", "score", "ci", "best_layer_p"):
            np.testing.assert_array_equal(result[key], here[key], err_msg=how)


def test_a_damaged_file_leaves_its_layer_out_and_exits_1(tmp_path, capsys):
    rng = np.random.default_rng(6)
    acts = layers(rng, None)
    run = write_run(tmp_path / "run", acts, batch=6)
    np.save(tmp_path / "ref.npy", subjects(rdm(acts["IT_dense"]), 2, rng))
    victim = open_run(run).chunks("conv")[1]
    path = run / victim.path
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF  # one value of the conv layer's second file: its CRC-32 no longer matches
    path.write_bytes(bytes(data))
    args = ["-q", "compare", str(run), "--rdms", str(tmp_path / "ref.npy"), "--bootstrap", "20"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "left out 1 layer(s) with damaged data files" in err and "passage verify" in err
    result = open_run(run).comparison("ref")
    assert result["layers"] == ["IT_dense"] and result["best_layer"] == "IT_dense"
