"""The viewer's HTTP interface under random requests: a real server on a free port, raw sockets.

Hypothesis builds request targets (API routes with wrong values, percent-encoded ``..``, NUL,
overlong UTF-8, stray bytes, query strings), methods and header values (Host, Cookie, Range,
Expect, ...). Every answer must be 2xx, 3xx or a 4xx JSON error (422 only for the damaged data
file), never a 5xx or a traceback, carry the security headers, and never hold the content of
a file the run does not list: secrets are planted beside the run, inside it and among its data
files, and an audit hook records every file the process opens while the requests run.
"""

from __future__ import annotations

import socket
import string
import sys
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import orjson
from analysis_helpers import write_run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.store import open_run
from pipeline.viewer import start
from pipeline.viewer.api import ASSETS_DIR

SECRET = b"passage-fuzz-secret-5b0c9e1f7a3d4c2b9e8f6a1d0c7b3e5a"
EXAMPLES = 2500

# -- the files the server opens (CPython audit hook; added once, records only when asked) -------
_opened: list[str] | None = None


def _audit(event: str, args: tuple) -> None:
    if event == "open" and _opened is not None and isinstance(args[0], (str, bytes)):
        path = args[0].decode(errors="replace") if isinstance(args[0], bytes) else args[0]
        _opened.append(path)


if not getattr(sys, "_passage_fuzz_hook", False):
    sys.addaudithook(_audit)
    sys._passage_fuzz_hook = True  # type: ignore[attr-defined]


# -- requests -----------------------------------------------------------------------------------
WORDS = [
    "",
    ".",
    "..",
    "...",
    "%2e%2e",
    "%2E%2e",
    "%2e",
    ".%2e",
    "%2f",
    "%2F",
    "%5c",
    "\\",
    "%00",
    "%c0%ae%c0%ae",
    "%c0%af",
    "%e0%80%ae",
    "%ef%bc%8f",
    "%25",
    "%",
    "%zz",
    "~",
    "*",
    ";",
    "api",
    "run",
    "runs",
    "0",
    "1",
    "2",
    "-1",
    "00",
    "99999999999999999999",
    "data",
    "input",
    "metrics",
    "analysis",
    "cka",
    "model.png",
    "info",
    "colormaps",
    "assets",
    "app.js",
    "index.html",
    "style.css",
    "secret.txt",
    "run.json",
    "manifest.jsonl",
    "metrics.jsonl",
    "batch",
    "000-maps",
    "0000000000.npy",
    "orphan.npy",
    "etc",
    "passwd",
    "%2e%2e%2fsecret.txt",
    "..%2f..%2fsecret.txt",
    "..%5csecret.txt",
    "%u002e%u002e",
]
VALUES = [
    "maps",
    "vector",
    "0",
    "1",
    "5",
    "9",
    "11",
    "12",
    "-1",
    "1e3",
    " 1",
    "+1",
    "0x1",
    "",
    "%00",
    "%ff",
    "%c0%ae",
    "../secret.txt",
    "..%2fsecret.txt",
    "secret",
    "orphan",
    "999999999999999999999",
    "NaN",
    "%2e%2e",
    "maps%00",
    "m%61ps",
    "\u00e9",
    "\u2028",
]
KEYS = ["layer", "pattern", "epoch", "name", "token", "run", "x", "", "layer%00", "pat%74ern"]

# printable text and a few stray bytes; never CR or LF (they would end the request line)
STRAY = st.characters(codec="latin-1", exclude_characters="\r\n")
word = st.one_of(
    st.sampled_from(WORDS),
    st.text(STRAY, max_size=6),
    st.binary(max_size=4).map(lambda b: "".join(f"%{x:02x}" for x in b)),
)
value = st.one_of(st.sampled_from(VALUES), st.text(STRAY, max_size=8), st.integers().map(str))
query = st.lists(
    st.tuples(st.one_of(st.sampled_from(KEYS), st.text(STRAY, max_size=4)), value),
    max_size=4,
).map(lambda kv: "&".join(f"{k}={v}" for k, v in kv))
api_target = st.builds(
    lambda run, what, q: f"/api/run/{run}/{what}?{q}",
    st.one_of(st.sampled_from(["0", "1", "-1", "00", "0x0", "%30", "a"]), word),
    st.one_of(
        st.sampled_from(["data", "input", "metrics", "analysis", "cka", "model.png", "info"]),
        word,
    ),
    query,
)
free_target = st.builds(
    lambda start, parts, q, frag: start + "/".join(parts) + (f"?{q}" if q else "") + frag,
    st.sampled_from(["/", "/", "/", "//", "", "http://127.0.0.1/", "/./", "*"]),
    st.lists(word, max_size=6),
    st.one_of(st.just(""), query),
    st.sampled_from(["", "", "#x", "#../secret.txt"]),
)
data_target = st.builds(  # well-formed data requests: answers, misses, and the damaged file
    lambda layer, p, epoch: f"/api/run/0/data?layer={layer}&pattern={p}" + epoch,
    st.sampled_from(["maps", "vector", "vector", "nope"]),
    st.integers(-2, 14),
    st.sampled_from(["", "&epoch=0", "&epoch=1", "&epoch=1", "&epoch=2"]),
)
target = st.one_of(api_target, free_target, data_target)
other_method = st.one_of(
    st.sampled_from(["HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "get"]),
    st.text(string.ascii_letters + "-_", min_size=1, max_size=8),
)
method = st.sampled_from([True] * 3 + [False]).flatmap(
    lambda get: st.just("GET") if get else other_method
)
loopback = st.sampled_from(["127.0.0.1:{port}", "localhost", "[::1]:{port}", "127.0.0.1"])
strange_host = st.one_of(
    st.sampled_from(["evil.example:{port}", "127.0.0.1.evil.example", "", "[::1", "a:b:c"]),
    st.text(STRAY, max_size=12),
    st.none(),
)
# mostly a Host the server answers, so that most requests reach the API
host = st.sampled_from([True] * 4 + [False]).flatmap(lambda ok: loopback if ok else strange_host)
header = st.tuples(
    st.sampled_from(
        [
            "Cookie",
            "Accept",
            "Range",
            "If-None-Match",
            "Content-Length",
            "Transfer-Encoding",
            "Expect",
            "Connection",
            "Origin",
            "Referer",
            "X-Forwarded-Host",
            "Authorization",
        ]
    ),
    st.one_of(
        st.sampled_from(
            [
                "100-continue",
                "bytes=0-3",
                "chunked",
                "-1",
                "99999999999",
                "passage-token-0=x",
                'a="',
                "keep-alive",
                "close",
            ]
        ),
        st.text(STRAY, max_size=20),
    ),
)


def request_bytes(method: str, target: str, host: str | None, headers: list[tuple[str, str]]):
    lines = [f"{method} {target} HTTP/1.1"]
    if host is not None:
        lines.append(f"Host: {host}")
    lines += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogatepass")


def exchange(address: tuple[str, int], data: bytes) -> bytes:
    """Everything the server answers to ``data`` (the request, then our end closed)."""
    with socket.create_connection(address, timeout=20) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)  # no second request: the server closes after answering
        return b"".join(iter(lambda: sock.recv(65536), b""))


def final_answer(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of the last answer, after any ``100 Continue``."""
    while True:
        head, sep, rest = raw.partition(b"\r\n\r\n")
        assert sep and head.startswith(b"HTTP/1.1 "), raw[:200]
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        if 100 <= status < 200:
            raw = rest
            continue
        headers = {}
        for line in lines[1:]:
            key, _, val = line.partition(":")
            headers[key.strip().lower()] = val.strip()
        return status, headers, rest


# -- the run ------------------------------------------------------------------------------------
def make_run(root: Path) -> tuple[Path, Path, list[Path]]:
    """A training run (2 epochs, 12 patterns, a (3, 4, 2) layer and a vector), analyzed, one
    data file damaged; secrets beside the run, inside it and among its data files."""
    from pipeline.analysis import analyze

    rng = np.random.default_rng(11)
    run_dir = write_run(
        root / "run",
        {
            "maps": rng.normal(size=(2, 12, 3, 4, 2)).astype("float32"),
            "vector": rng.normal(size=(2, 12, 5)).astype("float32"),
        },
        batch=5,
        epochs=[0, 1],
    )
    analyze(run_dir, pictures=False, quiet=True)
    run = open_run(run_dir)
    damaged = run_dir / run.entry_for("vector", 10, 1).path  # patterns 10-11 of epoch 1
    flipped = bytearray(damaged.read_bytes())
    flipped[-3] ^= 0x10
    damaged.write_bytes(bytes(flipped))
    row = np.frombuffer(SECRET, dtype="<f4")
    secrets = [root / "secret.txt", run_dir / "secret.txt", run_dir / "data" / "secret.txt"]
    for path in secrets:
        path.write_bytes(SECRET)
    layer_dir = (run_dir / run.entry_for("maps", 0, 0).path).parent
    for name in ("orphan.npy", "0000000099.npy"):  # data files the manifest does not list
        np.save(layer_dir / name, np.tile(row, (12, 1)))
        secrets.append(layer_dir / name)
    return run_dir, damaged, secrets


def test_random_requests_get_answers_never_errors_or_secrets(tmp_path):
    global _opened
    run_dir, damaged, secrets = make_run(tmp_path)
    server, thread, url = start([run_dir], "127.0.0.1", 0)
    address = ("127.0.0.1", urlsplit(url).port)
    port = str(address[1])
    statuses: dict[int, int] = {}
    recording: list[str] = []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(method, target, host, st.lists(header, max_size=3))
    def one(m: str, t: str, h: str | None, headers: list[tuple[str, str]]) -> None:
        data = request_bytes(m, t, None if h is None else h.replace("{port}", port), headers)
        raw = exchange(address, data)
        assert SECRET not in raw and b"Traceback" not in raw
        status, got, body = final_answer(raw)
        statuses[status] = statuses.get(status, 0) + 1
        assert 200 <= status < 500, (data[:300], raw[:300])
        assert "default-src 'self'" in got["content-security-policy"]
        assert got["x-content-type-options"] == "nosniff"
        assert got["referrer-policy"] == "no-referrer"
        if status >= 400:
            assert got["content-type"] == "application/json", data[:300]
            if body:
                payload = orjson.loads(body)
                assert isinstance(payload["error"], str) and payload["error"]
                if status == 422:  # only the damaged file: patterns 10-11 of epoch 1
                    assert payload["damaged"] == "checksum mismatch", payload

    try:
        _opened = recording
        try:
            one()
        finally:
            _opened = None
        # the fuzz reached the API's answers, not only the Host check and the parser
        assert {200, 400, 403, 404, 405, 422} <= set(statuses), statuses
        assert statuses[200] >= 100, statuses  # and many real answers
        # nothing outside the run (or the app's assets) was opened, and no secret at all
        root = tmp_path.resolve()
        inside = [Path(p).resolve() for p in recording if Path(p).is_absolute()]
        ours = [p for p in inside if p.is_relative_to(root)]
        assert ours, "the audit hook saw no file of the run opened"
        assert all(p.is_relative_to(run_dir.resolve()) for p in ours), sorted(set(ours))
        assert not {p.resolve() for p in secrets} & set(inside)
        assert any(p.is_relative_to(ASSETS_DIR.resolve()) for p in inside), "no asset served"
        # and it still answers, the right numbers
        raw = exchange(
            address,
            b"GET /api/run/0/data?layer=maps&pattern=3&epoch=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        )
        status, _, body = final_answer(raw)
        assert status == 200
        assert body == open_run(run_dir).get("maps", 3, 1).astype("<f4").tobytes()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
    assert not thread.is_alive()
