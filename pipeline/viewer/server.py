"""The viewer's web server: the standard library's ``ThreadingHTTPServer`` around ``Api``.

The handler checks who is asking, then passes the method and the raw request target to
``Api.handle`` and writes the answer back; errors http.server raises itself (a malformed
request line, an unknown method) are JSON too. ``serve`` blocks until Ctrl-C; ``start`` runs a
server in a daemon thread (tests, benchmarks). The access log goes to ``logging`` at debug level.

Who may ask (docs/viewer.md, "Security"):

- bound to a loopback address, only requests whose ``Host`` names the loopback
  (``127.0.0.1``, ``localhost``, ``[::1]`` or the bound address, any port) are answered; any
  other gets 403, so a web page whose name was rebound to 127.0.0.1 (DNS rebinding) reads
  nothing;
- bound to any other address, a token is required (generated, or given): ``?token=`` in the
  URL, then an HttpOnly, SameSite=Strict cookie set by the answer to that URL; without it, 401;
- every answer carries a Content-Security-Policy (the app's own scripts, styles and data only,
  no framing), ``nosniff`` and ``Referrer-Policy: no-referrer``.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import re
import secrets
import socket
import threading
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import orjson

from ..errors import ConfigError
from .api import Api, Response, error_response

log = logging.getLogger(__name__)

# Host header names a loopback-bound server answers (any port: an ssh tunnel changes it)
ALLOWED_HOST_NAMES = frozenset({"127.0.0.1", "localhost", "[::1]"})
# the app is one page, one script, one stylesheet, JSON and raw arrays from the same origin;
# images: model.png from the API and the page's empty `data:,` favicon
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
TOKEN_CHARS = re.compile(r"[A-Za-z0-9._~-]{16,256}")
MAX_LOGGED_HOSTS = 100  # refused Host values remembered (each is logged once)
_HOST = re.compile(r"(\[[0-9a-f:.]+\]|[^\[\]:]*)(?::[0-9]{0,5})?")


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server on this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_host(host: str) -> str:
    """``host`` as written in a URL or a Host header (IPv6 in brackets)."""
    return f"[{host}]" if ":" in host else host


def host_name(header: str) -> str | None:
    """The name in a Host header, lower case, without its port (``[::1]`` keeps its
    brackets); None when the header is not ``name`` or ``name:port``."""
    match = _HOST.fullmatch(header.strip().lower())
    return (match.group(1) or None) if match else None


def check_token(token: str, name: str = "token") -> str:
    """``token`` when it can be written in a URL and a cookie as it is, else ``ConfigError``
    (naming it ``name``)."""
    if not TOKEN_CHARS.fullmatch(token):
        raise ConfigError(
            f"{name} must be 16 to 256 characters of A-Z a-z 0-9 . _ ~ -; received "
            f"{len(token)} character(s){'' if token.isascii() else ' (not all ASCII)'}; "
            "leave it out to have one generated"
        )
    return token


def same_token(given: str | None, token: str) -> bool:
    """Whether ``given`` is ``token`` (constant-time comparison)."""
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


class ViewerServer(ThreadingHTTPServer):
    """A threading HTTP server holding the ``Api`` its handlers answer from, and the rules
    of who may ask: the Host names it answers (loopback) or its token (elsewhere)."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], api: Api, token: str | None = None) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.api = api
        self.token = token
        bound = address[0].lower()
        self.allowed_hosts: frozenset[str] | None = (
            ALLOWED_HOST_NAMES | {url_host(bound)} if is_loopback(bound) else None
        )
        self._refused_hosts: set[str] = set()
        self._refused_lock = threading.Lock()
        super().__init__(address, Handler)

    def server_close(self) -> None:
        super().server_close()
        self.api.runs.close()  # the background checksum thread, if one started

    @property
    def cookie_name(self) -> str:
        """The token's cookie, one per port (cookies do not tell ports apart)."""
        return f"passage-token-{self.server_address[1]}"

    @property
    def url(self) -> str:
        """The server's address, without its token."""
        host, port = self.server_address[:2]
        return f"http://{url_host(str(host))}:{port}/"

    @property
    def open_url(self) -> str:
        """The URL to open in a browser: ``url``, with ``?token=`` when one is required."""
        return self.url + (f"?token={self.token}" if self.token else "")

    def refuse_host(self, host: str) -> None:
        """Log a refused Host value the first time it is seen."""
        with self._refused_lock:
            if host in self._refused_hosts or len(self._refused_hosts) >= MAX_LOGGED_HOSTS:
                return
            self._refused_hosts.add(host)
        log.warning(
            "refused a request for Host %r: this viewer answers only 127.0.0.1, localhost "
            "and [::1] (a web page may be trying to read it through DNS rebinding)",
            host,
        )


class Handler(BaseHTTPRequestHandler):
    server: ViewerServer
    protocol_version = "HTTP/1.1"  # keep-alive: the page asks for one slice per layer
    server_version = "passage-viewer"
    # a request line without a version (HTTP/0.9's form) is answered with a status line and
    # headers too, never a bare body
    default_request_version = "HTTP/1.0"
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
        refusal = self._host_refusal()
        cookie: str | None = None
        if refusal is None and self.server.token is not None:
            refusal, cookie = self._token_check(self.server.token)
        resp = refusal or self.server.api.handle(self.command, self.path)
        if cookie is not None:
            resp = Response(
                resp.status, resp.content_type, resp.body, {**resp.headers, "Set-Cookie": cookie}
            )
        self._send(resp, body=self.command != "HEAD")

    def _host_refusal(self) -> Response | None:
        """403 when bound to the loopback and the Host header names anything else."""
        allowed = self.server.allowed_hosts
        if allowed is None:
            return None
        headers = self.headers.get_all("Host", [])
        if len(headers) == 1 and host_name(headers[0]) in allowed:
            return None
        shown = headers[0][:100] if len(headers) == 1 else f"({len(headers)} Host headers)"
        self.server.refuse_host(shown)
        return error_response(
            403,
            f"Host {shown!r} refused: this viewer answers only requests for 127.0.0.1, "
            "localhost or [::1]; open the URL it logged",
        )

    def _token_check(self, token: str) -> tuple[Response | None, str | None]:
        """(401 or None, a Set-Cookie value or None): the token from ``?token=`` or the
        cookie; a right ``?token=`` sets the cookie."""
        query = parse_qs(self.path.partition("?")[2].partition("#")[0], errors="replace")
        if any(same_token(given, token) for given in query.get("token", [])[:4]):
            return None, (f"{self.server.cookie_name}={token}; Path=/; HttpOnly; SameSite=Strict")
        for header in self.headers.get_all("Cookie", [])[:4]:
            try:
                morsel = SimpleCookie(header).get(self.server.cookie_name)
            except CookieError:
                continue
            if morsel is not None and same_token(morsel.value, token):
                return None, None
        return error_response(
            401,
            "this viewer needs its token: open the URL with ?token=... that passage serve "
            "logged (the answer keeps it in a cookie)",
        ), None

    def _send(self, resp: Response, body: bool = True) -> None:
        self.send_response(resp.status)
        self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(len(resp.body)))
        self.send_header("Cache-Control", "no-store")
        for key, value in SECURITY_HEADERS.items():
            self.send_header(key, value)
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


def make_server(
    runs: list[Path],
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    token: str | None = None,
    require_token: bool | None = None,
) -> ViewerServer:
    """A bound (not yet serving) viewer server for ``runs``.

    ``require_token``: None (default) requires a token when ``host`` is not a loopback
    address or ``token`` is given; True always; False never (a warning when ``host`` is not a
    loopback address). ``token``: the token to require; None generates one. The URL to open,
    with the token, is ``server.open_url``.
    """
    if require_token is None:
        require_token = token is not None or not is_loopback(host)
    if token is not None and not require_token:
        raise ConfigError(
            "a token was given but require_token=False turns tokens off; give one or the other"
        )
    token = (
        (check_token(token) if token is not None else secrets.token_urlsafe(32))
        if require_token
        else None
    )
    if not is_loopback(host):
        if token is None:
            log.warning(
                "serving on %s without a token: anyone who can reach this address can read "
                "the run(s); use --host 127.0.0.1 to keep them local",
                host,
            )
        else:
            log.warning(
                "serving on %s: other machines can reach it; requests need the token in the "
                "logged URL, which travels unencrypted (plain HTTP); use --host 127.0.0.1 to "
                "keep the run(s) local",
                host,
            )
    api = Api([Path(r) for r in runs])
    try:
        return ViewerServer((host, port), api, token)
    except OSError as exc:
        api.runs.close()
        raise ConfigError(
            f"cannot listen on {host} port {port} ({exc.strerror or exc}); choose another "
            "--port or --host"
        ) from exc


def start(
    runs: list[Path],
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    token: str | None = None,
    require_token: bool | None = None,
) -> tuple[ViewerServer, threading.Thread, str]:
    """A server answering in a daemon thread: ``(server, thread, url)``; port 0 picks a free
    port; ``url`` is the one to open (with ``?token=`` when one is required; see
    ``make_server``). Stop it with ``server.shutdown(); server.server_close()``."""
    server = make_server(runs, host, port, token=token, require_token=require_token)
    thread = threading.Thread(target=server.serve_forever, name="passage-viewer", daemon=True)
    thread.start()
    return server, thread, server.open_url


def serve(
    runs: list[Path],
    host: str = "127.0.0.1",
    port: int = 8000,
    quiet: bool = False,
    *,
    token: str | None = None,
    require_token: bool | None = None,
) -> None:
    """Serve ``runs`` until Ctrl-C (which returns normally); the URL to open is logged."""
    server = make_server(runs, host, port, token=token, require_token=require_token)
    try:
        # with a token the URL is the way in: shown even with -q
        level = logging.INFO if not quiet else logging.WARNING if server.token else logging.DEBUG
        log.log(level, "viewer for %d run(s) at %s (Ctrl-C stops)", len(runs), server.open_url)
        server.serve_forever()
    except KeyboardInterrupt:
        log.info("viewer stopped")
    finally:
        server.server_close()
