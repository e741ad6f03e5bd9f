"""The viewer's real server on 127.0.0.1 (a free port, a thread), hit with raw request
targets through ``http.client`` and plain sockets; ``passage serve`` as a subprocess."""

from __future__ import annotations

import http.client
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import orjson
import pytest
from analysis_helpers import write_run

from pipeline.store import open_run
from pipeline.viewer import start

ROOT = Path(__file__).resolve().parents[1]
N = 12


@pytest.fixture
def run_dir(tmp_path):
    rng = np.random.default_rng(5)
    data = {
        "maps": rng.normal(size=(N, 6, 7)).astype("float32"),
        "vector": rng.normal(size=(N, 5)).astype("float32"),
    }
    return write_run(tmp_path / "run", data, batch=5)


@pytest.fixture
def viewer(run_dir):
    """(host, port) of a running server; stopped (shutdown + server_close) after the test."""
    server, thread, url = start([run_dir], "127.0.0.1", 0)
    try:
        parts = urlsplit(url)
        yield parts.hostname, parts.port
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
    assert not thread.is_alive()


def request(address, target: str, method: str = "GET", conn=None):
    """``(status, headers, body)`` of one request sent with ``target`` exactly as given."""
    own = conn is None
    conn = conn or http.client.HTTPConnection(*address, timeout=10)
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        if own:
            conn.close()


def raw(address, data: bytes) -> tuple[int, bytes]:
    """The status and body of whatever the server answers to ``data`` sent on a socket."""
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    answer = b"".join(chunks)
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def json_error(body: bytes) -> str:
    message = orjson.loads(body)["error"]
    assert isinstance(message, str) and "Traceback" not in message
    return message


def test_data_over_http_is_the_stored_slice(viewer, run_dir):
    run = open_run(run_dir)
    conn = http.client.HTTPConnection(*viewer, timeout=10)
    try:  # one keep-alive connection for every request
        for p in range(N):
            status, headers, body = request(
                viewer, f"/api/run/0/data?layer=maps&pattern={p}", conn=conn
            )
            assert status == 200 and headers["Content-Type"] == "application/octet-stream"
            assert body == run.get("maps", p).astype("<f4").tobytes()
            assert headers["X-Shape"] == "6,7" and int(headers["Content-Length"]) == 6 * 7 * 4
            for key in ("X-Min", "X-Max", "X-Layer-Min", "X-Layer-Max"):
                float(headers[key])
    finally:
        conn.close()
    status, headers, body = request(viewer, "/api/runs")
    assert status == 200 and orjson.loads(body)["runs"][0]["num_patterns"] == N
    status, headers, body = request(viewer, "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")


def test_parallel_requests(viewer, run_dir):
    run = open_run(run_dir)
    wrong: list[str] = []

    def worker(k: int) -> None:
        for p in range(N):
            layer = ("maps", "vector")[(p + k) % 2]
            _, _, body = request(viewer, f"/api/run/0/data?layer={layer}&pattern={p}")
            if body != run.get(layer, p).tobytes():
                wrong.append(f"{layer} {p}")

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert wrong == []


@pytest.mark.parametrize(
    "target",
    [
        "/data/../../etc/passwd",
        "/assets/../../pyproject.toml",
        "/%2e%2e%2f%2e%2e%2fetc/passwd",
        "/assets/%2e%2e/app.js",
        "/assets/..%2f..%2fpyproject.toml",
        "/etc/passwd",
        "//etc/passwd",
        "http://127.0.0.1/../../etc/passwd",
        "/assets/" + "a" * 5000,
    ],
)
def test_traversal_over_http_is_404_json(viewer, target):
    status, headers, body = request(viewer, target)
    assert status == 404 and headers["Content-Type"] == "application/json"
    json_error(body)
    assert b"root:" not in body and b"[project]" not in body


def test_bad_numbers_methods_and_broken_requests(viewer):
    status, _, body = request(viewer, "/api/run/0/data?layer=maps&pattern=abc")
    assert status == 400 and "integer" in json_error(body)
    status, _, body = request(viewer, "/api/run/0/data?layer=maps&pattern=12")
    assert status == 404 and "out of range" in json_error(body)
    for method in ("POST", "PUT", "DELETE", "BREW"):
        status, headers, body = request(viewer, "/api/runs", method=method)
        assert status == 405 and headers["Allow"] == "GET", method
        json_error(body)
    # what http.client refuses to send: a NUL, a malformed request line, an endless one
    status, body = raw(
        viewer,
        b"GET /assets/app.js\x00.png HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    assert status == 404
    json_error(body)
    status, body = raw(viewer, b"GET /a b HTTP/1.1\r\n\r\n")
    assert status == 400
    json_error(body)
    status, body = raw(viewer, b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n")
    assert status == 414
    json_error(body)


def test_requests_log_nothing_to_stderr(viewer, capfd):
    request(viewer, "/api/runs")
    request(viewer, "/nope")
    assert capfd.readouterr().err == ""


def test_a_public_host_logs_a_warning_and_needs_the_token(run_dir, caplog):
    with caplog.at_level(logging.WARNING, logger="pipeline.viewer"):
        server, thread, url = start([run_dir], "0.0.0.0", 0)
    try:
        warned = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warned) == 1 and "0.0.0.0" in warned[0].getMessage()
        assert "token" in warned[0].getMessage()
        assert "--host 127.0.0.1" in warned[0].getMessage()
        parts = urlsplit(url)
        assert parts.query == f"token={server.token}"
        address = ("127.0.0.1", parts.port)
        assert request(address, "/api/runs")[0] == 401
        assert request(address, f"/api/runs?{parts.query}")[0] == 200
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pipeline.viewer"):
        server, thread, url = start([run_dir], "127.0.0.1", 0)
    server.shutdown()
    server.server_close()
    thread.join(10)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert server.token is None and "token" not in url


class ServeProcess:
    """``passage serve ARGS --port 0`` as a subprocess: the lines it logged up to its URL, the
    URL, and ``stop()`` (Ctrl-C as in a terminal, then the exit status)."""

    def __init__(self, *args: str) -> None:
        # PYTHONFAULTHANDLER: a server that does not stop shows where its threads are (SIGABRT)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONFAULTHANDLER": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "serve", *args, "--port", "0"],
            cwd=ROOT,
            env=env,
            stderr=subprocess.PIPE,
            text=True,
            # Ctrl-C as in a terminal: a shell's background job (`make test &`) starts with
            # SIGINT ignored, and a child Python then keeps ignoring it
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        self.lines: list[str] = []
        self.url = ""
        for line in self.proc.stderr:  # up to the line with the URL (or the end)
            self.lines.append(line)
            match = re.search(r"http://\S+", line)
            if match:
                self.url = match.group(0)
                break
        assert self.url, "".join(self.lines)
        self.port = urlsplit(self.url).port

    def stop(self) -> str:
        """Ctrl-C; asserts a clean exit; what it logged after the URL."""
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGABRT)
            pytest.fail(f"passage serve ignored SIGINT for 30 s:\n{self.proc.stderr.read()}")
        assert self.proc.returncode == 0
        return self.proc.stderr.read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc.stderr.close()


def test_passage_serve_stops_on_ctrl_c(run_dir):
    serving = ServeProcess(str(run_dir))
    try:
        assert len(serving.lines) == 1
        assert serving.url == f"http://127.0.0.1:{serving.port}/"
        status, _, body = request(("127.0.0.1", serving.port), "/api/runs")
        assert status == 200 and orjson.loads(body)["runs"][0]["name"] == "run"
        assert "Traceback" not in serving.stop()
    finally:
        serving.close()
    with pytest.raises(ConnectionRefusedError):  # the port is free again
        socket.create_connection(("127.0.0.1", serving.port), timeout=5).close()


def test_passage_serve_token_flags(run_dir):
    token = "flag-given-token-0123456789"
    # -q: the URL is the way in, so it is logged even so
    serving = ServeProcess("-q", str(run_dir), "--host", "0.0.0.0", "--token", token)
    try:
        assert "serving on 0.0.0.0" in serving.lines[0] and "token" in serving.lines[0]
        assert serving.url == f"http://0.0.0.0:{serving.port}/?token={token}"
        address = ("127.0.0.1", serving.port)
        assert request(address, "/api/runs")[0] == 401
        assert request(address, f"/api/runs?token={token}")[0] == 200
        serving.stop()
    finally:
        serving.close()
    serving = ServeProcess(str(run_dir), "--host", "0.0.0.0", "--no-token")
    try:
        assert len(serving.lines) == 2 and "without a token" in serving.lines[0]
        assert serving.url == f"http://0.0.0.0:{serving.port}/"
        assert request(("127.0.0.1", serving.port), "/api/runs")[0] == 200
        serving.stop()
    finally:
        serving.close()


def test_passage_serve_refuses_bad_token_flags(run_dir, capsys):
    from pipeline.cli import main

    for args in (["--token", "flag-given-token-0123456789", "--no-token"], ["--token", "short"]):
        assert main(["serve", str(run_dir), "--port", "0", *args]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "passage: error: --token" in err, err


def test_passage_serve_refuses_a_folder_without_a_run(tmp_path, capsys):
    from pipeline.cli import main

    assert main(["serve", str(tmp_path / "nothing"), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "passage: error:" in err
    assert main(["serve", str(tmp_path), "--port", "70000"]) == 2


def test_a_busy_port_is_one_line(run_dir, capsys):
    from pipeline.cli import main

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        assert main(["serve", str(run_dir), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"port {port}" in err
