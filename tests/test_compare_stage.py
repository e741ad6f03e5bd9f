"""The compare stage end to end over real runs: its scores against rsatoolbox on the same
activations, a planted layer found, training runs, conditions, regions, encoding, resume."""

from __future__ import annotations

import numpy as np
import pytest
import rsatoolbox  # the oracle: a dev dependency, never skipped
from analysis_helpers import write_run

from pipeline import open_run
from pipeline.compare import compare
from pipeline.errors import ConfigError, NeuralDataError
from pipeline.store import compare_files

RSA_METHOD = {"pearson": "corr"}  # our names that rsatoolbox spells otherwise


def layers_of(rng: np.random.Generator, n: int, epochs: int | None = None) -> dict[str, np.ndarray]:
    lead = (n,) if epochs is None else (epochs, n)
    return {
        "conv_a": rng.normal(size=(*lead, 4, 4, 3)).astype(np.float32),
        "v1_dense": rng.normal(size=(*lead, 20)).astype(np.float32),
        "out": rng.normal(size=(*lead, 7)).astype(np.float32),
    }


def model_rdm(x: np.ndarray, method: str = "correlation") -> np.ndarray:
    """rsatoolbox's RDM of the activations as stored (float32, flattened per pattern)."""
    data = rsatoolbox.data.Dataset(x.reshape(x.shape[0], -1).astype(np.float64))
    return rsatoolbox.rdm.calc_rdm(data, method=method).get_matrices()[0]


def noisy_copies(rdm: np.ndarray, count: int, scale: float, rng: np.random.Generator) -> np.ndarray:
    """``count`` symmetric noisy copies of ``rdm`` (subjects), zero diagonal."""
    out = []
    for _ in range(count):
        noise = rng.normal(scale=scale, size=rdm.shape)
        noisy = rdm + (noise + noise.T) / 2
        np.fill_diagonal(noisy, 0.0)
        out.append(noisy)
    return np.stack(out)


@pytest.fixture
def batch_run(tmp_path):
    rng = np.random.default_rng(0)
    layers = layers_of(rng, 24)
    run = write_run(tmp_path / "run", layers, batch=7)
    return run, layers


@pytest.mark.parametrize("method", ["tau-a", "spearman", "pearson", "cosine", "corr_cov"])
def test_scores_equal_rsatoolbox_on_the_same_activations(batch_run, tmp_path, method):
    run, layers = batch_run
    rng = np.random.default_rng(1)
    refs = noisy_copies(model_rdm(layers["v1_dense"]), 3, 0.3, rng)
    np.save(tmp_path / "refs.npy", refs)
    compare(
        run,
        rdms=[str(tmp_path / "refs.npy")],
        method=method,
        bootstrap=0,
        pictures=False,
        quiet=True,
    )
    result = open_run(run).comparison("refs")
    assert result["layers"] == list(layers)
    ref_rdms = rsatoolbox.rdm.RDMs(np.stack([r[np.triu_indices(24, 1)] for r in refs]))
    for i, name in enumerate(layers):
        model = rsatoolbox.rdm.RDMs(model_rdm(layers[name])[np.triu_indices(24, 1)][None])
        want = rsatoolbox.rdm.compare(model, ref_rdms, method=RSA_METHOD.get(method, method))[0]
        np.testing.assert_allclose(result["scores"][i], want, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(result["score"][i], want.mean(), rtol=1e-6, atol=1e-9)
    assert result["best_layer"] == "v1_dense"


def test_result_keys_and_files(batch_run, tmp_path):
    run, layers = batch_run
    rng = np.random.default_rng(2)
    refs = noisy_copies(model_rdm(layers["out"]), 4, 0.2, rng)
    np.save(tmp_path / "it.npy", refs)
    compare(run, rdms=[str(tmp_path / "it.npy")], bootstrap=200, pictures=False, quiet=True)
    result = open_run(run).comparison("it")
    assert list(result) == [
        "layers", "references", "method", "distance", "scores", "score", "noise_ceiling",
        "ci", "best_layer", "best_layer_p",
    ]  # fmt: skip
    assert result["method"] == "tau-a" and result["distance"] == "correlation"
    assert result["scores"].shape == (3, 4) and result["score"].shape == (3,)
    assert result["ci"].shape == (3, 2)
    assert np.all(result["ci"][:, 0] <= result["score"]) and np.all(
        result["score"] <= result["ci"][:, 1]
    )
    assert result["best_layer"] == "out" and result["best_layer_p"] > 0.9
    lower, upper = result["noise_ceiling"]
    assert 0 < lower <= upper <= 1
    folder = compare_files.comparison_dir(run, "it")
    stored = np.load(folder / "references.npy")
    np.testing.assert_array_equal(stored, refs)
    assert open_run(run).comparisons == ["it"]


def test_one_reference_has_no_noise_ceiling(batch_run, tmp_path):
    run, layers = batch_run
    np.save(tmp_path / "one.npy", model_rdm(layers["conv_a"]))
    compare(run, rdms=[str(tmp_path / "one.npy")], bootstrap=50, pictures=False, quiet=True)
    result = open_run(run).comparison("one")
    assert np.isnan(result["noise_ceiling"]).all()
    assert result["scores"].shape == (3, 1)
    assert result["best_layer"] == "conv_a"
    np.testing.assert_allclose(result["score"][0], 1.0)


def test_training_run_has_an_epoch_axis(tmp_path):
    rng = np.random.default_rng(3)
    layers = layers_of(rng, 15, epochs=3)
    run = write_run(tmp_path / "run", layers, batch=5, epochs=[0, 1, 2])
    # the reference follows v1_dense at epoch 2 only
    np.save(tmp_path / "ref.npy", noisy_copies(model_rdm(layers["v1_dense"][2]), 2, 0.1, rng))
    compare(run, rdms=[str(tmp_path / "ref.npy")], bootstrap=100, pictures=False, quiet=True)
    result = open_run(run).comparison("ref")
    assert result["epochs"] == [0, 1, 2]
    assert result["scores"].shape == (3, 3, 2) and result["score"].shape == (3, 3)
    assert result["ci"].shape == (3, 3, 2) and len(result["best_layer"]) == 3
    assert result["best_layer"][2] == "v1_dense"
    assert result["score"][2, 1] > result["score"][0, 1] + 0.3
    one = compare(
        run,
        rdms=[str(tmp_path / "ref.npy")],
        epoch=1,
        name="one_epoch",
        bootstrap=0,
        pictures=False,
        quiet=True,
    )
    assert one.comparisons["one_epoch"]["epochs"] == [1]
    np.testing.assert_allclose(one.comparisons["one_epoch"]["score"][0], result["score"][1])


def test_conditions_choose_and_order_the_patterns(batch_run, tmp_path):
    run, layers = batch_run
    chosen = np.array([20, 3, 7, 11, 0, 15, 9, 22, 5, 1])
    np.save(tmp_path / "conditions.npy", chosen)
    x = layers["v1_dense"][chosen]
    refs = noisy_copies(model_rdm(x), 2, 0.2, np.random.default_rng(4))
    np.save(tmp_path / "sub.npy", refs)
    compare(
        run,
        rdms=[str(tmp_path / "sub.npy")],
        conditions=tmp_path / "conditions.npy",
        method="spearman",
        bootstrap=0,
        pictures=False,
        quiet=True,
    )
    result = open_run(run).comparison("sub")
    k = np.triu_indices(10, 1)
    for i, name in enumerate(layers):
        model = model_rdm(layers[name][chosen])[k]
        for s in range(2):
            want = rsatoolbox.rdm.compare(
                rsatoolbox.rdm.RDMs(model[None]), rsatoolbox.rdm.RDMs(refs[s][k][None]),
                method="spearman")[0, 0]  # fmt: skip
            np.testing.assert_allclose(result["scores"][i, s], want, rtol=1e-6)
    assert compare_files.read_info(run, "sub")["conditions"] == chosen.tolist()


def test_a_count_mismatch_is_one_line_naming_both(batch_run, tmp_path):
    run, layers = batch_run
    np.save(tmp_path / "short.npy", model_rdm(layers["out"][:20]))
    with pytest.raises(NeuralDataError) as info:
        compare(run, rdms=[str(tmp_path / "short.npy")], pictures=False, quiet=True)
    message = str(info.value)
    assert "\n" not in message and "20" in message and "24" in message
    assert not (run / "compare" / "short").exists()


def test_regions_find_the_layer_named_after_them(batch_run, tmp_path):
    run, layers = batch_run
    rng = np.random.default_rng(5)
    np.save(tmp_path / "v1.npy", noisy_copies(model_rdm(layers["v1_dense"]), 3, 0.2, rng))
    np.save(tmp_path / "it.npy", noisy_copies(model_rdm(layers["out"]), 3, 0.2, rng))
    report = compare(
        run, rdms=[f"V1={tmp_path / 'v1.npy'}", f"IT={tmp_path / 'it.npy'}"], bootstrap=100,
        pictures=False, quiet=True,
    )  # fmt: skip
    assert set(report.comparisons) == {"V1", "IT"}
    regions = open_run(run).regions()
    assert regions["regions"] == ["V1", "IT"]
    assert regions["best_layer"] == ["v1_dense", "out"]
    assert regions["named_layer"] == ["v1_dense", ""]
    assert regions["agrees"].tolist() == [1, -1]
    assert regions["scores"].shape == (2, 3)
    np.testing.assert_allclose(regions["scores"][0], open_run(run).comparison("V1")["score"])


def test_regions_need_every_file_named(batch_run, tmp_path):
    run, layers = batch_run
    np.save(tmp_path / "a.npy", model_rdm(layers["out"]))
    with pytest.raises(ConfigError, match="name every file"):
        compare(run, rdms=[f"V1={tmp_path / 'a.npy'}", str(tmp_path / "a.npy")], quiet=True)


def test_responses_give_an_rdm_and_encoding_models(tmp_path):
    rng = np.random.default_rng(6)
    n = 60
    layers = {
        "noise_a": rng.normal(size=(n, 30)).astype(np.float32),
        "planted": rng.normal(size=(n, 12)).astype(np.float32),
        "noise_b": rng.normal(size=(n, 8, 3)).astype(np.float32),
    }
    run = write_run(tmp_path / "run", layers, batch=16)
    weights = rng.normal(size=(12, 40))
    signal = layers["planted"].astype(np.float64) @ weights
    signal /= signal.std(axis=0)
    responses = signal[None] + rng.normal(scale=0.5, size=(4, n, 40))  # 4 repeats, SNR 4
    np.save(tmp_path / "cells.npy", responses)
    compare(run, responses=[str(tmp_path / "cells.npy")], bootstrap=50, pictures=False, quiet=True)
    result = open_run(run).comparison("cells")
    assert result["encoding"].shape == (3, 40)
    assert result["encoding_median"].argmax() == 1
    assert result["encoding_median"][1] > 0.7
    assert abs(result["encoding_median"][0]) < 0.3
    assert result["reliability"].shape == (40,)
    assert result["encoding_normalized"].shape == (3,)
    assert result["best_layer"] == "planted"  # the responses' RDM (crossnobis over repeats)


def test_grams_are_kept_and_reused(batch_run, tmp_path):
    run, layers = batch_run
    np.save(tmp_path / "r.npy", model_rdm(layers["out"]))
    compare(run, rdms=[str(tmp_path / "r.npy")], bootstrap=0, pictures=False, quiet=True)
    grams = sorted((run / "compare" / "grams").rglob("*.npy"))
    assert len(grams) == 3
    stamps = [p.stat().st_mtime_ns for p in grams]
    compare(run, rdms=[str(tmp_path / "r.npy")], name="again", method="spearman", bootstrap=0,
            pictures=False, quiet=True)  # fmt: skip
    assert [p.stat().st_mtime_ns for p in grams] == stamps
    assert open_run(run).comparisons == ["again", "r"]
