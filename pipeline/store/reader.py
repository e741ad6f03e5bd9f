"""Read a run: ``open_run(path) -> Run``. No TensorFlow here: render runs from files alone."""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from ..errors import DamagedDataError, NotInRunError, StoreError
from . import analysis_files, codecs, compare_files, features_reader
from .feature_keys import is_feature_path
from .gram_cache import read_cached_gram
from .grams import gram_kind, layer_gram, rdm_from_gram
from .manifest import MANIFEST, METRICS, RUN_JSON, ManifestEntry, read_manifest
from .runinfo import InputRecord, LayerRecord, read_run_json

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Damage:
    """What is wrong with one data file: a short ``reason`` for pictures and summaries
    ("missing file", "checksum mismatch", ...) and a ``detail`` saying what was found
    against what the manifest says."""

    reason: str
    detail: str


@dataclass(frozen=True)
class CkaMatrix:
    """Linear CKA between every pair of a run's layers, as ``passage analyze`` stored it
    (``Run.cka``): ``matrix[i, j]`` compares ``layers[i]`` and ``layers[j]`` at ``epoch`` over
    ``patterns`` patterns (``excluded`` more left out for NaN/Inf); ``method`` is "exact" or
    "minibatch" (then ``batch_size`` patterns per minibatch, else 0). A field the file does
    not hold (written by an older version) is None."""

    layers: list[str]
    matrix: np.ndarray
    epoch: int | None
    method: str | None
    patterns: int | None
    excluded: int | None
    batch_size: int | None


def _optional_int(data: dict[str, np.ndarray], key: str) -> int | None:
    return int(data[key]) if key in data else None


ONE_READ_BYTES = 4 << 20  # a checked file up to this size is read once, not checked then mapped


def read_entry(
    root: Path, entry: ManifestEntry, fmt: str, mmap: bool = True, check: bool = True
) -> np.ndarray | Damage:
    """The array of one manifest entry's file under ``root``, or what is wrong with the file.

    With ``check``, the file's size and checksum are compared with the manifest line first
    (one extra sequential read; a file up to ``ONE_READ_BYTES`` is read once and decoded from
    the bytes checked); the shape and dtype always are. The one file check of the
    store: ``Run.load`` and ``passage verify`` both use it.
    """
    path = root / entry.path
    arr: np.ndarray | None = None
    try:
        if check:
            if entry.bytes <= ONE_READ_BYTES:  # checked and decoded from the same bytes
                size, crc, arr = codecs.read_checked(path, fmt)
            else:
                size, crc = codecs.file_checksum(path)
            if size != entry.bytes:
                reason = "truncated file" if size < entry.bytes else "file too long"
                return Damage(reason, f"size {size} bytes, manifest says {entry.bytes}")
            if codecs.format_checksum(crc) != entry.checksum:
                return Damage(
                    "checksum mismatch",
                    f"checksum {codecs.format_checksum(crc)}, manifest says {entry.checksum}",
                )
        if arr is None:
            arr = codecs.read_array(path, fmt, mmap=mmap)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return Damage("missing file", "listed in the manifest but missing")
    except StoreError as exc:  # the callers name the file: keep only the cause
        return Damage("unreadable file", str(exc.__cause__ or exc))
    except OSError as exc:
        return Damage("unreadable file", exc.strerror or str(exc))
    expected = (entry.count, *entry.shape)
    if arr.shape != expected or arr.dtype.name != entry.dtype:
        return Damage(
            "shape/dtype mismatch",
            f"{arr.shape} {arr.dtype}, manifest says {expected} {entry.dtype}",
        )
    return arr


def entry_format(entry: ManifestEntry, run_format: str) -> str:
    """The format of one listed file: feature files are always NPY, data files the run's."""
    return "npy" if is_feature_path(entry.path) else run_format


class Run:
    """A captured run, read through its manifest (the truth about which files exist).

    ``entries`` are the data files (under ``data/``); ``feature_entries`` the files of
    ``passage visualize`` (under ``features/``), read with ``feature`` and its siblings."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.info: dict[str, Any] = read_run_json(self.path / RUN_JSON)
        self.format: str = self.info.get("format", "npy")
        self.layer_records = [LayerRecord.from_dict(d) for d in self.info.get("layers", [])]
        self._by_name = {rec.name: rec for rec in self.layer_records}
        self.input_records = [
            InputRecord.from_dict(d) for d in self.info.get("stored_inputs") or []
        ]
        self._inputs = {rec.name: rec for rec in self.input_records}
        self._input_keys = {rec.key for rec in self.input_records}
        read = read_manifest(self.path / MANIFEST)
        self.bad_manifest_lines = read.bad_lines
        self.reload_entries(read.entries)

    def reload_entries(self, entries: list[ManifestEntry]) -> None:
        entries, self.feature_entries = features_reader.split_entries(entries)
        self._feature_files = features_reader.index_files(self.feature_entries)
        index: dict[tuple[int | None, str], dict[int, ManifestEntry]] = {}
        for e in entries:
            index.setdefault((e.epoch, e.layer), {})[e.first] = e
        self._chunks = {k: sorted(v.values(), key=lambda e: e.first) for k, v in index.items()}
        self._firsts = {k: [e.first for e in v] for k, v in self._chunks.items()}
        self.entries: list[ManifestEntry] = [e for v in self._chunks.values() for e in v]
        # files already checked by load(check=True): manifest entry -> None (good) or its error
        self._checked: dict[ManifestEntry, DamagedDataError | None] = {}

    # -- what the run holds --------------------------------------------------------------------
    @property
    def layers(self) -> list[str]:
        """Selected layer names in model order."""
        return [rec.name for rec in self.layer_records]

    @property
    def inputs(self) -> list[str]:
        """Names of the model inputs stored with the run (``--keep-inputs``), in the model's
        input order; ``[]`` for a run without them. Not layers: read them with
        ``get_input``/``iter_input_chunks`` (their manifest entries say ``input:<name>``)."""
        return [rec.name for rec in self.input_records]

    @property
    def num_patterns(self) -> int:
        return int(self.info.get("num_patterns", 0))

    @property
    def patterns_in_manifest(self) -> int:
        """One past the last pattern any manifest entry holds (0: none): what a reader can
        plan over, whatever run.json's ``num_patterns`` says (unfinished or damaged)."""
        return max((e.first + e.count for e in self.entries), default=0)

    @property
    def sources(self) -> list[str]:
        """Where each pattern came from, by pattern index: an image file name, or
        ``origin[row]`` for rows of an array file, a generator or random patterns."""
        rec = self.info.get("sources") or {}
        names = rec.get("names")
        if names is not None:
            return [str(n) for n in names]
        return [self._origin(i) for i in range(self.num_patterns)]

    def _origin(self, pattern: int) -> str:
        rec = self.info.get("sources") or {}
        return f"{rec.get('origin', self.info.get('pattern_origin', ''))}[{pattern}]"

    def source(self, pattern: int) -> str:
        """Where pattern ``pattern`` came from (see ``sources``)."""
        if not 0 <= pattern < self.num_patterns:
            raise NotInRunError(
                f"pattern {pattern} is out of range; run {self.path} holds {self.num_patterns}"
            )
        names = (self.info.get("sources") or {}).get("names")
        return str(names[pattern]) if names is not None else self._origin(pattern)

    @property
    def epochs(self) -> list[int | None]:
        """Recorded epochs, sorted; ``[None]`` in batch mode."""
        found = {e.epoch for e in self.entries}
        if not found:
            return [None] if self.info.get("mode", "batch") == "batch" else []
        if None in found:
            return [None]
        return sorted(found)  # type: ignore[type-var]

    @property
    def is_training(self) -> bool:
        return self.info.get("mode") == "train"

    def layer(self, name: str) -> LayerRecord:
        try:
            return self._by_name[name]
        except KeyError:
            raise NotInRunError(
                f"layer {name!r} is not in run {self.path}; expected one of: {', '.join(self.layers)}"
            ) from None

    def input(self, name: str) -> InputRecord:
        """The record of the stored model input ``name``."""
        try:
            return self._inputs[name]
        except KeyError:
            held = ", ".join(self.inputs) or "none (captured without --keep-inputs)"
            raise NotInRunError(
                f"input {name!r} is not stored in run {self.path}; stored inputs: {held}"
            ) from None

    def _known(self, key: str) -> None:
        """``key`` names a layer or a stored input (``input:<name>``); else NotInRunError."""
        if key not in self._input_keys:
            self.layer(key)

    def resolve_epoch(self, epoch: int | None) -> int | None:
        """``epoch`` checked to be recorded; None: the last recorded one (None in a batch run,
        or in a training run with nothing recorded yet). ``NotInRunError`` otherwise."""
        epochs = self.epochs
        if epoch is None:
            return epochs[-1] if epochs else None
        if epoch not in epochs:
            shown = "none (a batch run)" if epochs == [None] else str(epochs)
            raise NotInRunError(f"epoch {epoch} is not in run {self.path}; recorded: {shown}")
        return epoch

    def chunks(self, layer: str, epoch: int | None = None) -> list[ManifestEntry]:
        """Manifest entries of one layer (or stored input key ``input:<name>``) at one epoch,
        sorted by first pattern."""
        self._known(layer)
        return self._chunks.get((self.resolve_epoch(epoch), layer), [])

    def entry_for(self, layer: str, pattern: int, epoch: int | None = None) -> ManifestEntry:
        if not 0 <= pattern < max(self.num_patterns, 1):
            raise NotInRunError(
                f"pattern {pattern} is out of range; run {self.path} holds {self.num_patterns}"
            )
        ep = self.resolve_epoch(epoch)
        chunks = self._chunks.get((ep, layer), [])
        i = bisect.bisect_right(self._firsts.get((ep, layer), []), pattern) - 1
        if i < 0 or pattern >= chunks[i].first + chunks[i].count:
            raise NotInRunError(
                f"pattern {pattern} of layer {layer!r} (epoch {ep}) was not captured in "
                f"{self.path}; run `passage capture` again to resume, or `passage verify`"
            )
        return chunks[i]

    # -- reading data ---------------------------------------------------------------------------
    def load(self, entry: ManifestEntry, mmap: bool = True, check: bool = False) -> np.ndarray:
        """One whole data file as an array (NPY memory-mapped).

        With ``check``, the file's size and checksum are compared with its manifest line first
        (one extra sequential read, once per file and ``Run``). Any mismatch raises
        ``DamagedDataError`` with a short ``reason``.
        """
        if check and entry in self._checked:
            known = self._checked[entry]
            if known is not None:
                raise known
            check = False  # checked already: only map it
        try:
            arr = self._load(entry, mmap, check)
        except DamagedDataError as exc:
            if check:
                self._checked[entry] = exc
            raise
        if check:
            self._checked[entry] = None
        return arr

    def _load(self, entry: ManifestEntry, mmap: bool, check: bool) -> np.ndarray:
        got = read_entry(self.path, entry, entry_format(entry, self.format), mmap, check)
        if isinstance(got, Damage):
            raise DamagedDataError(
                f"data file {self.path / entry.path}: {got.detail}; see `passage verify "
                f"{self.path}`; delete the file if it is there and rerun the same capture to "
                "write it again",
                got.reason,
                entry.path,
            )
        return got

    def get(self, layer: str, pattern: int, epoch: int | None = None) -> np.ndarray:
        """One pattern's output of one layer (at ``epoch``; the last one when None)."""
        self._known(layer)
        entry = self.entry_for(layer, pattern, epoch)
        return np.array(self.load(entry)[pattern - entry.first])

    def iter_chunks(self, layer: str, epoch: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(first_pattern_index, array)`` file by file, in pattern order."""
        for entry in self.chunks(layer, epoch):
            yield entry.first, self.load(entry)

    def input_chunks(self, name: str) -> list[ManifestEntry]:
        """Manifest entries of the stored model input ``name``, sorted by first pattern."""
        return self.chunks(self.input(name).key)

    def get_input(self, name: str, pattern: int) -> np.ndarray:
        """One pattern of the stored model input ``name``: what the model was fed."""
        return self.get(self.input(name).key, pattern)

    def iter_input_chunks(self, name: str) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(first_pattern_index, array)`` of the stored input ``name``, file by file."""
        yield from self.iter_chunks(self.input(name).key)

    # -- analysis (written by `passage analyze`) ------------------------------------------------
    def analysis(self, layer: str, epoch: int | None = None) -> dict[str, np.ndarray]:
        """One layer's statistics over the patterns (``RUN/analysis/<layer folder>[/epoch-E]
        .npz``; the last epoch when ``epoch`` is None): ``mean``, ``std``, ``min``, ``max``,
        ``frac_positive``, ``count``, ``nonfinite``, ``channel_mean``, ``channel_std``,
        ``channel_frac_positive``, ``dead``, ``hist_edges``, ``hist_counts``, ``top_index``,
        ``top_value``, and ``classes``, ``class_channel_mean`` when labels were given."""
        rec = self.layer(layer)
        ep = self.resolve_epoch(epoch)
        rel = analysis_files.layer_file(rec.dir, ep)
        what = f"layer {layer!r}" + ("" if ep is None else f" at epoch {ep}")
        return analysis_files.load_result(self.path, rel, what)

    def cka(self, epoch: int | None = None) -> CkaMatrix:
        """Linear CKA between every pair of the run's layers over its patterns (at ``epoch``;
        the last one when None), with how it was computed, as ``passage analyze`` stored it."""
        ep = self.resolve_epoch(epoch)
        what = "CKA" + ("" if ep is None else f" at epoch {ep}")
        data = analysis_files.load_result(self.path, analysis_files.cka_file(ep), what)
        return CkaMatrix(
            layers=[str(n) for n in data["names"]],
            matrix=data["matrix"],
            epoch=ep,
            method=str(data["method"]) if "method" in data else None,
            patterns=_optional_int(data, "patterns"),
            excluded=_optional_int(data, "excluded"),
            batch_size=_optional_int(data, "batch_size"),
        )

    def rdm(
        self,
        layer: str,
        distance: str = "correlation",
        epoch: int | None = None,
        patterns: np.ndarray | None = None,
    ) -> np.ndarray:
        """The layer's (n, n) float64 RDM over ``patterns`` (sorted unique pattern indices;
        None: all the run's patterns) at ``epoch`` (None: the last), ``distance`` one of
        "correlation", "euclidean", "cosine" (as rsatoolbox's ``calc_rdm`` and scipy's
        ``cdist``; ``pipeline.store.grams``). Uses the Gram ``passage compare`` cached while it
        is up to date, else streams it from the layer's files (checked); writes nothing.
        Patterns holding NaN/Inf have NaN rows and columns."""
        ep = self.resolve_epoch(epoch)
        kind = gram_kind(distance)
        gram = read_cached_gram(self, layer, ep, kind, patterns)
        if gram is None:
            gram = layer_gram(self, layer, ep, kind, patterns)
        entries = self.chunks(layer, ep)
        features = int(np.prod(entries[0].shape)) if entries else 1
        return rdm_from_gram(gram, distance, features)

    # -- compare (written by `passage compare`) -------------------------------------------------
    @property
    def comparisons(self) -> list[str]:
        """The names of the run's complete comparisons (``RUN/compare/NAME/``), sorted."""
        return compare_files.names(self.path)

    def comparison(self, name: str) -> dict[str, Any]:
        """One comparison with neural data, as ``passage compare`` stored it: ``layers``,
        ``references``, ``method``, ``distance``, ``epochs`` (training runs), ``scores`` (L, S)
        or (E, L, S), ``score``, ``noise_ceiling`` (lower, upper), ``ci``, ``best_layer``,
        ``best_layer_p``, and with responses ``encoding``, ``encoding_median``, ``reliability``
        and ``encoding_normalized`` (docs/compare.md)."""
        return compare_files.read_comparison(self.path, name)

    def regions(self) -> dict[str, Any]:
        """Regions x layers from the last comparison whose references were named after brain
        regions (``--rdms V1=v1.mat --rdms IT=it.h5``): ``regions``, ``layers``, ``scores``,
        ``ci``, ``best_layer``, ``best_layer_p``, ``named_layer``, ``agrees``."""
        return compare_files.read_regions(self.path)

    # -- features (written by `passage visualize`) ---------------------------------------------
    @property
    def feature_layers(self) -> list[str]:
        """Layers with feature visualizations, in the run's layer order."""
        return features_reader.feature_layers(self, self._feature_files)

    def feature_epochs(self, layer: str) -> list[int | None]:
        """Epochs at which ``layer`` was visualized, sorted (``[None]`` in a batch run)."""
        return features_reader.feature_epochs(self, self._feature_files, layer)

    def feature_channels(self, layer: str, epoch: int | None = None) -> np.ndarray:
        """The channels of ``layer`` visualized at ``epoch`` (None: the last visualized
        epoch), sorted int64; empty when the layer was not visualized."""
        if not self.feature_epochs(layer):
            return np.zeros(0, np.int64)
        ep = features_reader.resolve(self, self._feature_files, layer, epoch)
        return features_reader.visualized_channels(self, self._feature_files, layer, ep)

    def feature(self, layer: str, channel: int, epoch: int | None = None) -> dict[str, Any]:
        """One channel's feature visualization (at ``epoch``; None: the last visualized one):
        ``image`` (one input pattern's shape, float32, in the stored space), ``activation``
        (the objective it reaches), ``dataset_activation`` (the best over the run's patterns
        from ``analyze``; NaN without an analysis), ``steps``, ``seed``, ``epoch``, ``space``,
        ``low``, ``high``, ``preprocess``, ``channel``."""
        return features_reader.feature(self, self._feature_files, layer, channel, epoch)

    def features_of(self, layer: str, epoch: int | None = None) -> dict[str, Any]:
        """Every visualized channel of ``layer`` at ``epoch`` (None: the last visualized):
        ``channels`` (n,) int64 sorted, ``images`` (n, *input), ``activation`` (n,),
        ``dataset_activation`` (n,), ``epoch``, ``settings`` and the settings' keys (``steps``,
        ``seed``, ``space``, ``low``, ``high``, ...; ``channels`` is the visualized ones)."""
        return features_reader.features_of(self, self._feature_files, layer, epoch)

    def attribution(self, layer: str, channel: int, epoch: int | None = None) -> np.ndarray:
        """SmoothGrad maps (K, *input shape) of the channel's top-K patterns."""
        return self.top_patterns(layer, channel, epoch)["attribution"]

    def top_patterns(
        self, layer: str, channel: int, epoch: int | None = None
    ) -> dict[str, np.ndarray]:
        """The channel's top-K patterns as visualize saw them: ``index`` (K,) (-1: empty),
        ``value`` (K,), ``input`` (K, *input shape), ``attribution`` (K, *input shape)."""
        return features_reader.top_patterns(self, self._feature_files, layer, channel, epoch)

    def metrics(self) -> list[dict[str, Any]]:
        """Per-epoch training metrics (``metrics.jsonl``); a malformed line is skipped."""
        path = self.path / METRICS
        out: list[dict[str, Any]] = []
        if not path.exists():
            return out
        for line in path.read_bytes().splitlines():
            try:
                out.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                log.warning("%s: skipping a malformed line", path)
        return out

    def __repr__(self) -> str:
        return (
            f"Run({str(self.path)!r}, layers={len(self.layers)}, patterns={self.num_patterns}, "
            f"epochs={self.epochs})"
        )


def open_run(path: str | Path) -> Run:
    """Open a captured run for reading."""
    return Run(path)
