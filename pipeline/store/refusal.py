"""Why a run folder refuses a capture, in one line (pure): which parts of the run's identity
differ between the run the folder holds and the capture asked for, what each was and is, and
what to do.

run.json's ``identity`` holds one digest per part of the fingerprint (written by
``pipeline.capturing.identity``); the words here name the parts that batch capture and training
use. A run written before ``identity`` existed gets the general message (model and patterns).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

AGAIN = "pass --overwrite to start again, or choose another --out"
WEIGHTS_ADVICE = (
    "a factory that builds unseeded random weights makes new ones on every run: seed the "
    "factory (keras.utils.set_random_seed) or save the model to a .keras file"
)
NAMES_SHOWN = 3


def _get(*keys: str) -> Callable[[dict[str, Any]], Any]:
    """The value at ``keys`` in a run description (None where it is missing)."""

    def get(info: dict[str, Any]) -> Any:
        value: Any = info
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        return value

    return get


def _names(names: Sequence[Any]) -> str:
    shown = ", ".join(str(n) for n in names[:NAMES_SHOWN])
    return shown + (", ..." if len(names) > NAMES_SHOWN else "")


def _layer_names(info: dict[str, Any]) -> list[Any]:
    layers = info.get("layers")
    if not isinstance(layers, list):
        return []
    return [rec.get("name") for rec in layers if isinstance(rec, dict)]


def _layers_change(held: dict[str, Any], new: dict[str, Any]) -> str:
    """How the selected layers differ: which names are gone or new, or that the same names
    now have other classes, shapes or places (another architecture)."""
    before, now = _layer_names(held), _layer_names(new)
    gone = [n for n in before if n not in now]
    added = [n for n in now if n not in before]
    said = [f"{len(before)} layer(s) in the run, {len(now)} now"]
    if gone:
        said.append(f"no longer {_names(gone)}")
    if added:
        said.append(f"now also {_names(added)}")
    if not gone and not added:
        said.append("the same names with other classes, output shapes or order")
    return "; ".join(said)


# part -> (its words, where run.json shows its value or None, advice for when it differs), in
# the order a message names them
PARTS: dict[str, tuple[str, Callable[[dict[str, Any]], Any] | None, str]] = {
    "model": ("the model spec", _get("model"), ""),
    "weights": ("the model's weights", _get("weights_crc32"), WEIGHTS_ADVICE),
    "model_name": ("the model's name", _get("model_name"), ""),
    "layers": ("the selected layers (selection rule, globs, classes or the model)", None, ""),
    "patterns": ("the patterns", _get("patterns"), ""),
    "data": ("the in-memory patterns' values", None, ""),
    "sources": ("the image files (added, removed or renamed)", None, ""),
    "preprocess": ("the preprocessing (--preprocess)", _get("config", "capture", "preprocess"), ""),
    "resize": ("the image resizing (--resize)", _get("config", "capture", "resize"), ""),
    "stored_inputs": ("the kept model inputs (--keep-inputs / --no-keep-inputs)", None, ""),
    "count": ("the number of patterns", _get("num_patterns"), ""),
    "batch": ("the batch size", _get("batch_size"), ""),
    "format": ("the data format", _get("format"), ""),
    "dtype": ("the stored dtype", _get("dtype"), ""),
    "mode": ("the mode (batch capture or training)", _get("mode"), ""),
    "time": ("the record schedule ([train] every, every_batches)", _get("time"), ""),
    "dataset": ("the training dataset", _get("dataset", "spec"), ""),
    "seed": ("the training seed", _get("config", "train", "seed"), ""),
}


def _difference(part: str, held: dict[str, Any], new: dict[str, Any]) -> tuple[str, str]:
    """(what differs in words, advice) for one part."""
    words, value, advice = PARTS.get(part, (f"the identity part {part!r}", None, ""))
    if part == "layers":
        return f"{words}: {_layers_change(held, new)}", advice
    if value is not None:
        before, now = value(held), value(new)
        if before is not None and now is not None and before != now:
            return f"{words}: {before!r} in the run, {now!r} now", advice
    return words, advice


def _passage_version(info: dict[str, Any]) -> Any:
    return _get("versions", "passage")(info)


def refusal(root: Any, held: dict[str, Any], new: dict[str, Any]) -> str:
    """The one-line reason why the run ``held`` in ``root`` cannot be resumed by the capture
    described by ``new`` (both run.json descriptions, ``new`` with its ``identity``)."""
    old, now = held.get("identity"), new.get("identity")
    if not isinstance(old, dict) or not isinstance(now, dict):
        return (
            f"{root} holds a different run (model {held.get('model')!r}, patterns "
            f"{held.get('patterns')!r}; written by an older Passage, it does not record which "
            f"part of its identity differs); {AGAIN}"
        )
    differ = {p for p in {*old, *now} if old.get(p) != now.get(p)}
    parts = [p for p in PARTS if p in differ] + sorted(differ - set(PARTS))
    said = [_difference(p, held, new) for p in parts]
    if "model" in differ:  # another model has other weights: no advice about seeding
        said = [(words, "" if advice == WEIGHTS_ADVICE else advice) for words, advice in said]
    if parts:
        reasons = "what differs: " + "; ".join(words for words, _ in said)
    else:
        reasons = (
            f"its fingerprint {held.get('fingerprint')!r} is not this capture's "
            f"{new.get('fingerprint')!r} though no part of it differs (run.json was edited?)"
        )
    version, mine = _passage_version(held), _passage_version(new)
    if (set(old) != set(now) or not parts) and version != mine:
        reasons += f"; the run was written by Passage {version}, this is {mine}"
    advice = "".join(f"{a}; " for a in dict.fromkeys(a for _, a in said if a))
    return f"{root} holds a different run; {reasons}; {advice}{AGAIN}"
