"""Render: grid pages from the store, the architecture drawing, the article's one call."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from externals import need_graphviz
from helpers_diagram import assert_model_png
from PIL import Image

from pipeline import open_run, plot_pattern_process, render
from pipeline.capturing.stream import capture_model
from pipeline.config import CaptureConfig, Config, SelectConfig
from pipeline.errors import ConfigError
from pipeline.rendering import layout
from pipeline.rendering.cells import Cell, GridOptions
from pipeline.rendering.grids import PagePainter

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def seed_run(tmp_path_factory, seed_model):
    out = tmp_path_factory.mktemp("render") / "run"
    cfg = Config(
        capture=CaptureConfig(out=str(out), patterns="random:3", batch_size=2),
        select=SelectConfig(rule="all"),
    )
    return capture_model(seed_model, cfg, quiet=True)


def test_pages_follow_the_grid(seed_run, tmp_path):
    # 'all' selects 6 layers: a 2x2 grid makes 2 pages, 3x3 one page, 1x1 six pages.
    for grid, expected in (((2, 2), 2), ((3, 3), 1), ((1, 1), 6)):
        out = tmp_path / f"g{grid[0]}"
        report = render(seed_run, out, grid=grid, quiet=True)
        assert report.pages == 3 * expected and not report.problems
        for p in range(3):
            assert sorted(f.name for f in (out / f"pattern-{p}").iterdir()) == [
                f"{i}.png" for i in range(expected)
            ]
        with Image.open(out / "pattern-0" / "0.png") as img:
            assert img.size == (1000, 1000)  # figsize 10x10 at 100 dpi, the article's


def test_render_selected_patterns_and_default_out(seed_run):
    report = render(seed_run.path, patterns="2", quiet=True)
    assert report.out == seed_run.path / "render"
    assert [p.name for p in report.out.iterdir() if p.is_dir()] == ["pattern-2"]


def test_painter_hides_unused_cells_and_titles_with_name_and_shape(tmp_path):
    painter = PagePainter(GridOptions(rows=2, cols=2))
    cells = [Cell(layout.cell_title("dense", (50, 75)), image=np.ones((50, 75)))] * 3
    painter.draw(cells, tmp_path / "a.png")
    assert [ax.get_visible() for ax in painter.axes] == [True, True, True, False]
    assert painter.axes[0].get_title() == "dense (50, 75)"
    # the same figure is reused: a second pattern swaps the data, the artist stays
    first_image = painter.images[0]
    painter.draw([Cell("x (2, 2)", image=np.arange(4.0).reshape(2, 2))], tmp_path / "b.png")
    assert painter.images[0] is not first_image  # a new shape needs a new artist
    painter.draw([Cell("x (2, 2)", image=np.ones((2, 2)))], tmp_path / "c.png")
    assert painter.axes[1].get_visible() is False
    assert (tmp_path / "c.png").stat().st_size > 0


def test_rendered_cells_show_the_stored_data(tmp_path, seed_model):
    # A 1x1 grid with one layer: the picture's pixels follow the stored array's values.
    cfg = Config(
        capture=CaptureConfig(out=str(tmp_path / "r"), patterns="random:1", architecture=False),
        select=SelectConfig(include=("my_dense",)),
    )
    run = capture_model(seed_model, cfg, quiet=True)
    render(run, tmp_path / "o", grid=(1, 1), cmap="gray", quiet=True)
    data = run.get("my_dense", 0)
    with Image.open(tmp_path / "o" / "pattern-0" / "0.png") as img:
        pixels = np.asarray(img.convert("L"), dtype=float)
    # the brightest stored value is drawn white somewhere, the darkest black
    assert pixels.max() > 250 and pixels.min() < 5
    assert data.max() > data.min()
    # the image: the block of rows and columns that are almost all non-white
    rows = np.flatnonzero((pixels < 250).mean(axis=1) > 0.5)
    cols = np.flatnonzero((pixels < 250).mean(axis=0) > 0.5)
    top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    h, w = data.shape
    # the pixel at the centre of each stored value's square, against the value itself
    ys = (top + (np.arange(h) + 0.5) * (bottom - top) / h).astype(int)
    xs = (left + (np.arange(w) + 0.5) * (right - left) / w).astype(int)
    drawn = pixels[np.ix_(ys, xs)]
    want = (data - data.min()) / (data.max() - data.min()) * 255
    assert np.abs(drawn - want).max() < 8, np.abs(drawn - want).max()


def test_render_never_imports_tensorflow(seed_run, tmp_path):
    code = (
        "import sys; from pipeline import render; "
        f"r = render({str(seed_run.path)!r}, {str(tmp_path / 'o')!r}, quiet=True); "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'TF imported'; "
        "print(r.pages)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "3"


def test_architecture_png_with_graphviz(tmp_path, seed_model):
    need_graphviz()
    cfg = Config(capture=CaptureConfig(out=str(tmp_path / "a"), patterns="random:1"))
    run = capture_model(seed_model, cfg, quiet=True)
    assert_model_png(run.path, seed_model, tmp_path)
    render(run, tmp_path / "ra", quiet=True)
    for name in ("model.png", "model.txt"):
        assert (tmp_path / "ra" / name).read_bytes() == (run.path / name).read_bytes()


def test_architecture_png_without_graphviz(tmp_path, seed_model, monkeypatch):
    # Without Graphviz's `dot` on the PATH, matplotlib draws model.png (a page of its own
    # palette, not Keras' plot_model picture); the summary is beside it either way.
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    cfg = Config(capture=CaptureConfig(out=str(tmp_path / "b"), patterns="random:1"))
    run = capture_model(seed_model, cfg, quiet=True)
    render(run, tmp_path / "rb", quiet=True)
    assert sorted(p.name for p in (tmp_path / "rb").glob("model*")) == ["model.png", "model.txt"]
    with Image.open(tmp_path / "rb" / "model.png") as img:
        pixels = np.asarray(img.convert("RGB")).reshape(-1, 3)
    input_box = (0xD8, 0xF0, 0xD2)  # diagram.draw.BOX_COLORS["input"]
    assert (np.abs(pixels.astype(int) - input_box).max(axis=1) <= 2).any()
    text = (tmp_path / "rb" / "model.txt").read_text()
    for layer in seed_model.layers:  # the summary lists every layer, with its parameters
        assert layer.name in text
    assert "Dense" in text and "Flatten" in text and "Param #" in text


def test_render_places_every_page_of_a_long_diagram(tmp_path, seed_model, monkeypatch):
    from pipeline.capturing import diagram

    monkeypatch.setattr(diagram, "MAX_PAGE_PX", 200)
    monkeypatch.setenv(diagram.DRAWER_ENV, "matplotlib")
    cfg = Config(capture=CaptureConfig(out=str(tmp_path / "c"), patterns="random:1"))
    run = capture_model(seed_model, cfg, quiet=True)
    drawn = sorted(p.name for p in run.path.glob("model*"))
    assert len(drawn) >= 4 and "model-2.png" in drawn and "model.txt" in drawn
    out = tmp_path / "rc"
    out.mkdir()
    (out / "model-9.png").write_bytes(b"a page of an earlier, longer drawing")
    render(run, out, quiet=True)
    assert sorted(p.name for p in out.glob("model*")) == drawn


def test_plot_pattern_process_is_the_articles_call(tmp_path, seed_model):
    pattern = np.random.default_rng(0).random((50, 50))
    folder = plot_pattern_process(seed_model, pattern, tmp_path / "art", grid_size=(2, 2))
    assert (folder / "pattern-0" / "0.png").exists()
    assert_model_png(folder, seed_model, tmp_path)
    run = open_run(folder / "run")  # it went through the store
    assert run.layers == ["dense", "my_dense", "dense_2"]
    # a second call with another pattern replaces the run (the article overwrote its files)
    plot_pattern_process(
        seed_model, pattern[None] * 0.5, folder, grid_size=(1, 1), plot_model=False
    )
    assert sorted(f.name for f in (folder / "pattern-0").iterdir()) == ["0.png", "1.png", "2.png"]
    plot_pattern_process(seed_model, pattern, folder, grid_size=(3, 3))
    assert sorted(f.name for f in (folder / "pattern-0").iterdir()) == ["0.png"]  # no stale pages


def test_unknown_colormap_is_a_clear_error(seed_run, tmp_path):
    from pipeline.errors import RenderError

    with pytest.raises(RenderError, match="^cmap: unknown colormap 'nope'"):  # the parameter
        render(seed_run, tmp_path / "x", cmap="nope", quiet=True)


def test_the_command_line_names_the_flag_where_the_library_names_the_parameter(
    seed_run, tmp_path, capsys
):
    from pipeline.cli import main
    from pipeline.cli.dispatch import flag_named

    assert (
        main(["-q", "render", str(seed_run.path), "--out", str(tmp_path / "x"), "--cmap", "nope"])
        == 2
    )
    assert capsys.readouterr().err == (
        "passage: error: --cmap: unknown colormap 'nope'; expected a matplotlib colormap name "
        "such as viridis\n"
    )
    assert flag_named("epoch: 7 is not in run r", "analyze") == "--epoch: 7 is not in run r"
    assert flag_named("dask address: expected", "capture") == "--dask: expected"
    assert flag_named("epoch: 7", "render") == "epoch: 7"  # render has no --epoch
    assert flag_named("run r: no such layer", "analyze") == "run r: no such layer"


def test_pure_layout_rules():
    assert layout.pages(3, 2, 2) == [[0, 1, 2]]
    assert layout.pages(6, 2, 2) == [[0, 1, 2, 3], [4, 5]]
    assert layout.pages(0, 3, 3) == []
    assert layout.parse_indices("0,3,5-7", 10) == [0, 3, 5, 6, 7]
    assert layout.parse_indices("", 3) == [0, 1, 2]
    assert layout.parse_indices("9, 2-3,3", 10) == [2, 3, 9]


@pytest.mark.parametrize("text", ["0-99999999999", "10", "5-3", "-1", "a", "1-x", "0,,2"])
def test_pattern_selection_refused_before_expansion(text):
    # a huge range is refused from its bounds (no list of 10**11 ints is built)
    with pytest.raises(ConfigError, match="pattern selection"):
        layout.parse_indices(text, 10)
    assert layout.split_work(list(range(10)), 3, max_size=64) == [
        [0, 1, 2, 3], [4, 5, 6, 7], [8, 9]
    ]  # fmt: skip
    assert layout.cell_title("flatten", (500,)) == "flatten (500,)"


def test_page_names_are_zero_padded_and_stale_pages_of_any_width_go(tmp_path, keras):
    """Eleven layers on a 1x1 grid: pages 00.png ... 10.png; another grid replaces them
    whatever their names' width, and the other way round."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6,))
    x = inputs
    for i in range(11):
        x = keras.layers.Dense(6 + i, name=f"d{i}")(x)
    model = keras.Model(inputs, x)
    cfg = Config(
        capture=CaptureConfig(out=str(tmp_path / "r"), patterns="random:2", architecture=False),
        select=SelectConfig(rule="all"),
    )
    run = capture_model(model, cfg, quiet=True)
    out = tmp_path / "o"
    names = lambda: sorted(f.name for f in (out / "pattern-1").iterdir())  # noqa: E731
    render(run, out, grid=(1, 1), quiet=True)
    assert names() == [f"{i:02d}.png" for i in range(11)]
    (out / "pattern-1" / "notes.txt").write_text("kept")  # not a page: left alone
    render(run, out, grid=(2, 2), quiet=True)
    assert names() == ["0.png", "1.png", "2.png", "notes.txt"]
    render(run, out, grid=(1, 1), patterns="1", quiet=True)
    assert names() == [f"{i:02d}.png" for i in range(11)] + ["notes.txt"]
    assert names() != sorted(f.name for f in (out / "pattern-0").iterdir())  # pattern 0 untouched


def test_pool_is_sized_by_pages_not_patterns(monkeypatch):
    from pipeline.rendering import pool

    monkeypatch.setattr(pool.os, "cpu_count", lambda: 8)
    assert pool.resolve_workers(0, 8, per_pattern=1) == 1  # 8 pages: not worth a pool
    assert pool.resolve_workers(0, 8, per_pattern=18) == 8  # 144 pages: every core
    assert pool.resolve_workers(0, 2, per_pattern=18) == 2  # never more than the patterns
    assert pool.resolve_workers(0, 30, per_pattern=1) == 3  # as before for one page each
    assert pool.resolve_workers(3, 1, per_pattern=1) == 3  # --workers wins
