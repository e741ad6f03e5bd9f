"""``passage verify`` and ``passage info``: check a run against its manifest; summarize it."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .atomic import TMP_MARK
from .feature_keys import FEATURES, KIND_DTYPES, parse_feature_key
from .reader import Damage, Run, entry_format, open_run, read_entry

log = logging.getLogger(__name__)


@dataclass
class VerifyReport:
    checked: int = 0
    missing: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    manifest_problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # consistent but worth knowing (incomplete)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.corrupt or self.orphans or self.manifest_problems)


def check_run(run: Run) -> VerifyReport:
    """Re-read every listed file: existence, size, checksum, shape and dtype (the reader's
    check, ``read_entry``); list orphans."""
    report = VerifyReport()
    if run.bad_manifest_lines:
        report.manifest_problems.append(
            f"malformed manifest lines ignored: {run.bad_manifest_lines}"
        )
    known = set(run.layers) | {rec.key for rec in run.input_records}
    for layer in sorted({e.layer for e in run.entries} - known):
        report.manifest_problems.append(f"manifest lists layer {layer!r}, which run.json lacks")
    report.manifest_problems.extend(feature_problems(run))
    report.notes.extend(incomplete_layers(run))
    listed = set()
    for entry in [*run.entries, *run.feature_entries]:
        listed.add(entry.path)
        report.checked += 1
        got = read_entry(run.path, entry, entry_format(entry, run.format))
        if isinstance(got, Damage):
            if got.reason == "missing file":
                report.missing.append(entry.path)
            else:
                report.corrupt.append(f"{entry.path}: {got.detail}")
    for folder, counted in (("data", _any_file), (FEATURES, _feature_file)):
        top = run.path / folder
        if not top.is_dir():
            continue
        for f in sorted(top.rglob("*")):
            rel = f.relative_to(run.path).as_posix()
            if f.is_file() and rel not in listed and counted(f.name):
                kind = (
                    "temporary file of an interrupted write"
                    if TMP_MARK in f.name
                    else "not in manifest"
                )
                report.orphans.append(f"{rel} ({kind})")
    return report


def _any_file(name: str) -> bool:
    return True


def _feature_file(name: str) -> bool:
    """Under ``features/`` only arrays and temporaries must be listed (pictures, ``index.json``
    are not)."""
    return name.endswith(".npy") or TMP_MARK in name


def feature_problems(run: Run) -> list[str]:
    """Feature files naming a layer run.json lacks, or stored with another dtype than their
    kind's."""
    out = []
    known = set(run.layers)
    keys = {parse_feature_key(e.layer) for e in run.feature_entries}
    for layer in sorted({k[1] for k in keys if k is not None} - known):
        out.append(f"manifest lists features of layer {layer!r}, which run.json lacks")
    for e in run.feature_entries:
        parsed = parse_feature_key(e.layer)
        if parsed is not None and e.dtype != KIND_DTYPES[parsed[0]].name:
            out.append(
                f"{e.path}: expected dtype {KIND_DTYPES[parsed[0]].name} for {parsed[0]}, "
                f"manifest says {e.dtype}"
            )
    return out


def features_line(run: Run) -> str:
    """``passage info``'s summary of the visualized layers (``features:`` line)."""
    layers = run.feature_layers
    if not layers:
        return "none (run `passage visualize` to add them)"
    parts = []
    for layer in layers:
        epochs = run.feature_epochs(layer)
        counts = {len(run.feature_channels(layer, ep)) for ep in epochs}
        shown = "/".join(str(c) for c in sorted(counts))
        named = ", ".join(str(e) for e in epochs)
        at = "" if epochs == [None] else f" at epoch{'s' if len(epochs) > 1 else ''} {named}"
        parts.append(f"{layer} ({shown} channel(s){at})")
    total = sum(e.bytes for e in run.feature_entries)
    return f"{len(run.feature_entries)} file(s), {total:,} bytes; " + "; ".join(parts)


def incomplete_layers(run: Run) -> list[str]:
    """Batch-mode layers (and stored inputs) holding fewer patterns than the run's count (an
    interrupted capture)."""
    if run.is_training or not run.num_patterns:
        return []
    out = []
    named = [(f"layer {name!r}", name) for name in run.layers]
    named += [(f"input {rec.name!r}", rec.key) for rec in run.input_records]
    for what, key in named:
        held = sum(e.count for e in run.entries if e.layer == key and e.epoch is None)
        if held < run.num_patterns:
            out.append(
                f"{what} holds {held} of {run.num_patterns} patterns; rerun the capture to resume"
            )
    return out


def verify_run(path: str | Path) -> int:
    run = open_run(path)
    report = check_run(run)
    for label, items in (
        ("missing", report.missing),
        ("corrupt", report.corrupt),
        ("orphan", report.orphans),
        ("manifest", report.manifest_problems),
        ("note", report.notes),
    ):
        for item in items:
            sys.stdout.write(f"{label}: {item}\n")
    status = "OK" if report.ok else "PROBLEMS"
    bad_lines = len(run.bad_manifest_lines)
    sys.stdout.write(
        f"{status}: {report.checked} file(s) checked, {len(report.missing)} missing, "
        f"{len(report.corrupt)} corrupt, {len(report.orphans)} orphan(s)"
        + (f", {bad_lines} malformed manifest line(s)" if bad_lines else "")
        + "\n"
    )
    return 0 if report.ok else 1


def info_table(run: Run) -> str:
    """Summary of a run: header lines, then one row per layer and stored input (``input:x``;
    patterns at the last epoch, files and bytes over all epochs)."""
    rows = [("layer", "class", "shape", "patterns", "files", "bytes")]
    named = [(rec.name, rec.class_name, rec.shape) for rec in run.layer_records]
    named += [(rec.key, "(model input)", rec.shape) for rec in run.input_records]
    for key, class_name, shape in named:
        entries = [e for e in run.entries if e.layer == key]
        captured = sum(e.count for e in run.chunks(key)) if run.epochs else 0
        rows.append(
            (
                key,
                class_name,
                str(tuple(shape)),
                str(captured),
                str(len(entries)),
                f"{sum(e.bytes for e in entries):,}",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    epochs = run.epochs
    head = [
        f"run:      {run.path}",
        f"model:    {run.info.get('model')} ({run.info.get('model_name')})",
        f"mode:     {run.info.get('mode', 'batch')}",
        f"patterns: {run.num_patterns} ({run.info.get('patterns')})",
        f"epochs:   {'none (batch mode)' if epochs == [None] else epochs}",
        f"format:   {run.format} {run.info.get('dtype')}",
        f"files:    {len(run.entries)}, {sum(e.bytes for e in run.entries):,} bytes",
        f"features: {features_line(run)}",
    ]
    if run.bad_manifest_lines:
        head.append(f"manifest: malformed line(s) {run.bad_manifest_lines} ignored")
    missing = incomplete_layers(run)
    if missing:
        head.append(f"complete: no, {len(missing)} layer(s) incomplete; rerun the capture")
    head.append("")
    return "\n".join(head + lines) + "\n"


def run_info(path: str | Path) -> int:
    sys.stdout.write(info_table(open_run(path)))
    return 0
