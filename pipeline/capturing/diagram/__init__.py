"""Draw the model's architecture into the run at capture time (capture side: needs Keras).

``model.png``: Keras' own ``plot_model(show_shapes=True, expand_nested=True)`` where pydot and
Graphviz's ``dot`` are present; elsewhere (or when asked: ``drawer="matplotlib"`` or
``PASSAGE_DIAGRAM=matplotlib``) the model's traced graph laid out by ``grandalf`` and drawn
with matplotlib (``trace`` → ``layout`` → ``draw``). A diagram taller
than ``MAX_PAGE_PX`` continues on ``model-2.png``, ``model-3.png``, ... Beside it,
``model.txt``: the model summary with all its columns (``Param #``, ``Connected to``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ...errors import ConfigError
from ..framework import keras_and_tf
from ..inputs import is_graph_model
from .draw import draw_pages
from .layout import layout, page_ranges
from .trace import model_graph

log = logging.getLogger(__name__)

DRAWER_ENV = "PASSAGE_DIAGRAM"
DRAWERS = ("auto", "graphviz", "matplotlib")
MAX_PAGE_PX = 12000  # 120 inches at 100 dpi: about 200 rows of boxes
PICTURE, SUMMARY = "model.png", "model.txt"
GRAPHVIZ_HINT = "install Graphviz (apt-get install graphviz) and pydot"


def graphviz_available() -> bool:
    try:
        import pydot  # noqa: F401
    except ImportError:
        return False
    return shutil.which("dot") is not None


def page_names(count: int) -> list[str]:
    """``model.png``, then ``model-2.png``, ``model-3.png``, ... for a diagram of ``count`` pages."""
    return [PICTURE] + [f"model-{i}.png" for i in range(2, count + 1)]


def _layer_names(model: Any) -> Iterator[str]:
    for layer in getattr(model, "layers", []):
        yield layer.name
        if is_graph_model(layer):
            yield from _layer_names(layer)


@contextlib.contextmanager
def _console_columns(columns: int) -> Iterator[None]:
    """Keras prints its summary through ``rich``, whose console is 80 columns wide when the
    output is not a terminal unless ``COLUMNS`` says otherwise."""
    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(columns)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = saved


def summary_text(model: Any) -> str:
    """``model.summary()`` with every column whole: the line is wide enough for the longest
    layer name in "Layer (type)" (30 % of it) and in "Connected to" (26 %)."""
    lines: list[str] = []

    def collect(line: str, *args: Any, **kwargs: Any) -> None:
        lines.append(str(line))

    longest = max((len(n) for n in _layer_names(model)), default=10)
    line_length = max(120, math.ceil((longest + 30) / 0.3), math.ceil((longest + 12) / 0.26))
    with _console_columns(line_length + 2):
        model.summary(print_fn=collect, line_length=line_length, expand_nested=True)
    return "\n".join(lines).rstrip("\n") + "\n"


def chosen_drawer(drawer: str | None = None) -> str:
    """``graphviz`` or ``matplotlib``: ``drawer``, else ``$PASSAGE_DIAGRAM``, else ``auto``
    (Graphviz where it is installed)."""
    choice = (drawer or os.environ.get(DRAWER_ENV) or "auto").strip().lower()
    if choice not in DRAWERS:
        raise ConfigError(
            f"diagram drawer must be one of {', '.join(DRAWERS)}; received {choice!r} "
            f"(from {'the drawer argument' if drawer else DRAWER_ENV}); unset it for auto"
        )
    if choice == "graphviz" and not graphviz_available():
        log.info("Graphviz asked for but not found (%s); drawing with matplotlib", GRAPHVIZ_HINT)
        return "matplotlib"
    if choice == "auto":
        return "graphviz" if graphviz_available() else "matplotlib"
    return choice


def _draw_with_graphviz(model: Any, run_dir: Path) -> None:
    keras, _ = keras_and_tf()
    tmp = run_dir / "model.tmp.png"
    try:
        keras.utils.plot_model(
            model, to_file=str(tmp), show_shapes=True, show_layer_names=True, expand_nested=True
        )
        tmp.replace(run_dir / PICTURE)
    finally:
        tmp.unlink(missing_ok=True)


def _draw_with_matplotlib(model: Any, run_dir: Path) -> int:
    diagram = layout(model_graph(model))
    pages = page_ranges(diagram, MAX_PAGE_PX)
    names = page_names(len(pages))
    tmps = [run_dir / f"{Path(n).stem}.tmp.png" for n in names]
    try:
        draw_pages(diagram, pages, tmps)
        for tmp, name in zip(tmps, names, strict=True):
            tmp.replace(run_dir / name)
    finally:
        for tmp in tmps:
            tmp.unlink(missing_ok=True)
    return len(pages)


def _clear(run_dir: Path) -> None:
    for old in [run_dir / PICTURE, *run_dir.glob("model-*.png")]:
        old.unlink(missing_ok=True)


def _write_summary(model: Any, txt: Path) -> bool:
    try:
        text = summary_text(model)
    except Exception as exc:  # Keras cannot summarize it (a subclassed model never built, ...)
        txt.unlink(missing_ok=True)
        log.warning("the model summary failed (%s); the run gets no %s", exc, txt.name)
        return False
    tmp = txt.with_name("model.tmp.txt")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(txt)
    return True


def draw_architecture(model: Any, run_dir: Path, drawer: str | None = None) -> Path | None:
    """Write ``model.png`` (and its continuation pages, if any) and ``model.txt`` into
    ``run_dir``; return the picture's path, else the summary's, else None (neither could be
    made: the capture goes on without them)."""
    choice = chosen_drawer(drawer)
    if choice == "matplotlib" and not (drawer or os.environ.get(DRAWER_ENV)):
        log.info("Graphviz not found: drawing model.png with matplotlib (for Keras' own "
                 "plot_model drawing, %s)", GRAPHVIZ_HINT)  # fmt: skip
    txt = run_dir / SUMMARY
    _clear(run_dir)
    summarized = _write_summary(model, txt)
    if choice == "graphviz":
        try:
            _draw_with_graphviz(model, run_dir)
            return run_dir / PICTURE
        except Exception as exc:  # plot_model raises ImportError/OSError/pydot errors alike
            log.warning("plot_model failed (%s); drawing model.png with matplotlib", exc)
    try:
        pages = _draw_with_matplotlib(model, run_dir)
    except Exception as exc:  # a model whose diagram cannot be drawn still gets captured
        _clear(run_dir)
        log.warning("the architecture diagram failed (%s); model.png was not drawn", exc)
        return txt if summarized else None
    if pages > 1:
        log.info("the architecture diagram continues on %d more pages", pages - 1)
    return run_dir / PICTURE


def ensure_architecture(model: Any, run_dir: Path) -> Path | None:
    """The run's ``model.png``: the one it holds already (a resumed capture), else the one
    ``draw_architecture`` draws now (also for a run that holds only a summary)."""
    if (run_dir / PICTURE).exists():
        return run_dir / PICTURE
    return draw_architecture(model, run_dir)
