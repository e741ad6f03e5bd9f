"""Draw the analysis pictures of a run from its ``analysis/`` files (no TensorFlow).

Analyze computes and stores arrays, then calls ``draw_all``. Per layer (at the last analyzed
epoch): the summary sheet, the top-patterns sheet, and with labels the class x channel
heatmap; then the CKA heatmaps that were computed. A top pattern is
shown as the model *input* when the run can give it back (inputs kept with ``--keep-inputs``,
or a pattern spec that can be read again: ``.npy``, ``.npz``, an image folder, ``random:``),
else as the layer's own output for that pattern.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ...errors import PassageError
from ...store import Run
from ...store import analysis_files as files
from .heatmaps import draw_cka, draw_classes, draw_cross_cka, draw_epoch_cka
from .summary import draw_summary
from .top import draw_top

log = logging.getLogger(__name__)

Thumbnail = Callable[[int], "np.ndarray | None"]


def rereadable(spec: Any) -> bool:
    """Whether a pattern spec can be read again without running user code: every part is
    ``random:...``, or an existing ``.npy``/``.npz`` file or folder."""
    if not isinstance(spec, str) or not spec:
        return False
    for part in spec.split(","):
        if part.startswith("random:"):
            continue
        path = Path(part.partition(".npz:")[0] + ".npz" if ".npz:" in part else part)
        if not path.exists() or (path.is_file() and path.suffix not in (".npy", ".npz")):
            return False
    return True


def pattern_source(run: Run) -> Any | None:
    """The run's patterns read again from its spec, or None when they cannot be."""
    spec = run.info.get("patterns")
    if run.is_training or not rereadable(spec):
        return None
    from ...capturing.patterns import load_patterns  # numpy only for these specs

    capture = (run.info.get("config") or {}).get("capture") or {}
    try:
        shapes = [tuple(s) for s in run.info.get("inputs") or []]
        source = load_patterns(
            spec,
            shapes,
            run.info.get("input_names"),
            capture.get("inputs") or {},
            limit=int(capture.get("limit") or 0),
            resize=capture.get("resize") or "squash",  # shown as captured (never preprocessed)
        )
    except (PassageError, OSError, ValueError, TypeError) as exc:
        log.info("the patterns %r cannot be read again (%s): top patterns show outputs", spec, exc)
        return None
    if source.count < run.num_patterns:
        return None
    return source


def thumbnailer(
    run: Run, layer: str, epoch: int | None, source: Any | None
) -> tuple[Thumbnail, str]:
    """``(thumbnail(pattern) -> image, kind)`` for a layer's top-patterns sheet."""
    if run.inputs:
        name = run.inputs[0]
        return (lambda i: run.get_input(name, i)), "input"
    if source is not None:
        return (lambda i: source.batch(i, 1)[0][0]), "input"
    return (lambda i: run.get(layer, i, epoch)), "layer output"


def draw_all(
    run: Run,
    epochs: Sequence[int | None],
    class_names: Sequence[str],
    max_channels: int,
    cmap: str,
    quiet: bool,
) -> list[Path]:
    """Draw every analysis picture of ``run`` at the last of ``epochs`` into ``RUN/analysis/``
    (a layer whose statistics cannot be read is left out); returns the pictures' paths."""
    pictures: list[Path] = []
    out = files.folder(run.path)
    epoch = epochs[-1] if epochs else None
    training = run.is_training
    source = pattern_source(run)
    for layer in tqdm(run.layers, desc="pictures", unit="layer", disable=quiet, leave=False):
        rec = run.layer(layer)
        try:
            result = run.analysis(layer, epoch)
        except PassageError:
            continue  # left out (damaged data): said in the report
        shape = tuple(int(v) for v in np.shape(result["mean"]))
        pic_epoch = epoch if training else None
        name = files.picture_name(rec.dir, "summary", pic_epoch)
        pictures.append(
            draw_summary(result, layer, shape, out / name, cmap, max_channels, epoch=pic_epoch)
        )
        thumb, kind = thumbnailer(run, layer, epoch, source)
        name = files.picture_name(rec.dir, "top", pic_epoch)
        pictures.append(
            draw_top(result, layer, thumb, kind, out / name, max_channels, cmap, epoch=pic_epoch)
        )
        if "classes" in result:
            classes = result["classes"]
            names = _class_names(classes, class_names)
            name = files.picture_name(rec.dir, "classes", pic_epoch)
            pictures.append(
                draw_classes(classes, names, result["class_channel_mean"], out / name, layer)
            )
    return pictures + _draw_cka(run, epoch, out)


def _class_names(classes: np.ndarray, names: Sequence[str]) -> list[str] | None:
    if not names:
        return None
    return [names[int(c)] if 0 <= int(c) < len(names) else str(int(c)) for c in classes]


def _draw_cka(run: Run, epoch: int | None, out: Path) -> list[Path]:
    pictures: list[Path] = []
    if (out / files.cka_file(epoch)).is_file():
        cka = run.cka(epoch)
        title = f"linear CKA between the layers of {run.path.name}"
        if epoch is not None:
            title += f" at epoch {epoch}"
        title += f" ({cka.patterns} patterns, {cka.method})"
        pictures.append(draw_cka(cka.layers, cka.layers, cka.matrix, out / "cka.png", title))
    if (out / "cka-epochs.npz").is_file():
        data = files.read_arrays(out / "cka-epochs.npz")
        pictures.append(
            draw_epoch_cka(
                [str(n) for n in data["names"]],
                data["epochs"],
                data["matrix"],
                out / "cka-epochs.png",
            )
        )
    if (out / "cka-against.npz").is_file():
        data = files.read_arrays(out / "cka-against.npz")
        pictures.append(
            draw_cross_cka(
                [str(n) for n in data["names"]],
                [str(n) for n in data["other_names"]],
                data["matrix"],
                out / "cka-against.png",
                run.path.name,
                Path(str(data["other_run"])).name,
            )
        )
    return pictures
