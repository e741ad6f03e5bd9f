"""The viewer's web server: the standard library's ``ThreadingHTTPServer`` around ``Api``.

The handler only passes the method and the raw request target to ``Api.handle`` and writes
the answer back; errors http.server raises itself (a malformed request line, an unknown
method) are JSON too. ``serve`` blocks until Ctrl-C; ``start`` runs a server in a daemon
thread (tests, benchmarks). The access log goes to ``logging`` at debug level.
"""

from __future__ import annotations

import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson

from ..errors import ConfigError
from .api import Api, Response

log = logging.getLogger(__name__)

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


class ViewerServer(ThreadingHTTPServer):
    """A threading HTTP server holding the ``Api`` its handlers answer from."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], api: Api) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.api = api
        super().__init__(address, Handler)

    def server_close(self) -> None:
        super().server_close()
        self.api.runs.close()  # the background checksum thread, if one started

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = str(host)
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


class Handler(BaseHTTPRequestHandler):
    server: ViewerServer
    protocol_version = "HTTP/1.1"  # keep-alive: the page asks for one slice per layer
    server_version = "passage-viewer"
    timeout = 60  # seconds an idle keep-alive connection is kept
    # headers and body leave in two writes: without TCP_NODELAY, Nagle's algorithm holds the
    # body until the browser's delayed ACK of the headers (tens of ms per request)
    disable_nagle_algorithm = True

    def __getattr__(self, name: str) -> object:
        """``do_<METHOD>`` for every method: the API answers them all (405 but for GET)."""
        if name.startswith("do_"):
            return self._answer
        raise AttributeError(name)

    def _answer(self) -> None:
        resp = self.server.api.handle(self.command, self.path)
        self._send(resp, body=self.command != "HEAD")

    def _send(self, resp: Response, body: bool = True) -> None:
        self.send_response(resp.status)
        self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(len(resp.body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for key, value in resp.headers.items():
            self.send_header(key, value)
        self.end_headers()
        if body:
            self.wfile.write(resp.body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own errors (bad request line, header too long, ...) as JSON."""
        text = message or self.responses.get(code, ("error",))[0]
        self.close_connection = True
        body = orjson.dumps({"error": f"{code} {text}"})
        self._send(
            Response(code, "application/json", body), body=code >= 200 and code not in (204, 304)
        )

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's name
        log.debug("%s %s", self.address_string(), format % args)


def make_server(runs: list[Path], host: str = "127.0.0.1", port: int = 8000) -> ViewerServer:
    """A bound (not yet serving) viewer server for ``runs``; a warning when ``host`` is not
    a loopback address."""
    api = Api([Path(r) for r in runs])
    if host not in LOCAL_HOSTS:
        log.warning(
            "serving on %s: anyone who can reach this address can read the run(s); "
            "use --host 127.0.0.1 to keep them local",
            host,
        )
    try:
        return ViewerServer((host, port), api)
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {host} port {port} ({exc.strerror or exc}); choose another "
            "--port or --host"
        ) from exc


def start(
    runs: list[Path], host: str = "127.0.0.1", port: int = 0
) -> tuple[ViewerServer, threading.Thread, str]:
    """A server answering in a daemon thread: ``(server, thread, url)``; port 0 picks a free
    port. Stop it with ``server.shutdown(); server.server_close()``."""
    server = make_server(runs, host, port)
    thread = threading.Thread(target=server.serve_forever, name="passage-viewer", daemon=True)
    thread.start()
    return server, thread, server.url


def serve(runs: list[Path], host: str = "127.0.0.1", port: int = 8000, quiet: bool = False) -> None:
    """Serve ``runs`` until Ctrl-C (which returns normally)."""
    server = make_server(runs, host, port)
    try:
        (log.debug if quiet else log.info)(
            "viewer for %d run(s) at %s (Ctrl-C stops)", len(runs), server.url
        )
        server.serve_forever()
    except KeyboardInterrupt:
        log.info("viewer stopped")
    finally:
        server.server_close()
