"""The compare pictures: the pure arrangement of an RDM for display checked against numpy and
scipy computed directly, and real PNGs read back (where the profile's intervals and noise
ceiling band lie, the colours of heatmap and RDM cells through their colormap) from runs
written through the store and comparisons written by ``compare_files``."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from analysis_helpers import write_run
from scipy.spatial.distance import pdist, squareform
from scipy.stats import rankdata, spearmanr
from test_analysis_pictures import assert_cells_read_back, assert_picture, read_png

from pipeline.rendering.compare import (
    draw_comparison,
    draw_epochs,
    draw_profile,
    draw_regions,
    epochs,
    mds,
    pictures,
    profile,
    rdm_order,
    rdms,
    regions,
    views,
)
from pipeline.store import compare_files, open_run

GREY = (0xDD, 0xDD, 0xDD)  # a missing value in a heatmap
SCORE_RGB = (0x4C, 0x72, 0xB0)  # profile.SCORE
WHITE = (255, 255, 255)
# profile.CEILING (200) at alpha 0.6 over white
BAND_RGB = tuple(round(255 - 0.6 * (255 - 200)) for _ in range(3))


@pytest.fixture
def drawn(monkeypatch) -> dict[Path, list[dict[str, Any]]]:
    """Per saved PNG, each axes' data-to-pixel transform (frozen) and its images (display
    extent, data array), read off the figure after its one real draw, just before
    ``save_figure`` releases it (drawn and saved exactly as without this)."""
    found: dict[Path, list[dict[str, Any]]] = {}
    for module in (profile, epochs, rdms, mds, regions):

        def spy(fig, path, real=module.save_figure):
            release = fig.clear

            def clear(*args, **kwargs):
                found[Path(path)] = [
                    {
                        "data": ax.transData.frozen(),
                        "images": [
                            (tuple(im.get_window_extent().extents), np.ma.getdata(im.get_array()))
                            for im in ax.images
                        ],
                        "patches": [p.get_xy() for p in ax.patches if hasattr(p, "get_xy")],
                        "texts": [t.get_text() for t in fig.texts],
                    }
                    for ax in fig.axes
                ]
                return release(*args, **kwargs)

            fig.clear = clear
            return real(fig, path)

        monkeypatch.setattr(module, "save_figure", spy)
    return found


def symmetric(rng: np.random.Generator, n: int, levels: int | None = None) -> np.ndarray:
    values = rng.integers(0, levels, n * (n - 1) // 2) if levels else rng.random(n * (n - 1) // 2)
    return squareform(values.astype(np.float64))


def quiet_nanmean(a: np.ndarray, axis: Any = None) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(a, axis=axis)


# -- rdm_order (pure) --------------------------------------------------------------------------
def test_rank_transform_is_scipy_rankdata_scaled_with_ties_and_nan():
    rng = np.random.default_rng(0)
    n = 12
    rdm = symmetric(rng, n, levels=7)  # many ties
    iu = np.triu_indices(n, 1)
    rdm[3, 7] = rdm[7, 3] = np.nan
    rdm[0, 5] = rdm[5, 0] = np.nan
    out = rank_out = rdm_order.rank_transform(rdm)
    values = rdm[iu]
    finite = np.isfinite(values)
    expected = np.full(values.shape, np.nan)
    expected[finite] = (rankdata(values[finite], method="average") - 1) / (finite.sum() - 1)
    np.testing.assert_array_equal(rank_out[iu], expected)
    np.testing.assert_array_equal(out, out.T)
    assert np.all(np.diag(out) == 0)
    assert np.isnan(out[3, 7]) and np.isnan(out[7, 3])
    distinct = rdm_order.rank_transform(symmetric(rng, 9))  # no ties: exactly 0 and 1
    assert np.nanmin(distinct[np.triu_indices(9, 1)]) == 0.0
    assert np.nanmax(distinct) == 1.0
    one = rdm_order.rank_transform(np.array([[0.0, 2.0], [2.0, 0.0]]))
    np.testing.assert_array_equal(one, np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"rdm: expected a square"):
        rdm_order.rank_transform(np.zeros((3, 4)))


def test_label_order_groups_stably():
    labels = np.array([2, 0, 2, 1, 0, 2])
    order, groups = rdm_order.label_order(labels, 6)
    assert order.tolist() == [1, 4, 3, 0, 2, 5]
    assert groups == [(0, 2, 0), (2, 3, 1), (3, 6, 2)]
    for start, stop, label in groups:
        assert np.all(labels[order[start:stop]] == label)
    order, groups = rdm_order.label_order(None, 4)
    assert order.tolist() == [0, 1, 2, 3] and groups == []
    order, groups = rdm_order.label_order(np.array([5, 5, 5]), 3)
    assert order.tolist() == [0, 1, 2] and groups == [(0, 3, 5)]
    with pytest.raises(ValueError, match=r"labels: expected 5 labels .* received 6"):
        rdm_order.label_order(labels, 5)


def test_classical_mds_reproduces_a_planted_configuration():
    rng = np.random.default_rng(1)
    planted = rng.normal(size=(30, 2)) * [3.0, 1.0]
    rdm = squareform(pdist(planted))
    coords = rdm_order.classical_mds(rdm, 2)
    # exact distances are recoverable from a 2-D configuration: only rounding separates them
    np.testing.assert_allclose(pdist(coords), pdist(planted), atol=1e-9 * rdm.max())
    # the same configuration up to rotation/reflection (orthogonal Procrustes) and centering
    a, b = planted - planted.mean(0), coords - coords.mean(0)
    u, _, vt = np.linalg.svd(a.T @ b)
    np.testing.assert_allclose(a @ (u @ vt), b, atol=1e-9 * rdm.max())
    # deterministic sign: each axis' largest-magnitude coordinate is positive
    for j in range(2):
        assert coords[np.argmax(np.abs(coords[:, j])), j] > 0
    # the same map (not a flipped one) whatever the conditions' order
    reordered = rdm_order.classical_mds(rdm[::-1, ::-1], 2)[::-1]
    np.testing.assert_allclose(reordered, coords, atol=1e-9 * rdm.max())
    # a NaN entry: the condition with the most NaN is left out (NaN coordinates)
    holed = rdm.copy()
    holed[4, 9] = holed[9, 4] = holed[4, 11] = holed[11, 4] = np.nan
    coords = rdm_order.classical_mds(holed, 2)
    assert np.isnan(coords[4]).all() and np.isfinite(np.delete(coords, 4, 0)).all()
    kept = np.delete(np.arange(30), 4)
    np.testing.assert_allclose(pdist(coords[kept]), pdist(planted[kept]), atol=1e-9 * rdm.max())
    # a line: the second dimension is 0
    line = squareform(pdist(np.arange(6.0)[:, None]))
    coords = rdm_order.classical_mds(line, 2)
    np.testing.assert_allclose(coords[:, 1], 0.0, atol=1e-7)
    np.testing.assert_allclose(pdist(coords), pdist(np.arange(6.0)[:, None]), atol=1e-9)


def test_mean_reference_is_nan_aware():
    rng = np.random.default_rng(2)
    refs = np.stack([symmetric(rng, 8) for _ in range(3)])
    refs[0, 1, 2] = refs[0, 2, 1] = np.nan
    refs[:, 3, 4] = refs[:, 4, 3] = np.nan  # NaN in every reference
    mean = rdm_order.mean_reference(refs)
    np.testing.assert_allclose(mean, quiet_nanmean(refs, axis=0), rtol=1e-15, atol=0)
    assert np.isnan(mean[3, 4]) and mean[1, 2] == pytest.approx((refs[1, 1, 2] + refs[2, 1, 2]) / 2)


def test_downsample_is_block_means():
    rng = np.random.default_rng(3)
    rdm = symmetric(rng, 10)
    rdm[0, 1] = rdm[1, 0] = np.nan
    rdm[6:8, 6:8] = np.nan  # one whole block of the 4 x 4 reduction below has no value
    out = rdm_order.downsample(rdm, 4)
    starts = rdm_order.block_starts(10, 4)
    assert starts.tolist() == [0, 2, 5, 7]
    edges = [*starts.tolist(), 10]
    expected = np.array(
        [
            [quiet_nanmean(rdm[edges[i] : edges[i + 1], edges[j] : edges[j + 1]]) for j in range(4)]
            for i in range(4)
        ]
    )
    np.testing.assert_allclose(out, expected, rtol=1e-15, atol=0)
    assert out.shape == (4, 4)
    big = symmetric(rng, 1000)
    small = rdm_order.downsample(big, 240)
    assert small.shape == (240, 240)
    assert small[0, 1] == pytest.approx(big[0:4, 4:8].mean(), rel=1e-12)  # 1000 / 240: 4 or 5
    np.testing.assert_array_equal(rdm_order.downsample(rdm, 10), rdm)
    with pytest.raises(ValueError, match="size: expected at least 1"):
        rdm_order.downsample(rdm, 0)


# -- what the pictures show (pure) -------------------------------------------------------------
def test_group_boundaries_on_a_reduced_rdm():
    groups = [(0, 4, 0), (4, 5, 1), (5, 10, 2)]
    assert views.boundaries(groups, 10, 10) == [3.5, 4.5]
    # 10 conditions in 5 blocks of 2: condition 4 starts block 2, condition 5 is its middle
    assert views.boundaries(groups, 10, 5) == [1.5, 2.0]
    assert views.boundaries(groups[:1], 10, 5) == []


def test_profile_and_epoch_views_pick_the_last_epoch():
    layers = ["a", "b", "c"]
    score = np.array([[0.1, 0.3, 0.2], [0.2, 0.1, 0.5]])
    comparison = {
        "layers": layers,
        "epochs": [3, 7],
        "score": score,
        "ci": np.stack([score - 0.1, score + 0.1], -1),
        "noise_ceiling": (0.4, math.nan),
        "best_layer": ["b", "c"],
        "best_layer_p": np.array([0.6, 0.9]),
    }
    view = views.profile_view(comparison)
    assert view.epoch == 7 and view.best == 2 and view.best_p == 0.9
    np.testing.assert_array_equal(view.score, score[1])
    assert views.band(view.ceiling) is None and views.band((0.2, 0.4)) == (0.2, 0.4)
    assert views.profile_view(comparison, 3).best == 1
    with pytest.raises(ValueError, match=r"epoch: expected one of \[3, 7\], received 5"):
        views.profile_view(comparison, 5)
    grid, best = views.epoch_grid(comparison)
    np.testing.assert_array_equal(grid, score.T)
    assert best.tolist() == [1, 2]
    assert views.best_index(layers, None, np.array([np.nan, 2.0, 1.0])) == 1
    assert views.best_index(layers, None, np.array([np.nan] * 3)) == -1
    assert views.score_scale(np.array([-0.2, 0.5])) == ("RdBu_r", (-0.5, 0.5))
    assert views.score_scale(np.array([0.1, 0.5, np.nan])) == ("viridis", (0.1, 0.5))
    assert views.tick_rotation(["a", "b"]) == 0
    assert views.tick_rotation([f"layer_{i}" for i in range(12)]) == 45
    assert views.tick_rotation([f"l{i}" for i in range(40)]) == 90


def test_regions_view_and_lines_of_agreement():
    reg = {
        "regions": ["V1", "IT", "V4"],
        "layers": ["conv", "v1", "it_layer", "dense"],
        "scores": np.array([[0.1, 0.5, 0.2, 0.0], [0.3, 0.1, 0.2, 0.1], [0.0, 0.1, 0.4, 0.2]]),
        "best_layer": ["v1", "conv", "it_layer"],
        "best_layer_p": np.array([0.8, 0.55, 0.7]),
        "named_layer": ["v1", "it_layer", ""],
        "agrees": np.array([1, 0, -1], np.int8),
    }
    view = views.regions_view(reg)
    assert view.best.tolist() == [1, 0, 2] and view.named.tolist() == [1, 2, -1]
    lines = [
        views.agreement_line(
            view.regions[r],
            view.layers,
            view.best[r],
            view.best_p[r],
            view.named[r],
            view.agrees[r],
        )
        for r in range(3)
    ]
    assert lines[0].startswith("V1: yes, 'v1'") and "80 %" in lines[0]
    assert lines[1] == (
        "IT: no, 'it_layer' is named after it but the data prefer 'conv' (best in 55 % of "
        "bootstrap samples)"
    )
    assert lines[2].startswith("V4: no layer is named after it; the data prefer 'it_layer'")


# -- pictures read back ------------------------------------------------------------------------
def pixel(transform: Any, height: int, x: float, y: float) -> tuple[int, int]:
    """(row, col) of the page pixel holding data point (x, y)."""
    px, py = transform.transform((x, y))
    return int(height - py), int(px)


def near(rgb: np.ndarray, target: tuple[int, ...], tol: int = 3) -> np.ndarray:
    return np.all(np.abs(rgb.astype(int) - np.array(target)) <= tol, axis=-1)


def test_profile_intervals_and_ceiling_band_lie_where_the_numbers_put_them(tmp_path, drawn):
    layers = ["conv1", "conv2", "pool", "dense1", "dense2"]
    score = np.array([0.05, 0.21, 0.33, 0.26, 0.12])
    ci = np.stack(
        [score - [0.04, 0.05, 0.03, 0.08, 0.02], score + [0.02, 0.06, 0.05, 0.03, 0.07]], -1
    )
    view = views.Profile(layers, score, ci, (0.38, 0.46), 2, 0.74, None, None)
    path = draw_profile(view, tmp_path / "profile.png", "v1: tau-a", "tau-a")
    pixels = assert_picture(path, 500, 400)
    height = pixels.shape[0]
    data = drawn[path][0]["data"]
    for i in range(len(layers)):
        top, col = pixel(data, height, i, ci[i, 1])
        bottom, _ = pixel(data, height, i, ci[i, 0])
        column = near(pixels[:, col], SCORE_RGB, 40)
        rows = np.flatnonzero(column[top - 12 : bottom + 13]) + top - 12
        # the bar and its caps (1.2 pt lines) span exactly the interval, to a pixel and a half
        assert abs(rows.min() - top) <= 2 and abs(rows.max() - bottom) <= 2, (i, rows, top, bottom)
    for i in range(len(layers) - 1):  # between two layers: band inside, white around it
        lo_row, col = pixel(data, height, i + 0.5, 0.38)
        hi_row, _ = pixel(data, height, i + 0.5, 0.46)
        mid = (lo_row + hi_row) // 2
        assert near(pixels[mid, col], BAND_RGB).all()
        assert near(pixels[hi_row + 3 : lo_row - 2, col], BAND_RGB).all()
        assert (
            near(pixels[hi_row - 3, col], WHITE).all()
            and near(pixels[lo_row + 3, col], WHITE).all()
        )
    unknown = views.Profile(layers, score, ci, (math.nan, math.nan), 2, 0.74, None, None)
    path = draw_profile(unknown, tmp_path / "no-ceiling.png")
    pixels = read_png(path)
    data = drawn[path][0]["data"]
    top, col = pixel(data, pixels.shape[0], 0.5, 0.38)  # the highest interval's end
    bottom, _ = pixel(data, pixels.shape[0], 0.5, 0.02)
    assert not near(pixels[top:bottom, col], BAND_RGB).any()  # no band anywhere
    assert near(pixels[top:bottom, col], WHITE).mean() > 0.9


def test_epochs_heatmap_has_a_cell_per_layer_and_epoch(tmp_path, drawn):
    rng = np.random.default_rng(4)
    values = rng.uniform(0.0, 0.6, size=(5, 7))
    values[1, 3] = np.nan
    best = np.nanargmax(values, axis=0)
    path = draw_epochs(
        [f"block_{i}/conv" for i in range(5)],
        range(7),
        values,
        best,
        tmp_path / "e.png",
        (0.3, 0.5),
    )
    pixels = assert_picture(path, 400, 300)
    (heat, _bar) = drawn[path]
    ((extent, shown),) = heat["images"]
    assert shown.shape == (5, 7)
    cmap, limits = views.score_scale(values)
    assert_cells_read_back(pixels, extent, values, cmap, limits, GREY)
    frames = sorted((round(x + 0.5), round(y + 0.5)) for x, y in heat["patches"])
    assert frames == sorted(zip(range(7), best.tolist(), strict=True))


def planted_run(root: Path, training: bool) -> tuple[Path, dict[str, np.ndarray], list[int]]:
    """A run of 24 patterns in 3 label groups whose layers hold the groups more or less
    clearly (and more clearly as epochs pass)."""
    rng = np.random.default_rng(5)
    n = 24
    labels = np.repeat(np.arange(3), n // 3)
    base = (rng.normal(size=(3, 6)) * 3)[labels] + rng.normal(size=(n, 6))
    eps = [0, 1, 2] if training else None
    layers = {}
    for i, name in enumerate(["input_conv", "V1", "block/dense", "IT"]):
        w = rng.normal(size=(6, 10 + i))

        def at(noise: float, w=w, i=i) -> np.ndarray:
            return (base @ w + rng.normal(size=(n, 10 + i)) * noise).astype(np.float32)

        layers[name] = np.stack([at(4.0 - e) for e in eps]) if training else at(1.0 + i)
    write_run(root, layers, batch=8, epochs=eps)
    return root, layers, labels.tolist()


def write_planted_comparison(
    root: Path, layers: dict[str, np.ndarray], labels: list[int], training: bool
):
    """A comparison whose scores are the Spearman correlations of the layers' RDMs (scipy, on
    the stored float32 values) with 2 reference RDMs, over the conditions in a shuffled order."""
    rng = np.random.default_rng(6)
    n = len(labels)
    conditions = rng.permutation(n)
    lab = np.asarray(labels)[conditions]
    groups = (rng.normal(size=(3, 6)) * 3)[lab]
    refs = np.stack(
        [squareform(pdist(groups + rng.normal(size=(n, 6)), "correlation")) for _ in range(2)]
    )
    names = list(layers)

    def scores_at(e: int | None) -> np.ndarray:
        out = np.zeros((len(names), 2))
        for i, name in enumerate(names):
            x = layers[name][e] if e is not None else layers[name]
            model = pdist(x[conditions].astype(np.float64), "correlation")
            for s in range(2):
                out[i, s] = spearmanr(model, squareform(refs[s], checks=False)).statistic
        return out

    eps = [0, 1, 2] if training else [None]
    scores = np.stack([scores_at(e) for e in eps])
    score = scores.mean(-1)
    arrays: dict[str, Any] = {
        "layers": np.array(names),
        "references": np.array(["s1", "s2"]),
        "method": np.array("spearman"),
        "distance": np.array("correlation"),
        "scores": scores if training else scores[0],
        "score": score if training else score[0],
        "noise_ceiling": np.array([0.5, 0.7]),
        "ci": np.stack([score - 0.05, score + 0.05], -1)
        if training
        else np.stack([score[0] - 0.05, score[0] + 0.05], -1),
        "best_layer": np.array(names)[score.argmax(-1)]
        if training
        else np.array(names[int(score[0].argmax())]),
        "best_layer_p": np.full(3, 0.7) if training else np.array(0.7),
    }
    if training:
        arrays["epochs"] = np.array(eps)
    info = {
        "name": "v1",
        "sources": ["v1.npy"],
        "conditions": conditions.tolist(),
        "labels": lab.tolist(),
        "bootstrap": 100,
        "seed": 0,
        "region": None,
        "kind": "rsa",
    }
    compare_files.write_comparison(root, "v1", arrays, refs, info)
    return conditions, lab, refs, score


@pytest.mark.parametrize("training", [False, True], ids=["batch", "training"])
def test_draw_comparison_from_a_stored_run(tmp_path, drawn, training):
    root, layers, labels = planted_run(tmp_path / "run", training)
    conditions, lab, refs, score = write_planted_comparison(root, layers, labels, training)
    run = open_run(root)
    last = -1 if training else None
    # the model RDM in the comparison's condition order is scipy's on the stored values
    stored = layers["V1"][last] if training else layers["V1"]
    expected = squareform(pdist(stored[conditions].astype(np.float64), "correlation"))
    got = pictures.model_rdm(run, "V1", "correlation", 2 if training else None, conditions)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    paths = draw_comparison(run, "v1", quiet=True)
    folder = root / "compare" / "v1"
    names = (
        ["profile.png", "epochs.png", "rdms.png", "mds.png"]
        if training
        else ["profile.png", "rdms.png", "mds.png"]
    )
    assert paths == [folder / n for n in names]
    for p in paths:
        assert_picture(p, 400, 300)
    if training:
        pixels = read_png(folder / "epochs.png")
        ((extent, shown),) = drawn[folder / "epochs.png"][0]["images"]
        assert shown.shape == (4, 3)  # layers x epochs
        cmap, limits = views.score_scale(score.T)
        assert_cells_read_back(pixels, extent, score.T, cmap, limits, GREY)
    # the RDM sheet: the reference (mean of 2) then each layer, ranked, grouped by label
    pixels = read_png(folder / "rdms.png")
    panels = [i for ax in drawn[folder / "rdms.png"] for i in ax["images"]]
    assert len(panels) == 1 + len(layers)
    order, _ = rdm_order.label_order(lab, len(lab))
    ranked = [rdm_order.rank_transform(rdm_order.mean_reference(refs))]
    for name in layers:
        x = layers[name][last] if training else layers[name]
        ranked.append(
            rdm_order.rank_transform(
                squareform(pdist(x[conditions].astype(np.float64), "correlation"))
            )
        )
    for (extent, shown), want in zip(panels, ranked, strict=True):
        want = want[np.ix_(order, order)]
        np.testing.assert_allclose(shown, want, atol=1e-6)
        assert_cells_read_back(pixels, extent, want, "viridis", (0.0, 1.0), GREY)
    assert draw_regions(run) is None


def test_rdm_sheet_of_many_conditions_is_block_means(tmp_path, drawn):
    rng = np.random.default_rng(7)
    n = 600
    rdm = symmetric(rng, n)
    labels = rng.integers(0, 4, n)
    order, groups = rdm_order.label_order(labels, n)
    panel = rdms.Panel("layer", rdms.display_rdm(rdm, order))
    path = rdms.draw_rdms([panel, rdms.Panel("damaged", None)], n, tmp_path / "r.png", groups)
    ((extent, shown),) = drawn[path][0]["images"]
    assert shown.shape == (rdms.DISPLAY, rdms.DISPLAY)
    np.testing.assert_allclose(
        shown,
        rdm_order.downsample(rdm_order.rank_transform(rdm)[np.ix_(order, order)], rdms.DISPLAY),
    )


def test_regions_picture(tmp_path, drawn):
    root, layers, _ = planted_run(tmp_path / "run", False)
    names = list(layers)
    scores = np.array([[0.1, 0.5, 0.2, 0.0], [0.3, 0.1, 0.2, 0.1]])
    compare_files.write_regions(
        root,
        {
            "regions": np.array(["V1", "IT"]),
            "layers": np.array(names),
            "scores": scores,
            "ci": np.stack([scores - 0.1, scores + 0.1], -1),
            "best_layer": np.array(["V1", "input_conv"]),
            "best_layer_p": np.array([0.8, 0.55]),
            "named_layer": np.array(["V1", "IT"]),
            "agrees": np.array([1, 0], np.int8),
        },
    )
    path = draw_regions(open_run(root))
    assert path == root / "compare" / "regions.png"
    pixels = assert_picture(path, 400, 200)
    heat = drawn[path][0]
    ((extent, shown),) = heat["images"]
    cmap, limits = views.score_scale(scores)
    assert_cells_read_back(pixels, extent, scores, cmap, limits, GREY)
    best = [(round(x + 0.5), round(y + 0.5)) for x, y in heat["patches"][0::2]]
    named = [(round(x + 0.42), round(y + 0.42)) for x, y in heat["patches"][1::2]]
    assert best == [(1, 0), (0, 1)] and named == [(1, 0), (3, 1)]
    lines = "\n".join(heat["texts"])
    assert "V1: yes, 'V1'" in lines and "IT: no, 'IT' is named after it" in lines


def test_the_mds_legend_names_a_training_runs_classes():
    from pipeline.rendering.compare.mds import figure_mds

    coords = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    fig = figure_mds(coords, np.array([0, 1, 1, 3]), "t", names=["horizontal", "vertical"])
    legend = fig.axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["horizontal", "vertical", "3"]
