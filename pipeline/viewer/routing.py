"""Pure request parsing of the viewer: a raw request target -> (route, arguments, query).

Nothing here touches the filesystem. The path is percent-decoded once, then refused when it
holds ``..``, a backslash, a NUL or a control character or is too long, and matched against
the fixed routes. Query values are checked for shape here (a number is digits); whether they
name something in the run is the API's business.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote

MAX_TARGET = 4096  # characters of a request target; longer ones match no route

ROUTES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("index", re.compile(r"/(?:index\.html)?")),
    ("asset", re.compile(r"/assets/([A-Za-z0-9_.-]{1,100})")),
    ("runs", re.compile(r"/api/runs")),
    ("colormaps", re.compile(r"/api/colormaps")),
    ("layout", re.compile(r"/api/layout")),
    (
        "run",
        re.compile(
            r"/api/run/([^/]{1,32})/(data|pattern|input|metrics|analysis|cka|model\.png|info)"
        ),
    ),
    # the Compare view (compare_api.py): the list, one comparison, an RDM of it; regions
    ("compare", re.compile(r"/api/run/([^/]{1,32})/compare(?:/([^/]{1,100})(?:/(rdm))?)?")),
    ("regions", re.compile(r"/api/run/([^/]{1,32})/regions")),
    # the Unit view (unit_api.py): visualized layers, one unit, its epochs, a layer's grid
    ("unit", re.compile(r"/api/run/([^/]{1,32})/(features|unit|unit-epochs|features-grid)")),
)


class BadRequest(ValueError):
    """A request the API refuses: ``status`` 400 (malformed) or 404 (nothing there)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Request:
    route: str
    args: tuple[str, ...]
    query: dict[str, list[str]]

    def param(self, name: str, required: bool = True) -> str | None:
        """The one value of query parameter ``name``; 400 when missing (and ``required``) or
        given twice."""
        values = self.query.get(name)
        if not values:
            if required:
                raise BadRequest(400, f"missing query parameter {name!r}; expected {name}=...")
            return None
        if len(values) > 1:
            raise BadRequest(
                400, f"query parameter {name!r} given {len(values)} times; give it once"
            )
        return values[0]

    def number(self, name: str, required: bool = True) -> int | None:
        """Query parameter ``name`` as an int (``-?[0-9]{1,18}``); 400 when malformed."""
        text = self.param(name, required)
        return None if text is None else parse_int(text, f"query parameter {name!r}")


_INT = re.compile(r"-?[0-9]{1,18}")
_SHAPE = re.compile(r"(?:[0-9]{1,10}(?:,[0-9]{1,10}){0,31})?")
MAX_SIZE = 2**31 - 1  # a per-pattern size the page can index (Int32Array)
_BAD = re.compile(r"[\x00-\x1f\x7f\\]")


def parse_int(text: str, what: str) -> int:
    if not _INT.fullmatch(text):
        raise BadRequest(400, f"{what} must be an integer; received {text[:40]!r}")
    return int(text)


def parse_shape(text: str) -> tuple[int, ...]:
    """A per-pattern shape as the app writes it: ``3,4,70``; ``''`` for a scalar (rank 0).
    Up to 32 sizes, each and their product at most ``MAX_SIZE``; 400 otherwise."""
    if not _SHAPE.fullmatch(text):
        raise BadRequest(
            400, f"shape must be sizes joined by commas (e.g. 3,4,70); received {text[:40]!r}"
        )
    dims = tuple(int(v) for v in text.split(",")) if text else ()
    if max(dims, default=0) > MAX_SIZE or math.prod(dims) > MAX_SIZE:
        raise BadRequest(400, f"shape {text[:40]!r} holds more than {MAX_SIZE} values")
    return dims


def not_found(target: str) -> BadRequest:
    return BadRequest(404, f"no such page: {target[:80]!r}; the viewer starts at /")


def parse_target(target: str) -> Request:
    """The route of a raw request target (``/api/run/0/data?layer=x&pattern=3``)."""
    if len(target) > MAX_TARGET:
        raise BadRequest(
            404, f"request target of {len(target)} characters; nothing here is that long"
        )
    raw_path, _, raw_query = target.partition("?")
    raw_path = raw_path.partition("#")[0]
    try:
        path = unquote(raw_path, errors="strict")
    except UnicodeDecodeError:
        raise not_found(raw_path) from None
    if not path.startswith("/") or path.startswith("//") or _BAD.search(path):
        raise not_found(raw_path)
    if any(part in (".", "..") for part in path.split("/")):
        raise not_found(raw_path)
    for name, pattern in ROUTES:
        match = pattern.fullmatch(path)
        if match:
            try:
                query = parse_qs(
                    raw_query, keep_blank_values=True, strict_parsing=False, errors="strict"
                )
            except (UnicodeDecodeError, ValueError):
                raise BadRequest(400, "query string is not valid UTF-8 percent-encoding") from None
            return Request(name, match.groups(), query)
    raise not_found(raw_path)


def listed_epoch(epoch: int | None, epochs: list[Any] | None, what: str) -> int | None:
    """The epoch a request asks of ``what`` (a comparison, a layer's visualizations): None
    for a batch run (``epochs`` None or ``[None]``, where asking one is a 400), the last of
    ``epochs`` when not asked, else one of them (404 otherwise)."""
    if epochs is None or list(epochs) == [None]:
        if epoch is not None:
            raise BadRequest(400, f"epoch={epoch}: {what} is of a batch run; leave epoch out")
        return None
    if epoch is None:
        return int(epochs[-1])
    if epoch not in epochs:
        raise BadRequest(
            404, f"epoch {epoch} is not in {what}; its epochs: {', '.join(map(str, epochs))}"
        )
    return epoch
