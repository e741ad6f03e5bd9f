"""The Unit view in a static report: each run's features list, its layers' grids and the unit
pages' payloads, as the server answers them (``unit_api``), written as data scripts.

Unit pages can be many (a layer of 512 channels, a 224 x 224 x 3 image and its top patterns
each): they are written up to the report's remaining size budget, in a fixed order (every
layer's first unit at its last visualized epoch, then every layer's second, ...; earlier
epochs after), and the report's size line says how many made it. The features list written
into the report says which units it holds (``in_report``), so the page marks the others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson

from ..errors import StoreError
from .api import Api

log = logging.getLogger(__name__)


def epoch_part(epoch: int | None) -> str:
    return "b" if epoch is None else f"e{epoch}"


def grid_key(run_id: int, layer_dir: str, epoch: int | None) -> str:
    return f"r{run_id}/units/{layer_dir}/{epoch_part(epoch)}/grid"


def unit_key(run_id: int, layer_dir: str, epoch: int | None, channel: int) -> str:
    return f"r{run_id}/units/{layer_dir}/{epoch_part(epoch)}/c{channel}"


def epochs_key(run_id: int, layer_dir: str, channel: int) -> str:
    return f"r{run_id}/units/{layer_dir}/c{channel}/epochs"


def script(key: str, body: bytes) -> bytes:
    """A data script around a JSON answer of the API."""
    return b"PASSAGE.put(" + orjson.dumps(key) + b", " + body + b");\n"


@dataclass
class UnitsWritten:
    """Unit pages written into a report (``included`` of ``total``)."""

    included: int = 0
    total: int = 0

    @property
    def left_out(self) -> int:
        return self.total - self.included


def unit_order(listing: dict[str, Any]) -> list[tuple[int, dict[str, Any], int | None, int]]:
    """``(layer index, layer, epoch, channel)`` of every visualized unit in the order they
    are included: last epoch first, then round-robin over the layers by channel position."""
    items = []
    for li, layer in enumerate(listing["layers"]):
        entries = layer["visualized"]
        for rank, entry in enumerate(reversed(entries)):
            for pos, channel in enumerate(entry["channels"]):
                items.append(((rank, pos, li), (li, layer, entry["epoch"], channel)))
    return [item for _, item in sorted(items, key=lambda kv: kv[0])]


def write_units(
    api: Api,
    run_id: int,
    write: Callable[[str, bytes], None],
    room: Callable[[], float],
) -> UnitsWritten:
    """Write run ``run_id``'s unit view data through ``write(key, script)`` while ``room()``
    (bytes left in the budget) allows: grids first, then unit pages in ``unit_order``; the
    features list last (always, with ``in_report``)."""
    done = UnitsWritten()
    listing = _json(api, f"/api/run/{run_id}/features")
    if not listing["layers"]:
        return done
    # room kept for the features list written last (at most every channel in it)
    fullest = {
        **listing,
        "layers": [
            {
                **layer,
                "visualized": [
                    {**v, "in_report": v["channels"], "grid_in_report": False}
                    for v in layer["visualized"]
                ],
            }
            for layer in listing["layers"]
        ],
    }
    reserve = len(script(f"r{run_id}/features", orjson.dumps(fullest)))

    def left() -> float:
        return room() - reserve

    for layer in listing["layers"]:
        for entry in layer["visualized"]:
            at = "" if entry["epoch"] is None else f"&epoch={entry['epoch']}"
            target = f"/api/run/{run_id}/features-grid?layer={quote(layer['name'], safe='')}{at}"
            body = _body(api, target)
            key = grid_key(run_id, layer["dir"], entry["epoch"])
            data = script(key, body or b"null")
            if body is not None and len(data) <= left():
                write(key, data)
                entry["grid_in_report"] = True
    order = unit_order(listing)
    done.total = len(order)
    strips: set[tuple[int, int]] = set()
    full = False
    for li, layer, epoch, channel in order:
        if full:
            break
        name = quote(layer["name"], safe="")
        at = "" if epoch is None else f"&epoch={epoch}"
        targets = [
            (
                unit_key(run_id, layer["dir"], epoch, channel),
                f"/api/run/{run_id}/unit?layer={name}&channel={channel}{at}",
            )
        ]
        if epoch is not None and (li, channel) not in strips:
            targets.append(
                (
                    epochs_key(run_id, layer["dir"], channel),
                    f"/api/run/{run_id}/unit-epochs?layer={name}&channel={channel}",
                )
            )
        bodies = [(key, _body(api, target)) for key, target in targets]
        if any(body is None for _, body in bodies):
            continue  # a damaged file: that unit is left out (said by _body)
        parts = [(key, script(key, body)) for key, body in bodies if body is not None]
        if sum(len(d) for _, d in parts) > left():
            full = True
            continue
        for key, data in parts:
            write(key, data)
        if epoch is not None:
            strips.add((li, channel))
        held = next(e for e in layer["visualized"] if e["epoch"] == epoch)
        held.setdefault("in_report", []).append(channel)
        done.included += 1
    for layer in listing["layers"]:
        for entry in layer["visualized"]:
            entry.setdefault("in_report", [])
            entry.setdefault("grid_in_report", False)
    key = f"r{run_id}/features"
    write(key, script(key, orjson.dumps(listing)))
    if done.left_out:
        log.warning(
            "run %d: %d of %d unit pages left out of the report (its size budget; raise "
            "--max-mb to hold them)",
            run_id,
            done.left_out,
            done.total,
        )
    return done


def _body(api: Api, target: str) -> bytes | None:
    """The API's JSON answer to ``target``; None (said once in the log) when a file it
    reads is damaged (422); an error for any other failure."""
    resp = api.handle("GET", target)
    if resp.status == 200:
        return resp.body
    message = orjson.loads(resp.body).get("error", "") if resp.body else ""
    if resp.status == 422:
        log.warning("left out of the report: %s", message)
        return None
    raise StoreError(f"{target}: {message}")


def _json(api: Api, target: str) -> dict[str, Any]:
    body = _body(api, target)
    if body is None:
        raise StoreError(f"{target}: damaged")
    return orjson.loads(body)
