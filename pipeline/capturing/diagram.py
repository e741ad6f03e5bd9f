"""Draw the model's architecture into the run at capture time (capture side: needs Keras).

``model.png`` via ``keras.utils.plot_model(show_shapes=True)`` when pydot and Graphviz's
``dot`` are present, else ``model.txt`` with the model summary.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from ..errors import GRAPHVIZ_HINT
from .framework import keras_and_tf

log = logging.getLogger(__name__)


def graphviz_available() -> bool:
    try:
        import pydot  # noqa: F401
    except ImportError:
        return False
    return shutil.which("dot") is not None


def summary_text(model: Any) -> str:
    lines: list[str] = []

    def collect(line: str, *args: Any, **kwargs: Any) -> None:
        lines.append(str(line))

    model.summary(print_fn=collect, line_length=100)
    return "\n".join(lines) + "\n"


def draw_architecture(model: Any, run_dir: Path) -> Path:
    """Write ``model.png`` (or ``model.txt``) into ``run_dir``; return the path written."""
    keras, _ = keras_and_tf()
    png = run_dir / "model.png"
    txt = run_dir / "model.txt"
    if graphviz_available():
        tmp = run_dir / "model.tmp.png"
        try:
            keras.utils.plot_model(
                model, to_file=str(tmp), show_shapes=True, show_layer_names=True, expand_nested=True
            )
            tmp.replace(png)
            txt.unlink(missing_ok=True)
            return png
        except Exception as exc:  # plot_model raises ImportError/OSError/pydot errors alike
            tmp.unlink(missing_ok=True)
            log.warning("plot_model failed (%s); writing the model summary instead", exc)
    txt.write_text(summary_text(model), encoding="utf-8")
    log.info("architecture written as text to %s; %s to get model.png", txt, GRAPHVIZ_HINT)
    return txt


def ensure_architecture(model: Any, run_dir: Path) -> Path:
    """The run's architecture drawing: the one it holds already (a resumed capture), else the
    one ``draw_architecture`` writes now."""
    for name in ("model.png", "model.txt"):
        if (run_dir / name).exists():
            return run_dir / name
    return draw_architecture(model, run_dir)
