"""What one ``passage compare`` command compares with: its *targets*, read and checked.

A target is one comparison (``RUN/compare/NAME/``): reference RDMs read from ``--rdms`` files,
and responses from ``--responses`` files (each gives one reference RDM, and the encoding
models' voxels). Without region names every file feeds one target (several subjects or
sessions of one brain area); ``--rdms V1=v1.mat --rdms IT=it.h5`` names each file after a
brain region, and each region becomes its own target (files of the same region pool).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..store.naming import slug
from .neural import (
    References,
    Responses,
    check_count,
    parse_named,
    read_rdms,
    read_responses,
    responses_rdm,
)


@dataclass
class Target:
    """One comparison to compute: ``name`` (its folder), ``region`` (or None), the files."""

    name: str
    region: str | None
    rdm_files: list[str] = field(default_factory=list)
    response_files: list[str] = field(default_factory=list)

    @property
    def sources(self) -> list[str]:
        return [*self.rdm_files, *self.response_files]


@dataclass(frozen=True)
class NeuralData:
    """A target's data in condition order: reference RDMs (S, N, N) with their names, and
    responses (R, N, V) of every responses file joined along V (None without responses)."""

    names: list[str]
    rdms: np.ndarray
    responses: np.ndarray | None
    repeats: bool  # every responses file had R >= 2


def plan_targets(rdms: Sequence[str], responses: Sequence[str], name: str | None) -> list[Target]:
    """The targets of one command (see the module docstring)."""
    entries = [(parse_named(t), "rdms") for t in rdms] + [
        (parse_named(t), "responses") for t in responses
    ]
    if not entries:
        raise ConfigError(
            "rdms: expected reference RDMs (--rdms FILE) or responses (--responses FILE) to "
            "compare the run with, received neither"
        )
    named = [region for (region, _), _ in entries if region]
    if named and len(named) != len(entries):
        plain = [path for (region, path), _ in entries if not region]
        raise ConfigError(
            f"rdms: name every file after its region (V1=v1.mat) or none; received "
            f"{len(named)} named and {len(plain)} unnamed ({', '.join(plain)})"
        )
    if not named:
        first = Path(entries[0][0][1]).stem
        target = Target(slug(name or first), None)
        for (_, path), kind in entries:
            _files(target, kind).append(path)
        return [target]
    if name:
        raise ConfigError(
            f"name: each region is its own comparison, named after it; received --name "
            f"{name!r} with regions {', '.join(dict.fromkeys(named))}: drop --name"
        )
    targets: dict[str, Target] = {}
    for (region, path), kind in entries:
        assert region is not None
        target = targets.setdefault(region, Target(slug(region), region))
        _files(target, kind).append(path)
    return list(targets.values())


def _files(target: Target, kind: str) -> list[str]:
    return target.rdm_files if kind == "rdms" else target.response_files


def load_target(target: Target, conditions: int, where: str) -> NeuralData:
    """Read a target's files, each checked to hold ``conditions`` conditions (``where`` says
    where that count comes from, for the message)."""
    names: list[str] = []
    rdms: list[np.ndarray] = []
    for path in target.rdm_files:
        refs: References = read_rdms(path)
        check_count(f"RDMs {path}", refs.matrices.shape[1], conditions, against=where)
        names += refs.names
        rdms.append(refs.matrices)
    blocks: list[np.ndarray] = []
    repeats = True
    for path in target.response_files:
        resp: Responses = read_responses(path)
        check_count(f"responses {path}", resp.data.shape[1], conditions, against=where)
        rdms.append(responses_rdm(resp)[None])
        names.append(Path(path).stem)
        blocks.append(resp.data)
        repeats = repeats and resp.data.shape[0] >= 2
    joined = None
    if blocks:
        if len({b.shape[0] for b in blocks}) > 1:
            raise ConfigError(
                "responses: the files of one comparison must hold the same number of "
                f"repeats to join their voxels; received {[b.shape[0] for b in blocks]} "
                f"({', '.join(target.response_files)})"
            )
        joined = np.concatenate(blocks, axis=2)
    return NeuralData(_unique(names), np.concatenate(rdms), joined, bool(blocks) and repeats)


def _unique(names: list[str]) -> list[str]:
    """Reference names made unique (``a``, ``a-2``, ...), order kept."""
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}-{seen[n]}")
    return out
