"""The HTTP endpoints of docs/reference.md (/metrics, /healthz, /readyz) on a small threaded server.

It knows nothing of Prometheus or AWS: it is handed three callables and serves their answers.
"""

from __future__ import annotations

import errno
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from monitor.errors import ConfigError


@dataclass(frozen=True)
class Endpoints:
    metrics: Callable[[str | None], tuple[bytes, str]]  # Accept header -> (body, content type)
    health: Callable[[], tuple[bool, str]]  # (healthy, one line saying why)
    ready: Callable[[], tuple[bool, str]]


def parse_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        path = self.path.split("?", 1)[0]
        endpoints = self.server.endpoints
        if path == "/metrics":
            body, content_type = endpoints.metrics(self.headers.get("Accept"))
            self._answer(200, body, content_type)
        elif path in ("/healthz", "/readyz"):
            ok, why = (endpoints.health if path == "/healthz" else endpoints.ready)()
            self._answer(200 if ok else 503, (why + "\n").encode(), "text/plain; charset=utf-8")
        elif path == "/":
            self._answer(200, b"alb-sg-monitor: /metrics /healthz /readyz\n", "text/plain; charset=utf-8")
        else:
            self._answer(404, b"not found\n", "text/plain; charset=utf-8")

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass  # scrapes and probes every few seconds would drown the events that matter


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    endpoints: Endpoints


class _Server6(_Server):
    address_family = socket.AF_INET6


class HttpServer:
    """Binds at construction (so a port in use fails before anything starts), serves after start()."""

    def __init__(self, listen: str, endpoints: Endpoints) -> None:
        host, port = parse_listen(listen)
        try:
            self._server = (_Server6 if ":" in host else _Server)((host, port), _Handler)
        except OSError as exc:
            why = "is already in use" if exc.errno == errno.EADDRINUSE else f"cannot be bound ({exc.strerror})"
            raise ConfigError(f"--listen: {listen} {why}; choose another address with --listen") from None
        self._server.endpoints = endpoints
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
