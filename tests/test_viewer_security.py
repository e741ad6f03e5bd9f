"""Who the viewer answers: the Host check on the loopback (DNS rebinding), the token off it
(query, then an HttpOnly SameSite=Strict cookie), and the security headers on every answer.
A real server on a free port, real sockets."""

from __future__ import annotations

import http.client
import logging
import socket
from http.cookies import SimpleCookie

import numpy as np
import orjson
import pytest
from analysis_helpers import write_run

from pipeline.errors import ConfigError
from pipeline.store import open_run
from pipeline.viewer import start
from pipeline.viewer.server import make_server

N = 4


@pytest.fixture
def run_dir(tmp_path):
    rng = np.random.default_rng(3)
    return write_run(
        tmp_path / "run", {"maps": rng.normal(size=(N, 3, 4)).astype("float32")}, batch=2
    )


class Viewer:
    """A running server: its address, its token, and ``get`` over real sockets."""

    def __init__(self, runs, host="127.0.0.1", **options) -> None:
        self.server, self.thread, self.url = start(runs, host, 0, **options)
        self.port = self.server.server_address[1]
        self.address = ("::1" if ":" in host else "127.0.0.1", self.port)

    def get(self, target: str, headers: dict[str, str] | None = None, method: str = "GET"):
        """``(status, headers, body)``; ``headers`` may set Host (else http.client's own)."""
        headers = dict(headers or {})
        conn = http.client.HTTPConnection(*self.address, timeout=10)
        try:
            conn.putrequest(method, target, skip_host="Host" in headers, skip_accept_encoding=True)
            for key, value in headers.items():
                conn.putheader(key, value)
            conn.endheaders()
            resp = conn.getresponse()
            return resp.status, resp.headers, resp.read()
        finally:
            conn.close()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)
        assert not self.thread.is_alive()


@pytest.fixture
def servers():
    """Start viewers with ``servers(runs, host, **options)``; all stopped after the test."""
    made: list[Viewer] = []

    def make(runs, host="127.0.0.1", **options) -> Viewer:
        made.append(Viewer(runs, host, **options))
        return made[-1]

    yield make
    for v in made:
        v.stop()


def error_of(body: bytes) -> str:
    message = orjson.loads(body)["error"]
    assert isinstance(message, str) and message and "Traceback" not in message
    return message


def refusals(caplog) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if "refused a request for Host" in r.getMessage()
    ]


# -- Host ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.0.0.1:{port}",
        "localhost",
        "localhost:{port}",
        "LocalHost:{port}",
        "[::1]",
        "[::1]:{port}",
        "127.0.0.1:9999",  # an ssh tunnel's port
    ],
)
def test_loopback_host_names_are_answered(servers, run_dir, host):
    v = servers([run_dir])
    status, _, body = v.get("/api/runs", {"Host": host.format(port=v.port)})
    assert status == 200 and orjson.loads(body)["runs"][0]["num_patterns"] == N


@pytest.mark.parametrize(
    "host",
    [
        "evil.example.com",
        "evil.example.com:{port}",
        "127.0.0.1.evil.example.com",
        "localhost.evil.example.com:{port}",
        "127.0.0.1@evil.example.com",
        "evil.example.com#127.0.0.1",
        "[::1]evil",
        "192.168.1.20:{port}",
        "0.0.0.0:{port}",
        "localhost:port",
        "",
    ],
)
def test_other_host_names_get_403_json_logged_once(servers, run_dir, host, caplog):
    v = servers([run_dir])
    host = host.format(port=v.port)
    with caplog.at_level(logging.WARNING, logger="pipeline.viewer"):
        for target in ("/api/runs", "/", "/assets/app.js", "/api/run/0/data?layer=maps&pattern=0"):
            status, headers, body = v.get(target, {"Host": host})
            assert status == 403 and headers["Content-Type"] == "application/json"
            assert "127.0.0.1, localhost or [::1]" in error_of(body)
            assert b"maps" not in body and b"<html" not in body
    logged = refusals(caplog)
    assert len(logged) == 1 and repr(host) in logged[0]


def test_each_refused_host_is_logged_once_and_no_host_is_refused(servers, run_dir, caplog):
    v = servers([run_dir])
    with caplog.at_level(logging.WARNING, logger="pipeline.viewer"):
        for host in ("a.example", "b.example", "a.example", "b.example", "a.example"):
            assert v.get("/api/runs", {"Host": host})[0] == 403
        assert v.get("/api/runs")[0] == 200  # http.client's own Host: 127.0.0.1:PORT
    assert [m.split("'")[1] for m in refusals(caplog)] == ["a.example", "b.example"]
    # no Host header at all (HTTP/1.1 requires one), or two of them
    with socket.create_connection(v.address, timeout=10) as sock:
        sock.sendall(b"GET /api/runs HTTP/1.1\r\nConnection: close\r\n\r\n")
        answer = b"".join(iter(lambda: sock.recv(65536), b""))
    assert answer.startswith(b"HTTP/1.1 403 ")
    status, _, _ = v.get("/api/runs", {"Host": "127.0.0.1", "host": "evil.example"})
    assert status == 403


def test_a_server_on_ipv6_loopback_answers_its_address(servers, run_dir):
    try:
        v = servers([run_dir], "::1")
    except ConfigError as exc:  # a machine without IPv6 loopback
        pytest.skip(f"no IPv6 loopback here: {exc}")
    assert v.url == f"http://[::1]:{v.port}/"
    assert v.get("/api/runs", {"Host": f"[::1]:{v.port}"})[0] == 200
    assert v.get("/api/runs", {"Host": "localhost"})[0] == 200
    assert v.get("/api/runs", {"Host": f"evil.example:{v.port}"})[0] == 403


# -- token --------------------------------------------------------------------------------------
def cookie_of(headers) -> SimpleCookie:
    values = headers.get_all("Set-Cookie") or []
    assert len(values) == 1, values
    return SimpleCookie(values[0])


def test_off_the_loopback_a_token_is_required_then_kept_in_a_cookie(servers, run_dir, caplog):
    with caplog.at_level(logging.WARNING, logger="pipeline.viewer"):
        v = servers([run_dir], "0.0.0.0")
    token = v.server.token
    assert token and len(token) >= 40  # secrets.token_urlsafe(32): 256 random bits
    assert v.url == f"http://0.0.0.0:{v.port}/?token={token}"
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    # no Host check off the loopback: any name, but only with the token
    for target in ("/", "/api/runs", "/assets/app.js", "/api/run/0/data?layer=maps&pattern=0"):
        status, headers, body = v.get(target, {"Host": "viewer.lab.example"})
        assert status == 401 and headers["Content-Type"] == "application/json", target
        assert "?token=" in error_of(body) and "Set-Cookie" not in headers
    # the logged URL: the page, and a cookie for what the page asks next
    status, headers, body = v.get(f"/?token={token}", {"Host": "viewer.lab.example"})
    assert status == 200 and body.startswith(b"<!doctype html>")
    morsel = cookie_of(headers)[f"passage-token-{v.port}"]
    assert morsel.value == token
    assert morsel["httponly"] is True and morsel["samesite"] == "Strict" and morsel["path"] == "/"
    cookie = {"Cookie": f"other=1; passage-token-{v.port}={token}"}
    status, headers, body = v.get("/api/run/0/data?layer=maps&pattern=3", cookie)
    assert status == 200 and "Set-Cookie" not in headers
    assert body == open_run(run_dir).get("maps", 3).astype("<f4").tobytes()
    # a token in the query works anywhere, not only on the page
    assert v.get(f"/api/runs?token={token}")[0] == 200


@pytest.mark.parametrize(
    "target, cookie",
    [
        ("/api/runs?token={wrong}", None),
        ("/api/runs?token=", None),
        ("/api/runs?token={token}x", None),
        ("/api/runs?token={short}", None),
        ("/api/runs?tokens={token}", None),
        ("/api/runs", "passage-token-{port}={wrong}"),
        ("/api/runs", "passage-token-{port}={short}"),
        ("/api/runs", "passage-token-1={token}"),  # another port's cookie
        ("/api/runs", 'passage-token-{port}="{token}'),  # malformed
    ],
)
def test_a_wrong_token_is_401(servers, run_dir, target, cookie):
    v = servers([run_dir], "127.0.0.1", token="a-token-of-twenty-chars")
    token = v.server.token
    fill = {"token": token, "wrong": token[:-1] + "X", "short": token[:5], "port": v.port}
    headers = {"Cookie": cookie.format(**fill)} if cookie else {}
    status, headers, body = v.get(target.format(**fill), headers)
    assert status == 401 and "Set-Cookie" not in headers
    error_of(body)


def test_a_given_token_is_required_even_on_the_loopback(servers, run_dir):
    v = servers([run_dir], token="my-own-token-0123456789")
    assert v.url.endswith("/?token=my-own-token-0123456789")
    assert v.get("/api/runs")[0] == 401
    assert v.get("/api/runs?token=my-own-token-0123456789")[0] == 200
    # and the Host check still holds
    assert v.get("/?token=my-own-token-0123456789", {"Host": "evil.example"})[0] == 403


def test_each_server_generates_its_own_token(servers, run_dir):
    tokens = {servers([run_dir], require_token=True).server.token for _ in range(3)}
    assert len(tokens) == 3


def test_no_token_off_the_loopback_warns(servers, run_dir, caplog):
    with caplog.at_level(logging.WARNING, logger="pipeline.viewer"):
        v = servers([run_dir], "0.0.0.0", require_token=False)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and "without a token" in warned[0] and "anyone" in warned[0]
    assert v.server.token is None and "token" not in v.url
    assert v.get("/api/runs", {"Host": "viewer.lab.example"})[0] == 200


@pytest.mark.parametrize(
    "token", ["short", "has space in it......", "ünïcödé-token-0123456", "x" * 257]
)
def test_a_token_that_cannot_go_in_a_url_is_refused(run_dir, token):
    with pytest.raises(ConfigError, match="16 to 256 characters"):
        make_server([run_dir], "127.0.0.1", 0, token=token)


def test_a_token_with_require_token_false_is_refused(run_dir):
    with pytest.raises(ConfigError, match="one or the other"):
        make_server([run_dir], "127.0.0.1", 0, token="a-token-of-twenty-chars", require_token=False)


# -- headers on every answer --------------------------------------------------------------------
def assert_security_headers(headers, what: str) -> None:
    policy = {
        d.split()[0]: d.split()[1:]
        for d in headers["Content-Security-Policy"].split(";")
        if d.strip()
    }
    assert policy["default-src"] == ["'self'"], what
    assert policy["script-src"] == ["'self'"], what  # no inline script, no eval
    assert policy["style-src"] == ["'self'"], what
    assert policy["frame-ancestors"] == ["'none'"], what
    assert policy["object-src"] == ["'none'"], what
    assert headers["X-Content-Type-Options"] == "nosniff", what
    assert headers["Referrer-Policy"] == "no-referrer", what


def raw_headers(address, data: bytes) -> tuple[int, http.client.HTTPMessage]:
    """Status and headers of the answer to bytes sent on a socket (what http.client refuses)."""
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(data)
        answer = b"".join(iter(lambda: sock.recv(65536), b""))
    head = answer.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    message = http.client.HTTPMessage()
    for line in head[1:]:
        key, _, value = line.partition(":")
        message[key] = value.strip()
    return int(head[0].split()[1]), message


def test_every_kind_of_answer_has_the_security_headers(servers, run_dir):
    run = open_run(run_dir)
    data = run_dir / run.entry_for("maps", 2, None).path
    flipped = bytearray(data.read_bytes())
    flipped[-1] ^= 0x40
    data.write_bytes(bytes(flipped))  # patterns 2-3: a checksum mismatch (422)
    v = servers([run_dir])
    t = servers([run_dir], token="a-token-of-twenty-chars")
    kinds = {
        "page": (v, "/", "GET", {}, 200),
        "asset": (v, "/assets/app.js", "GET", {}, 200),
        "json": (v, "/api/runs", "GET", {}, 200),
        "data": (v, "/api/run/0/data?layer=maps&pattern=0", "GET", {}, 200),
        "head": (v, "/api/runs", "HEAD", {}, 405),  # read-only: GET alone
        "bad number": (v, "/api/run/0/data?layer=maps&pattern=x", "GET", {}, 400),
        "unknown page": (v, "/nothing", "GET", {}, 404),
        "method": (v, "/api/runs", "POST", {}, 405),
        "damaged": (v, "/api/run/0/data?layer=maps&pattern=2", "GET", {}, 422),
        "host": (v, "/", "GET", {"Host": "evil.example"}, 403),
        "token": (t, "/", "GET", {}, 401),
        "token given": (t, "/?token=a-token-of-twenty-chars", "GET", {}, 200),
    }
    for what, (server, target, method, headers, want) in kinds.items():
        status, got, _ = server.get(target, headers, method)
        assert status == want, what
        assert_security_headers(got, what)
    # http.server's own errors: a malformed request line, a target too long, 120 headers
    for data, want in (
        (b"GET /a b HTTP/1.1\r\n\r\n", 400),
        (b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\n" + b"X-Many: 1\r\n" * 120 + b"\r\n", 431),
    ):
        status, got = raw_headers(v.address, data)
        assert status == want
        assert_security_headers(got, data[:20].decode())
