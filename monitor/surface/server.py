"""The HTTP endpoints (/metrics, /healthz, /readyz) on a small server that a scrape storm, a crowd of
idle connections or clients that send their request a byte at a time cannot take down.

It knows nothing of Prometheus or AWS: it is handed three callables and serves their answers. One
thread accepts connections and reads their requests without blocking; only a complete request is
handed to a small pool of workers, which answer one request per connection. So an idle or slow
client costs a file descriptor, never a worker: a connection that has not sent its whole request
REQUEST_DEADLINE_SECONDS after connecting is closed, and one closed before sending anything is
simply forgotten. When too many requests queue, new ones get a 503 at once instead of waiting.
"""

from __future__ import annotations

import errno
import io
import re
import selectors
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import NamedTuple

import structlog

from monitor.core.errors import ConfigError

log = structlog.get_logger("monitor.server")

BACKLOG = 1024  # the kernel caps it at net.core.somaxconn
REQUEST_DEADLINE_SECONDS = 5.0  # to send the whole request (line, headers, body) after connecting
ANSWER_DEADLINE_SECONDS = 5.0  # for the client to take the whole answer once a worker has it
# Request line, headers and body: a scrape or a probe sends a few hundred bytes, and at this size
# MAX_WAITING connections hold 64 MiB at most.
MAX_REQUEST_BYTES = 16384
WORKERS = 8  # answering is quick (a rendered snapshot): a few threads serve hundreds of scrapes
QUEUE_LIMIT = 256  # requests waiting for a worker; more get 503 at once
MAX_WAITING = 4096  # connections without a whole request yet; beyond, the oldest is closed


def _canned(status: HTTPStatus, body: str, *extra: str) -> bytes:
    head = [f"HTTP/1.1 {status.value} {status.phrase}", "Content-Type: text/plain; charset=utf-8", f"Content-Length: {len(body)}",
            *extra, "Connection: close"]
    return ("\r\n".join(head) + "\r\n\r\n" + body).encode()


_BUSY = _canned(HTTPStatus.SERVICE_UNAVAILABLE, "busy\n", "Retry-After: 1")
_URI_TOO_LONG = _canned(HTTPStatus.REQUEST_URI_TOO_LONG, "request line too long\n")
_HEAD_TOO_LARGE = _canned(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "request headers too large\n")
_BODY_TOO_LARGE = _canned(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "request body too large\n")


@dataclass(frozen=True)
class Endpoints:
    metrics: Callable[[str | None], tuple[bytes, str]]  # Accept header -> (body, content type)
    health: Callable[[], tuple[bool, str]]  # (healthy, one line saying why)
    ready: Callable[[], tuple[bool, str]]


def parse_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)


# -- when a request is whole (what the stdlib parser will read of it) ----------------------------
_HEAD_END = re.compile(rb"\n\r?\n")  # the empty line that ends the headers
_CONTENT_LENGTH = re.compile(rb"\ncontent-length[ \t]*:[ \t]*(\d{1,12})[ \t]*\r?\n", re.IGNORECASE)
_VERSION = re.compile(r"HTTP/(\d{1,10})\.\d{1,10}", re.ASCII)


def request_size(data: bytes) -> int | None:
    """How many bytes the request at the start of `data` takes in all (it may be more than has
    arrived), or None while its headers are not complete yet."""
    line_end = data.find(b"\n")
    if line_end < 0:
        return None
    if _refused_on_its_own(data[:line_end]):
        return line_end + 1  # the parser answers 400/505 without reading headers: no need to wait
    head = _HEAD_END.search(data, line_end)
    if head is None:
        return None
    if data[:line_end].split(None, 1)[:1] != [b"GET"]:
        return head.end()  # any other method is answered 501 whatever its body (no need to wait)
    length = _CONTENT_LENGTH.search(data, line_end, head.end())
    return head.end() + (int(length.group(1)) if length else 0)


def _refused_on_its_own(line: bytes) -> bool:
    """The stdlib parser rejects this request line before it reads any header (the same checks)."""
    words = line.decode("iso-8859-1").split()
    if len(words) == 3:
        version = _VERSION.fullmatch(words[2])
        return version is None or int(version.group(1)) >= 2
    return not (len(words) == 2 and words[0] == "GET")  # "GET /path" alone is HTTP/0.9: headers follow


# -- a worker's side ----------------------------------------------------------------------------
class _Request(NamedTuple):
    connection: socket.socket
    data: bytes  # the whole request, already read by the accepting thread
    answer_deadline: float  # monotonic time by which the answer must be taken


class _Writer:
    """Sends an answer with one deadline for all of it, so a client that does not read holds a
    worker for ANSWER_DEADLINE_SECONDS at most."""

    def __init__(self, connection: socket.socket, deadline: float) -> None:
        self._connection, self._deadline = connection, deadline

    def write(self, data: bytes) -> int:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the client did not take the answer in time")
        self._connection.settimeout(left)
        self._connection.sendall(data)
        return len(data)

    def flush(self) -> None:
        pass


class _Handler(BaseHTTPRequestHandler):
    """One request per connection (answered with Connection: close): a worker never waits on an
    idle keep-alive connection. It reads the request from memory, never from the socket."""

    protocol_version = "HTTP/1.1"
    endpoints: Endpoints

    def setup(self) -> None:
        request: _Request = self.request
        self.connection = request.connection
        self.rfile = io.BytesIO(request.data)
        self.wfile = _Writer(request.connection, request.answer_deadline)

    def finish(self) -> None:
        pass  # the worker closes the connection

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


# -- the accepting thread's side ----------------------------------------------------------------
@dataclass
class _Pending:
    """A connection whose request has not all arrived yet."""

    peer: tuple
    deadline: float  # monotonic time by which the whole request must have arrived
    data: bytearray = field(default_factory=bytearray)


class HttpServer:
    """Binds at construction (so a port in use fails before anything starts), serves after start().
    `request_deadline` is how long a client has to send its whole request after connecting."""

    def __init__(self, listen: str, endpoints: Endpoints, request_deadline: float = REQUEST_DEADLINE_SECONDS,
                 answer_deadline: float = ANSWER_DEADLINE_SECONDS) -> None:
        host, port = parse_listen(listen)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            self._socket = socket.create_server((host, port), family=family, backlog=BACKLOG)
        except OSError as exc:
            why = "is already in use" if exc.errno == errno.EADDRINUSE else f"cannot be bound ({exc.strerror})"
            raise ConfigError(f"--listen: {listen} {why}; choose another address with --listen") from None
        self._socket.setblocking(False)
        self._handler = type("Handler", (_Handler,), {"endpoints": endpoints})
        self._request_deadline = request_deadline
        self._answer_deadline = answer_deadline
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

    def _serve(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self._socket, selectors.EVENT_READ)
        # Accepted, request not whole yet, oldest first: all have the same deadline after
        # connecting, so the first one is always the next to expire.
        waiting: dict[socket.socket, _Pending] = {}
        try:
            while not self._stopping.is_set():
                for key, _ in selector.select(timeout=0.25):
                    if key.fileobj is self._socket:
                        self._accept(selector, waiting)
                    else:
                        self._receive_guarded(selector, waiting, key.fileobj)
                self._expire(selector, waiting, time.monotonic())
        finally:
            for connection in waiting:
                connection.close()
            selector.close()

    def _accept(self, selector: selectors.BaseSelector, waiting: dict[socket.socket, _Pending]) -> None:
        for _ in range(BACKLOG):
            try:
                connection, peer = self._socket.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. out of file descriptors: the backlog waits for the next turn
                log.warning("http_accept_failed", error=exc.strerror or str(exc))
                return
            if len(waiting) >= MAX_WAITING:
                oldest = next(iter(waiting))
                _forget(selector, waiting, oldest)
                oldest.close()
            connection.setblocking(False)
            selector.register(connection, selectors.EVENT_READ)
            waiting[connection] = _Pending(peer, time.monotonic() + self._request_deadline)

    def _receive_guarded(self, selector: selectors.BaseSelector, waiting: dict[socket.socket, _Pending],
                         connection: socket.socket) -> None:
        """One odd request must not stop the thread that every scrape and probe goes through."""
        try:
            self._receive(selector, waiting, connection)
        except Exception:
            log.exception("http_request_failed")
            if connection in waiting:
                _forget(selector, waiting, connection)
            connection.close()

    def _receive(self, selector: selectors.BaseSelector, waiting: dict[socket.socket, _Pending],
                 connection: socket.socket) -> None:
        pending = waiting[connection]
        try:
            chunk = connection.recv(MAX_REQUEST_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # reset by the client: nobody to answer
            _forget(selector, waiting, connection)
            connection.close()
            return
        if not chunk:
            # Closed before a word: dropped, never a request. Closed (for writing) after part of
            # a request: the parser takes the end of input as the end of the request, as before.
            _forget(selector, waiting, connection)
            if pending.data:
                self._dispatch(connection, pending.peer, bytes(pending.data))
            else:
                connection.close()
            return
        pending.data += chunk
        size = request_size(pending.data)
        if size is not None and size <= len(pending.data):
            _forget(selector, waiting, connection)
            self._dispatch(connection, pending.peer, bytes(pending.data[:size]))
        elif size is not None and size > MAX_REQUEST_BYTES:
            _forget(selector, waiting, connection)
            _refuse(connection, _BODY_TOO_LARGE)
        elif size is None and len(pending.data) >= MAX_REQUEST_BYTES:
            _forget(selector, waiting, connection)
            _refuse(connection, _HEAD_TOO_LARGE if b"\n" in pending.data else _URI_TOO_LONG)

    @staticmethod
    def _expire(selector: selectors.BaseSelector, waiting: dict[socket.socket, _Pending], now: float) -> None:
        """Closes, without an answer, the connections whose whole request did not arrive in time."""
        while waiting:
            connection, pending = next(iter(waiting.items()))
            if pending.deadline > now:
                return
            _forget(selector, waiting, connection)
            _close(connection)

    def _dispatch(self, connection: socket.socket, peer: tuple, data: bytes) -> None:
        with self._lock:
            busy = self._queued >= QUEUE_LIMIT
            if not busy:
                self._queued += 1
        if busy:
            _refuse(connection, _BUSY)
            return
        try:
            self._pool.submit(self._answer, connection, peer, data)
        except RuntimeError:  # the pool is shut down: stopping
            with self._lock:
                self._queued -= 1
            connection.close()

    # -- a worker -----------------------------------------------------------------------------
    def _answer(self, connection: socket.socket, peer: tuple, data: bytes) -> None:
        try:
            self._handler(_Request(connection, data, time.monotonic() + self._answer_deadline), peer, self)
        except OSError as exc:
            # The client went away mid-answer: its loss, one line.
            log.info("http_client_disconnected", error=errno.errorcode.get(exc.errno or 0, type(exc).__name__))
        except Exception:
            log.exception("http_request_failed")
        finally:
            with self._lock:
                self._queued -= 1
            _close(connection)


def _forget(selector: selectors.BaseSelector, waiting: dict[socket.socket, _Pending], connection: socket.socket) -> None:
    selector.unregister(connection)
    del waiting[connection]


def _refuse(connection: socket.socket, answer: bytes) -> None:
    """A short answer without waiting for anything: it fits the socket's send buffer."""
    try:
        connection.setblocking(False)
        connection.send(answer)
    except OSError:
        pass
    _close(connection)


def _close(connection: socket.socket) -> None:
    """Reads what is left unread first, so the close sends a FIN, not a reset that could make the
    client lose the answer."""
    try:
        connection.setblocking(False)
        for _ in range(16):
            if not connection.recv(65536):
                break
    except OSError:
        pass
    try:
        connection.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    connection.close()
