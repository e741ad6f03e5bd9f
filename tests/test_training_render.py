"""Render of runs with epochs, from a store written without TensorFlow: evolution sheets,
animations (one frame per record, fixed color scales), stats.png, and the pure helpers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline import open_run
from pipeline.errors import RenderError
from pipeline.rendering import render
from pipeline.rendering import timeline as tl
from pipeline.rendering.cells import DrawReport, GridOptions
from pipeline.rendering.grids import page_title
from pipeline.rendering.training.animation import Animator
from pipeline.rendering.training.epochs import complete_keys, gather
from pipeline.rendering.training.evolution import EvolutionPainter, sheet_cells
from pipeline.rendering.training.stats import stats_series
from pipeline.store import RunWriter
from pipeline.store.naming import layer_dir

REPO = Path(__file__).resolve().parents[1]
LAYERS = {"a": (6, 4), "b": (5,)}


def make_run(
    path: Path,
    keys: tuple[int, ...] = (0, 1, 2, 3),
    n: int = 5,
    partial: int | None = None,
    unit: str = "epoch",
) -> dict[tuple[str, int], np.ndarray]:
    """A training run whose outputs grow in range with each record; returns the data."""
    records = [
        {
            "index": i + 1,
            "name": name,
            "class": "Dense",
            "shape": list(shape),
            "dir": layer_dir(i + 1, name),
        }
        for i, (name, shape) in enumerate(LAYERS.items())
    ]
    info = {
        "mode": "train",
        "model": "synthetic",
        "layers": records,
        "num_patterns": n,
        "fingerprint": "synthetic",
        "time": {"unit": unit},
        "watch": {"labels": [i % 2 for i in range(n)], "class_names": ["cat", "dog"]},
    }
    rng = np.random.default_rng(0)
    written = {}
    with RunWriter(path, info) as w:
        for k in keys:
            for name, shape in LAYERS.items():
                arr = (rng.normal(size=(n, *shape)) * (k + 1)).astype(np.float32)
                arr[arr < -1.5] = 0.0
                written[(name, k)] = arr
                w.write(name, k, 0, arr[:3])
                w.write(name, k, 3, arr[3:])
            if k:
                w.append_metrics({"epoch": k, "step": 10 * k, "loss": 1.0 / k, "accuracy": k / 4})
        if partial is not None:
            w.write("a", partial, 0, np.ones((3, 6, 4), np.float32))
    return written


def test_render_draws_every_training_picture(tmp_path: Path) -> None:
    make_run(tmp_path / "run")
    out = tmp_path / "pics"
    report = render(tmp_path / "run", out, quiet=True, workers=1)
    assert report.problems == []
    assert (out / "stats.png").is_file()
    for p in range(5):
        assert (out / f"pattern-{p}" / "0.png").is_file()  # last-epoch grid
        for i, name in enumerate(LAYERS):
            assert (out / "evolution" / f"pattern-{p}" / f"{layer_dir(i + 1, name)}.png").is_file()
        with Image.open(out / "animation" / f"pattern-{p}.gif") as gif:
            assert gif.n_frames == 4
    # 5 grid pages + 5 x 2 evolution sheets + 5 animations + stats.png
    assert report.pages == 5 + 10 + 5 + 1


# matplotlib's default colour cycle: the first, second and fourth lines of an axes
C0, C1, C3 = (0x1F, 0x77, 0xB4), (0xFF, 0x7F, 0x0E), (0xD6, 0x27, 0x28)


def test_stats_draws_each_layers_statistics_per_record(tmp_path: Path) -> None:
    data = make_run(tmp_path / "run")
    run = open_run(tmp_path / "run")
    keys = complete_keys(run)
    stats: dict = {}
    gather(run, keys, [], GridOptions(), DrawReport(), stats)  # render's statistics pass
    series = stats_series(run.layers, keys, stats)
    assert list(series) == ["mean", "standard deviation", "fraction of zeros (dead ReLUs)"]
    expected = {
        "mean": np.mean,
        "standard deviation": np.std,
        "fraction of zeros (dead ReLUs)": lambda a: np.mean(a == 0),
    }
    for title, lines in series.items():
        assert list(lines) == list(LAYERS)  # one line per layer
        for name, (xs, ys) in lines.items():
            assert xs == [0, 1, 2, 3]  # one point per record, over all watched patterns
            want = [expected[title](data[(name, k)].astype(np.float64)) for k in xs]
            assert ys == pytest.approx(want, rel=1e-6, abs=1e-9), (title, name)
    render(run, tmp_path / "pics", patterns="0", quiet=True, workers=1)
    img = np.asarray(Image.open(tmp_path / "pics" / "stats.png").convert("RGB"))
    assert img.shape == (800, 1200, 3)  # figsize 12x8 at 100 dpi
    h, w = 400, 600

    def has(quadrant: np.ndarray, color: tuple[int, int, int]) -> bool:
        return int((quadrant == color).all(-1).sum()) > 50

    for r, c in ((0, 0), (0, 1), (1, 0)):  # mean, std, zeros: a line for each of the 2 layers
        quadrant = img[r * h : (r + 1) * h, c * w : (c + 1) * w]
        assert has(quadrant, C0) and has(quadrant, C1), (r, c)
    curves = img[h:, w:]  # the loss (first line) and accuracy (dashed, C3) from metrics.jsonl
    assert has(curves, C0) and has(curves, C3) and not has(curves, C1)


def test_evolution_sheet_cells_one_per_record_at_one_scale() -> None:
    images = [np.full((2, 2), k, np.float32) for k in range(3)]
    images[1] = None
    cells = sheet_cells(["epoch 0", "epoch 1", "epoch 2"], images, (-1.0, 5.0), [0, 1, 2])
    assert [c.title for c in cells] == ["epoch 0", "epoch 1", "epoch 2"]
    assert cells[0].image is images[0] and cells[2].image is images[2]
    assert [(c.vmin, c.vmax) for c in (cells[0], cells[2])] == [(-1.0, 5.0)] * 2
    assert cells[1].image is None and cells[1].problem == "data missing or damaged"
    assert [c.title for c in sheet_cells(["a", "b", "c"], images, (0.0, 1.0), [2])] == ["c"]


def test_evolution_sheet_shows_each_record_at_the_layers_fixed_scale(tmp_path: Path) -> None:
    data = make_run(tmp_path / "run")
    run = open_run(tmp_path / "run")
    render(run, tmp_path / "pics", cmap="gray", patterns="2", quiet=True, workers=1)
    sheet = tmp_path / "pics" / "evolution" / "pattern-2"
    assert sorted(p.name for p in sheet.iterdir()) == [
        f"{layer_dir(i + 1, name)}.png" for i, name in enumerate(LAYERS)
    ]
    pixels = np.asarray(Image.open(sheet / f"{layer_dir(1, 'a')}.png").convert("L"), float)
    assert pixels.shape == (500, 440)  # 4 records: a 2x2 sheet of 2.2-inch cells
    lo, hi = tl.layer_limits(run.entries, run.layers)["a"]
    images = [data[("a", k)][2] for k in range(4)]
    # Where each cell lands: a painter laid out as render's (the same sheet, drawn here).
    painter = EvolutionPainter(4, GridOptions(cmap="gray"))
    try:
        painter.draw(tmp_path / "geometry", "a", "t", ["x"] * 4, images, (lo, hi))
        boxes = [ax.get_window_extent() for ax in painter.painter.axes]
    finally:
        painter.close()
    for k, (box, image) in enumerate(zip(boxes, images, strict=True)):
        top, bottom = pixels.shape[0] - box.y1, pixels.shape[0] - box.y0
        h, w = image.shape
        ys = (top + (np.arange(h) + 0.5) * (bottom - top) / h).astype(int)
        xs = (box.x0 + (np.arange(w) + 0.5) * (box.x1 - box.x0) / w).astype(int)
        drawn = pixels[np.ix_(ys, xs)]
        # the stored values of record k, grey over the layer's range across all records
        want = np.clip((image - lo) / (hi - lo), 0, 1) * 255
        assert np.abs(drawn - want).max() < 8, (k, np.abs(drawn - want).max())


def test_gif_has_one_frame_per_complete_record(tmp_path: Path) -> None:
    make_run(tmp_path / "run", keys=(0, 2, 4, 6, 8, 10, 12), partial=14)
    run = open_run(tmp_path / "run")
    assert run.epochs[-1] == 14
    assert complete_keys(run) == [0, 2, 4, 6, 8, 10, 12]
    report = render(run, tmp_path / "pics", patterns="1", quiet=True, workers=1)
    with Image.open(tmp_path / "pics" / "animation" / "pattern-1.gif") as gif:
        assert gif.n_frames == 7
    assert not (tmp_path / "pics" / "animation" / "pattern-0.gif").exists()
    assert report.problems == []
    assert (tmp_path / "pics" / "pattern-1" / "0.png").is_file()  # grid of epoch 12


def test_color_scale_is_the_manifest_range_over_all_records(tmp_path: Path) -> None:
    data = make_run(tmp_path / "run")
    run = open_run(tmp_path / "run")
    limits = tl.layer_limits(run.entries, run.layers)
    for name in LAYERS:
        everything = np.concatenate([data[(name, k)].ravel() for k in (0, 1, 2, 3)])
        assert limits[name] == pytest.approx((everything.min(), everything.max()))
        last = data[(name, 3)]
        assert limits[name] != pytest.approx((last.min(), last.max()))  # not per record


def test_animation_color_limits_never_move_between_frames(tmp_path: Path) -> None:
    limits = [(-2.0, 2.0), (0.0, 10.0)]
    animator = Animator(["a (6, 4)", "b (5,)"], limits)
    try:
        for scale in (0.1, 1.0, 50.0):
            frame = [
                np.full((6, 4), scale, np.float32),
                np.arange(6, dtype=np.float32).reshape(2, 3) * scale,
            ]
            animator.show_frame(frame, f"x{scale}")
            assert animator.clims() == limits
        animator.write(tmp_path / "a.gif", [frame, frame], ["one", "two"])
        assert animator.clims() == limits
    finally:
        animator.close()
    with Image.open(tmp_path / "a.gif") as gif:
        assert gif.n_frames == 2


def test_damaged_file_is_reported_or_raised_with_strict(tmp_path: Path) -> None:
    make_run(tmp_path / "run")
    run = open_run(tmp_path / "run")
    victim = run.chunks("b", 2)[0]
    (run.path / victim.path).write_bytes(b"not an npy file")
    report = render(run, tmp_path / "pics", quiet=True, workers=1)
    assert any(victim.path in p for p in report.problems)
    with Image.open(tmp_path / "pics" / "animation" / "pattern-0.gif") as gif:
        assert gif.n_frames == 4
    with pytest.raises(RenderError):
        render(run, tmp_path / "strict", quiet=True, workers=1, strict=True)


def test_a_flipped_byte_in_a_record_is_reported_not_drawn(tmp_path: Path) -> None:
    make_run(tmp_path / "run")
    run = open_run(tmp_path / "run")
    victim = run.chunks("a", 1)[0]  # not the last record, which the grid pages check too
    raw = bytearray((run.path / victim.path).read_bytes())
    raw[-5] ^= 0x40  # same size, same header: only the checksum can tell
    (run.path / victim.path).write_bytes(bytes(raw))
    report = render(run, tmp_path / "pics", quiet=True, workers=1)
    assert any(victim.path in p and "checksum" in p for p in report.problems)
    with pytest.raises(RenderError, match="checksum"):
        render(run, tmp_path / "strict", quiet=True, workers=1, strict=True)


def test_timeline_labels_losses_and_curves() -> None:
    lines = [
        {"epoch": 1, "step": 5, "loss": 0.5, "accuracy": 0.7},
        {"epoch": 2, "step": 10, "loss": 0.25},
    ]
    t = tl.Timeline.from_run({"time": {"unit": "epoch"}}, lines)
    assert t.label(2) == "epoch 2"
    assert t.frame_title("pattern 1 (dog)", 0) == "pattern 1 (dog) · epoch 0 · before training"
    assert t.frame_title("pattern 1 (dog)", 2) == "pattern 1 (dog) · epoch 2 · loss 0.2500"
    assert t.frame_title("p", 3) == "p · epoch 3 · loss n/a"
    assert t.curves() == {"loss": ([1, 2], [0.5, 0.25]), "accuracy": ([1], [0.7])}
    steps = tl.Timeline.from_run(
        {"time": {"unit": "step"}}, [*lines, {"scope": "batch", "step": 4, "epoch": 0, "loss": 0.9}]
    )
    assert steps.label(5) == "step 5 (epoch 1)"
    assert steps.label(4) == "step 4"
    assert steps.loss(4) == 0.9
    assert steps.curves()["loss"] == ([5, 10], [0.5, 0.25])
    assert page_title(3, None, steps.label(5), 0, 2) == "pattern 3, step 5 (epoch 1) (page 1/2)"
    assert page_title(0, "cat.png", None, 0, 1) == "pattern 0 (cat.png)"


def test_pattern_label_sheet_pages_groups_and_stats() -> None:
    info = {"watch": {"labels": [0, 4], "class_names": ["h", "v", "d", "a", "checker"]}}
    assert tl.pattern_label(info, 1) == "pattern 1 (checker)"
    assert tl.pattern_label(info, 7) == "pattern 7"
    assert tl.sheet_pages(21) == ((5, 5), [list(range(21))])
    grid, pages = tl.sheet_pages(40, max_cells=36)
    assert grid == (6, 6) and [len(p) for p in pages] == [36, 4]
    assert tl.pattern_groups(10, 100, 350) == [range(0, 3), range(3, 6), range(6, 9), range(9, 10)]
    a = np.array([[0.0, 1.0, 2.0], [0.0, 4.0, np.nan]])
    s = tl.LayerStats()
    s.add(a[0])
    s.add(a[1])
    finite = np.array([0.0, 1.0, 2.0, 0.0, 4.0])
    assert s.mean == pytest.approx(finite.mean())
    assert s.std == pytest.approx(finite.std())
    assert s.zero_fraction == pytest.approx(0.4)


def test_render_of_a_training_run_never_imports_tensorflow(tmp_path: Path) -> None:
    make_run(tmp_path / "run", keys=(0, 1))
    code = (
        "import sys; from pipeline.rendering import render; "
        f"r = render({str(tmp_path / 'run')!r}, {str(tmp_path / 'pics')!r}, quiet=True, workers=1); "
        "assert not r.problems, r.problems; "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'imported TF'"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "pics" / "stats.png").is_file()
