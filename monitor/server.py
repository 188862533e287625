"""The HTTP endpoints (/metrics, /healthz, /readyz) on a small server that a scrape storm or a
crowd of idle connections cannot take down.

It knows nothing of Prometheus or AWS: it is handed three callables and serves their answers. One
thread accepts connections and watches them until a request arrives; a small pool of workers
answers requests, one per connection. So idle connections cost a file descriptor, not a thread,
and are closed after READ_TIMEOUT_SECONDS; when too many requests queue, new ones get a 503 at
once instead of waiting for a timeout.
"""

from __future__ import annotations

import errno
import selectors
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler

import structlog

from monitor.errors import ConfigError

log = structlog.get_logger("monitor.server")

BACKLOG = 1024  # the kernel caps it at net.core.somaxconn
READ_TIMEOUT_SECONDS = 5.0  # to send a request after connecting, and for each read or write after
WORKERS = 8  # answering is quick (a rendered snapshot): a few threads serve hundreds of scrapes
QUEUE_LIMIT = 256  # requests waiting for a worker; more get 503 at once
MAX_WAITING = 4096  # connections without a request yet; beyond, the oldest is closed
_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
         b"Content-Length: 5\r\nRetry-After: 1\r\nConnection: close\r\n\r\nbusy\n")


@dataclass(frozen=True)
class Endpoints:
    metrics: Callable[[str | None], tuple[bytes, str]]  # Accept header -> (body, content type)
    health: Callable[[], tuple[bool, str]]  # (healthy, one line saying why)
    ready: Callable[[], tuple[bool, str]]


def parse_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)


class _Handler(BaseHTTPRequestHandler):
    """One request per connection (answered with Connection: close): a worker never waits on an
    idle keep-alive connection."""

    protocol_version = "HTTP/1.1"
    timeout = READ_TIMEOUT_SECONDS
    endpoints: Endpoints

    def handle(self) -> None:
        self.close_connection = True
        self.handle_one_request()

    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        path = self.path.split("?", 1)[0]
        endpoints = self.endpoints
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
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass  # scrapes and probes every few seconds would drown the events that matter


class HttpServer:
    """Binds at construction (so a port in use fails before anything starts), serves after start()."""

    def __init__(self, listen: str, endpoints: Endpoints, idle_timeout: float = READ_TIMEOUT_SECONDS) -> None:
        host, port = parse_listen(listen)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            self._socket = socket.create_server((host, port), family=family, backlog=BACKLOG)
        except OSError as exc:
            why = "is already in use" if exc.errno == errno.EADDRINUSE else f"cannot be bound ({exc.strerror})"
            raise ConfigError(f"--listen: {listen} {why}; choose another address with --listen") from None
        self._socket.setblocking(False)
        self._handler = type("Handler", (_Handler,), {"endpoints": endpoints})
        self._idle_timeout = idle_timeout
        self._pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="http-worker")
        self._lock = threading.Lock()
        self._queued = 0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="http", daemon=True)

    @property
    def port(self) -> int:
        return self._socket.getsockname()[1]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._socket.close()

    # -- the accepting thread -----------------------------------------------------------------
    def _serve(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self._socket, selectors.EVENT_READ)
        waiting: dict[socket.socket, float] = {}  # accepted, no request yet -> when (oldest first)
        try:
            while not self._stopping.is_set():
                for key, _ in selector.select(timeout=0.25):
                    if key.fileobj is self._socket:
                        self._accept(selector, waiting)
                    else:
                        connection = key.fileobj
                        selector.unregister(connection)
                        del waiting[connection]
                        self._dispatch(connection)
                self._expire(selector, waiting, time.monotonic() - self._idle_timeout)
        finally:
            for connection in waiting:
                connection.close()
            selector.close()

    def _accept(self, selector: selectors.BaseSelector, waiting: dict[socket.socket, float]) -> None:
        for _ in range(BACKLOG):
            try:
                connection, _ = self._socket.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. out of file descriptors: the backlog waits for the next turn
                log.warning("http_accept_failed", error=exc.strerror or str(exc))
                return
            if len(waiting) >= MAX_WAITING:
                oldest = next(iter(waiting))
                selector.unregister(oldest)
                del waiting[oldest]
                oldest.close()
            selector.register(connection, selectors.EVENT_READ)
            waiting[connection] = time.monotonic()

    @staticmethod
    def _expire(selector: selectors.BaseSelector, waiting: dict[socket.socket, float], before: float) -> None:
        while waiting:
            connection, since = next(iter(waiting.items()))
            if since > before:
                return
            selector.unregister(connection)
            del waiting[connection]
            connection.close()

    def _dispatch(self, connection: socket.socket) -> None:
        with self._lock:
            busy = self._queued >= QUEUE_LIMIT
            if not busy:
                self._queued += 1
        if busy:
            _refuse(connection)
            return
        try:
            self._pool.submit(self._answer, connection)
        except RuntimeError:  # the pool is shut down: stopping
            with self._lock:
                self._queued -= 1
            connection.close()

    # -- a worker -----------------------------------------------------------------------------
    def _answer(self, connection: socket.socket) -> None:
        try:
            peer = connection.getpeername()
            self._handler(connection, peer, self)
        except OSError as exc:
            # The client went away (or stalled) mid-request or mid-answer: its loss, one line.
            log.info("http_client_disconnected", error=errno.errorcode.get(exc.errno or 0, type(exc).__name__))
        except Exception:
            log.exception("http_request_failed")
        finally:
            with self._lock:
                self._queued -= 1
            _close(connection)


def _refuse(connection: socket.socket) -> None:
    """A 503 without waiting for anything: read what arrived (so the close sends no reset), answer, close."""
    try:
        connection.setblocking(False)
        connection.recv(65536)
        connection.send(_BUSY)
    except OSError:
        pass
    _close(connection)


def _close(connection: socket.socket) -> None:
    try:
        connection.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    connection.close()
