"""The run's model and patterns again, for ``passage visualize``: the model reloaded from
run.json's ``model`` spec (a batch run's weights checked against its ``weights_crc32``; a
training run's weights loaded from what the capture kept for the epoch), and the run's
patterns read from its kept inputs or rebuilt from the recorded pattern spec (a training run:
its watched patterns).

Images are returned in the space they are optimized and stored in: as the model was fed them,
or for a run captured with ``--preprocess`` as pixels in [0, 255] (the ``"pixels"`` space).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...config import CaptureConfig, Config, SelectConfig, TrainConfig
from ...errors import PassageError, SpecError
from ...store import Run
from ..identity import arrays_digest, part_digests, weights_digest
from ..models import load_model
from ..patterns import PatternSource, array_source, load_patterns
from ..patterns.preprocess import resolve_preprocess
from ..probe import layer_infos
from ..selection import LayerInfo
from ..training import backup
from ..training.weights import kept_epochs

log = logging.getLogger(__name__)

BACKUP_DIR = "train-backup"  # as pipeline.capturing.training.trainer names it
SCAN_BATCH = 256  # patterns per read when a rebuilt source is scanned for its range
PIXELS = (0.0, 255.0)


def in_memory(spec: str | None) -> bool:
    return not spec or spec.startswith("<in-memory")


def recorded_preprocess(run: Run) -> str:
    """The ``--preprocess`` the run was captured with ('' for none)."""
    return str(((run.info.get("config") or {}).get("capture") or {}).get("preprocess") or "")


def preprocess_function(run: Run) -> Callable[[Any], Any] | None:
    """pixels (0..255) -> what the model was fed, for a run captured with ``--preprocess``."""
    spec = recorded_preprocess(run)
    return resolve_preprocess(spec).function if spec else None


def weight_files(run: Run) -> dict[int, Path]:
    """A training run's epochs whose weights can be reloaded -> the file: those the capture
    kept (``RUN/weights/``), and the last recorded epoch from ``RUN/train-backup/`` when its
    newest file is that epoch's. Only recorded epochs count."""
    recorded = {e for e in run.epochs if e is not None}
    files = {e: p for e, p in kept_epochs(run.path).items() if e in recorded}
    last = backup.latest(run.path / BACKUP_DIR)
    if (
        last is not None
        and recorded
        and last[0] == max(recorded)
        and last[0] not in files
        and run.info.get("time", {}).get("unit", "epoch") == "epoch"
    ):
        files[last[0]] = last[1]
    return dict(sorted(files.items()))


def load_run_model(run: Run, epoch: int | None, *, unsafe: bool = False, model: Any = None) -> Any:
    """The model ``run`` was captured from, as it was at ``epoch`` (None: a batch run).

    Batch runs: the model ``model`` or the one run.json's spec names, refused (``SpecError``)
    when its weights' digest differs from the run's ``weights_crc32``, or when the spec names
    an in-memory model and no ``model`` is given. Training runs: the epoch's kept weights are
    loaded into it (into ``model`` itself when given)."""
    spec = run.info.get("model")
    given = model is not None
    if model is None:
        if in_memory(spec):
            raise SpecError(
                f"run {run.path} was captured from an in-memory model ({spec or 'no spec'}), "
                "which cannot be reloaded from a spec; call pipeline.visualize(run, "
                "model=the_model) from Python (its weights are checked against the run's)"
            )
        model = load_model(str(spec), unsafe=unsafe)
    if run.is_training:
        files = weight_files(run)
        if epoch not in files:
            kept = ", ".join(map(str, files)) or "none"
            raise SpecError(
                f"epochs: no weights are kept for epoch {epoch} of {run.path}; kept epochs: {kept}"
            )
        try:
            with warnings.catch_warnings():  # the optimizer's state saved with the weights is
                warnings.filterwarnings("ignore", "Skipping variable loading for optimizer")
                model.load_weights(str(files[epoch]))  # not needed here
        except PassageError:
            raise
        except Exception as exc:  # noqa: BLE001 - Keras raises many kinds; one line here
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SpecError(
                f"cannot load the weights of epoch {epoch} ({files[epoch]}) into model "
                f"{model.name!r}: {first}; expected the model the run was trained from"
            ) from exc
        return model
    want = run.info.get("weights_crc32")
    got = weights_digest(model)
    if want is None:
        log.warning(
            "run %s records no weights digest: the model's weights are not checked", run.path
        )
    elif got != want:
        named = "the model given" if given else f"model {spec!r}"
        raise SpecError(
            f"the weights of {named} (digest {got}) differ from those run {run.path} was "
            f"captured with (weights_crc32 {want}); expected the same model and weights: "
            "restore them, or capture the run again"
        )
    return model


def run_layers(model: Any, run: Run, names: Sequence[str]) -> dict[str, LayerInfo]:
    """The reloaded ``model``'s layers ``names``, checked against run.json's layer records
    (same names, same per-pattern shapes)."""
    infos = {info.name: info for info in layer_infos(model)}
    out = {}
    for name in names:
        rec = run.layer(name)
        info = infos.get(name)
        if info is None:
            raise SpecError(
                f"the reloaded model {model.name!r} has no layer {name!r}, which run "
                f"{run.path} holds; expected the model the run was captured from"
            )
        if list(info.shape) != list(rec.shape):
            raise SpecError(
                f"layer {name!r} of the reloaded model {model.name!r} has shape "
                f"{tuple(info.shape)} per pattern; run {run.path} recorded {tuple(rec.shape)}: "
                "expected the model the run was captured from"
            )
        out[name] = info
    return out


def _recorded_config(run: Run) -> Config:
    """The capture's ``[capture]``, ``[select]`` and ``[train]`` tables as run.json recorded
    them (keys this version does not know are left out)."""
    data = run.info.get("config") or {}

    def build(cls: type, table: Any) -> Any:
        if not isinstance(table, dict):
            return cls()
        known = {k: v for k, v in table.items() if k in cls.__dataclass_fields__}
        for key, value in known.items():  # JSON lists where the dataclass holds tuples
            if isinstance(value, list):
                known[key] = tuple(value)
        return cls(**known)

    train = data.get("train")
    return Config(
        capture=build(CaptureConfig, data.get("capture")),
        select=build(SelectConfig, data.get("select")),
        train=build(TrainConfig, train) if isinstance(train, dict) else None,
    )


def _shapes(run: Run) -> list[tuple[int | None, ...]]:
    return [tuple(s) for s in run.info.get("inputs") or []]


class RunPatterns:
    """The run's patterns in the stored space: kept inputs when the run has them, else the
    source rebuilt from run.json (built on first use, once)."""

    def __init__(self, run: Run, arrays: Any = None) -> None:
        self.run = run
        self.pixels = bool(recorded_preprocess(run))
        self._source: PatternSource | None = None
        self._watched: np.ndarray | None = None
        if arrays is not None:
            self._source = self._given(arrays)

    def _given(self, arrays: Any) -> PatternSource:
        """The in-memory patterns a run was captured from, checked against its identity."""
        run = self.run
        source = array_source(arrays, _shapes(run))
        x = [np.asarray(a) for a in source.arrays]
        key = "patterns" if run.is_training else "data"
        want = (run.info.get("identity") or {}).get(key)
        if source.count != run.num_patterns or (
            want is not None and part_digests({"p": arrays_digest(x)})["p"] != want
        ):
            raise SpecError(
                f"patterns: the arrays given are not those run {run.path} was captured from "
                f"({source.count} pattern(s), the run {run.num_patterns}, or other values); "
                "expected the same arrays"
            )
        if run.is_training:
            self._watched = x[0].astype(np.float32)
        return source

    @property
    def kept(self) -> bool:
        return bool(self.run.inputs)

    def _scale(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        return x * np.float32(255.0) if self.pixels else x

    def inputs(self, indices: Sequence[int]) -> np.ndarray:
        """Patterns ``indices`` (n, *input shape) float32, in the stored space."""
        idx = [int(i) for i in indices]
        shape = tuple(_shapes(self.run)[0])
        if not idx:
            return np.zeros((0, *shape), np.float32)
        bad = [i for i in idx if not 0 <= i < self.run.num_patterns]
        if bad:
            raise SpecError(
                f"pattern {bad[0]} is out of range; run {self.run.path} holds "
                f"{self.run.num_patterns}"
            )
        if self.kept:
            name = self.run.inputs[0]
            return self._scale(np.stack([self.run.get_input(name, i) for i in idx]))
        if self.run.is_training:
            return self._scale(self._watched_patterns()[idx])
        source = self._rebuilt()
        return self._scale(np.concatenate([source.batch(i, 1)[0] for i in idx]))

    def range(self) -> tuple[float, float]:
        """(low, high) of the run's patterns in the stored space ([0, 255] for pixels)."""
        if self.pixels:
            return PIXELS
        if self.kept:
            entries = self.run.input_chunks(self.run.inputs[0])
            lows = [e.min for e in entries if e.min is not None]
            highs = [e.max for e in entries if e.max is not None]
            if lows and highs:
                return float(min(lows)), float(max(highs))
        if self.run.is_training:
            x = self._watched_patterns()
            return float(np.nanmin(x)), float(np.nanmax(x))
        source = self._rebuilt()
        low, high = np.inf, -np.inf
        for first in range(0, source.count, SCAN_BATCH):
            x = np.asarray(source.batch(first, min(SCAN_BATCH, source.count - first))[0])
            finite = x[np.isfinite(x)]
            if finite.size:
                low, high = min(low, float(finite.min())), max(high, float(finite.max()))
        return float(low), float(high)

    def _rebuilt(self) -> PatternSource:
        if self._source is not None:
            return self._source
        run, c = self.run, _recorded_config(self.run).capture
        spec = str(run.info.get("patterns") or "")
        if not spec or spec.startswith("<"):
            raise SpecError(
                f"the patterns of run {run.path} were in-memory arrays ({spec or 'no spec'}) "
                "and no inputs were kept with it: they cannot be read again; pass them "
                "(pipeline.visualize(run, model=..., patterns=the_arrays)), or capture with "
                "--keep-inputs"
            )
        try:  # fed as read: images in [0, 1] (scaled to pixels here when preprocessed)
            source = load_patterns(
                spec,
                _shapes(run),
                run.info.get("input_names"),
                c.inputs,
                limit=c.limit,
                resize=c.resize,
            )
        except PassageError as exc:
            raise SpecError(
                f"cannot read the patterns of run {run.path} again from {spec!r}: {exc}; "
                "run from the folder the capture ran in, or capture with --keep-inputs"
            ) from exc
        names = (run.info.get("sources") or {}).get("names")
        if source.count != run.num_patterns or (names is not None and source.names != names):
            raise SpecError(
                f"the patterns {spec!r} are no longer those run {run.path} captured ("
                f"{source.count} pattern(s) now, {run.num_patterns} then, or other files): "
                "restore them, or capture again with --keep-inputs"
            )
        self._source = source
        return source

    def _watched_patterns(self) -> np.ndarray:
        if self._watched is not None:
            return self._watched
        from ..training.datasets import load_dataset
        from ..training.trainer import watched_patterns

        run = self.run
        cfg = _recorded_config(run)
        if cfg.train is None:
            raise SpecError(
                f"training run {run.path} records no [train] config (recorded through the "
                "Python CaptureCallback?): its watched patterns cannot be read again"
            )
        shapes = _shapes(run)
        try:
            data = load_dataset(cfg.train.dataset, shapes, cfg.train.x_key, cfg.train.y_key)
            x, _ = watched_patterns(cfg, data, shapes, run.info.get("input_names"))
        except PassageError as exc:
            raise SpecError(
                f"cannot read the watched patterns of run {run.path} again: {exc}"
            ) from exc
        x = np.asarray(x, dtype=np.float32)
        want = (run.info.get("identity") or {}).get("patterns")
        if x.shape[0] != run.num_patterns or (
            want is not None and part_digests({"p": arrays_digest([x])})["p"] != want
        ):
            raise SpecError(
                f"the watched patterns of run {run.path} rebuilt from its dataset "
                f"{cfg.train.dataset!r} differ from those it recorded: restore the dataset"
            )
        self._watched = x
        return x


def pattern_inputs(run: Run, indices: Sequence[int], arrays: Any = None) -> np.ndarray:
    """The run's patterns ``indices`` (n, *input shape) float32 in the stored space
    (``arrays``: the in-memory patterns it was captured from, checked)."""
    return RunPatterns(run, arrays).inputs(indices)


def pattern_range(run: Run, arrays: Any = None) -> tuple[float, float]:
    """(low, high) of the run's patterns in the stored space ([0, 255] for pixels)."""
    return RunPatterns(run, arrays).range()
