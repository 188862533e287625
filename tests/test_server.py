"""The HTTP server under a scrape storm and idle connections, on loopback: it keeps answering,
with a bounded number of threads, and closes connections that send nothing."""

from __future__ import annotations

import contextlib
import resource
import selectors
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator

import pytest

from monitor import server as http
from monitor.metrics import Metrics
from monitor.server import Endpoints, HttpServer

IDLE, SCRAPES = 1000, 500


@pytest.fixture(autouse=True)
def enough_file_descriptors():
    """Both ends of every connection live in this process: about 3,000 descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 8192 if hard == resource.RLIM_INFINITY else min(hard, 8192)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    if min(soft, wanted) < 4 * (IDLE + SCRAPES) // 2:
        pytest.skip(f"needs about {2 * (IDLE + SCRAPES)} file descriptors, the limit is {hard}")
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@contextlib.contextmanager
def serving(**options: float) -> Iterator[int]:
    metrics = Metrics()
    server = HttpServer("127.0.0.1:0", Endpoints(metrics.exposition, lambda: (True, "ok"), lambda: (True, "ok")),
                        **options)
    server.start()
    try:
        yield server.port
    finally:
        server.stop()


@contextlib.contextmanager
def idle_connections(port: int, count: int) -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    try:
        for _ in range(count):
            opened.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        yield opened
    finally:
        for s in opened:
            s.close()


def storm(port: int, count: int, timeout: float = 60.0) -> list[bytes]:
    """`count` scrapes at once from non-blocking sockets; each one's whole answer (b"" if none)."""
    selector = selectors.DefaultSelector()
    answers: dict[socket.socket, bytearray] = {}
    request = b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n"
    try:
        for _ in range(count):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            answers[s] = bytearray()
            selector.register(s, selectors.EVENT_WRITE)
        deadline = time.monotonic() + timeout
        while selector.get_map() and time.monotonic() < deadline:
            for key, events in selector.select(timeout=0.5):
                s = key.fileobj
                try:
                    if events & selectors.EVENT_WRITE:
                        s.send(request)
                        selector.modify(s, selectors.EVENT_READ)
                        continue
                    chunk = s.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    chunk = b""
                if chunk:
                    answers[s] += chunk
                else:
                    selector.unregister(s)
        return [bytes(a) for a in answers.values()]
    finally:
        selector.close()
        for s in answers:
            s.close()


def complete(answer: bytes) -> bool:
    """The whole body its Content-Length announces arrived."""
    head, _, body = answer.partition(b"\r\n\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
    return len(body) == length


def timed_scrape(port: int) -> tuple[int, float]:
    began = time.monotonic()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        answer.read()
        return answer.status, time.monotonic() - began


def test_a_scrape_storm_and_idle_connections_leave_metrics_answering_within_a_second():
    with serving() as port:
        threads = threading.active_count()
        with idle_connections(port, IDLE):
            assert threading.active_count() - threads <= 16  # idle sockets pin no thread
            answers = storm(port, SCRAPES)
            statuses = [a.split(b" ", 2)[1] if a.startswith(b"HTTP/1.") else a[:40] for a in answers]
            # every scrape gets an answer: the metrics, or at once "busy" when too many queue
            assert set(statuses) <= {b"200", b"503"}, [s for s in statuses if s not in (b"200", b"503")][:5]
            assert statuses.count(b"200") >= 100
            assert all(complete(a) for a in answers)
            assert threading.active_count() - threads <= 16
            status, took = timed_scrape(port)
            assert status == 200 and took < 1.0, took


def test_connections_that_send_nothing_are_closed_after_the_read_timeout():
    assert 1 <= http.READ_TIMEOUT_SECONDS <= 10  # a few seconds by default
    with serving(idle_timeout=1.0) as port, idle_connections(port, 50) as idle:
        began = time.monotonic()
        for s in idle:
            s.settimeout(10)
            assert s.recv(1) == b""  # closed by the server
        assert time.monotonic() - began < 8
        assert timed_scrape(port)[0] == 200


def test_a_request_sent_too_slowly_is_dropped_and_others_are_served():
    with serving(idle_timeout=1.0) as port, socket.create_connection(("127.0.0.1", port), timeout=10) as slow:
        slow.send(b"GET /metr")  # and nothing more
        status, took = timed_scrape(port)
        assert status == 200 and took < 1.0
        assert slow.recv(1) == b""
