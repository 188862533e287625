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

from monitor.surface import server as http
from monitor.surface.metrics import Metrics
from monitor.surface.server import Endpoints, HttpServer

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


def timed_scrape(port: int, path: str = "/metrics", timeout: float = 10) -> tuple[int, float]:
    began = time.monotonic()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as answer:
        answer.read()
        return answer.status, time.monotonic() - began


def whole_answer(s: socket.socket, timeout: float = 10) -> bytes:
    """Everything the server sends before it closes the connection."""
    s.settimeout(timeout)
    answer = bytearray()
    for _ in range(1000):
        chunk = s.recv(65536)
        if not chunk:
            break
        answer += chunk
    return bytes(answer)


def closed_without_an_answer(s: socket.socket, timeout: float) -> bool:
    """The server closed the connection and sent nothing (a reset counts: the client kept sending)."""
    s.settimeout(timeout)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True


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
    assert 1 <= http.REQUEST_DEADLINE_SECONDS <= 10  # a few seconds by default
    with serving(request_deadline=1.0) as port, idle_connections(port, 50) as idle:
        began = time.monotonic()
        for s in idle:
            s.settimeout(10)
            assert s.recv(1) == b""  # closed by the server
        assert time.monotonic() - began < 8
        assert timed_scrape(port)[0] == 200


def test_a_request_sent_too_slowly_is_dropped_and_others_are_served():
    with serving(request_deadline=1.0) as port, socket.create_connection(("127.0.0.1", port), timeout=10) as slow:
        slow.send(b"GET /metr")  # and nothing more
        status, took = timed_scrape(port)
        assert status == 200 and took < 1.0
        assert slow.recv(1) == b""


SLOW_REQUEST = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9917\r\nUser-Agent: slow\r\nAccept: */*\r\n\r\n"


def test_clients_sending_a_byte_a_second_hold_no_worker_and_are_closed_at_the_request_deadline():
    """More trickling clients than workers: probes and scrapes still answer at once, and each
    trickler is closed when its whole request has not arrived by the deadline, though it never
    paused as long as a second."""
    deadline, slow_clients = 3.0, 50
    assert slow_clients > http.WORKERS and len(SLOW_REQUEST) > 4 * deadline  # never whole in time
    with serving(request_deadline=deadline) as port:
        began = time.monotonic()
        slow = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(slow_clients)]
        sent, stop = threading.Event(), threading.Event()

        def trickle() -> None:
            for i in range(len(SLOW_REQUEST)):  # one byte a second to each, for a minute at most
                for s in slow:
                    with contextlib.suppress(OSError):
                        s.send(SLOW_REQUEST[i:i + 1])
                sent.set()
                if stop.wait(1.0):
                    return

        trickler = threading.Thread(target=trickle, daemon=True)
        trickler.start()
        try:
            assert sent.wait(10)
            for path in ("/metrics", "/healthz"):
                status, took = timed_scrape(port, path, timeout=5)
                assert status == 200 and took < 2.0, (path, took)
            for s in slow:
                assert closed_without_an_answer(s, timeout=max(0.1, began + deadline + 10 - time.monotonic()))
            assert time.monotonic() - began >= deadline  # not before the deadline
            assert timed_scrape(port)[0] == 200
        finally:
            stop.set()
            trickler.join(5)
            for s in slow:
                s.close()


def test_a_burst_of_connections_closed_without_a_word_leaves_scrapes_answered():
    """Idle connections closing all at once (a restarted proxy, a load test ending) are dropped,
    not queued as requests, so scrapes arriving among them get their metrics, not "busy"."""
    with serving() as port:
        statuses = []
        for _ in range(3):
            idle = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(IDLE)]
            scrapes = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(10)]
            try:
                every = IDLE // len(scrapes)
                for i, s in enumerate(idle):
                    s.close()
                    if i % every == every - 1:  # a scrape among the closing connections
                        scrapes[i // every].sendall(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
                for s in scrapes:
                    answer = whole_answer(s)
                    statuses.append(answer.split(b" ", 2)[1] if answer.startswith(b"HTTP/1.") else answer[:40])
            finally:
                for s in idle + scrapes:
                    s.close()
        assert len(statuses) == 30
        assert [s for s in statuses if s != b"200"] == []  # a 503 here was a closed connection counted as a request


@pytest.mark.parametrize(("sent", "expected"), [
    (b"GET /healthz HTTP/1.1\nHost: localhost\n\n", b"HTTP/1.1 200 "),  # bare LF line ends
    (b"GET /metrics HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody", b"HTTP/1.1 200 "),  # body read, then answered
    # A bad request line is answered at once, no headers awaited (and, as the stdlib parser does
    # before it knows the version, in HTTP/0.9 style: the error page without a status line).
    (b"garbage\r\n", b"Error code: 400"),
    (b"GET / HTTP/2.0\r\n", b"Error code: 505"),
    (b"POST /metrics HTTP/1.1\r\nContent-Length: 99\r\n\r\n", b"HTTP/1.1 501 "),  # no body awaited either
    (b"GET /" + b"a" * http.MAX_REQUEST_BYTES + b" HTTP/1.1\r\n\r\n", b"HTTP/1.1 414 "),
    (b"GET / HTTP/1.1\r\nX-Long: " + b"a" * http.MAX_REQUEST_BYTES + b"\r\n\r\n", b"HTTP/1.1 431 "),
    (b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 101 + b"\r\n", b"HTTP/1.1 431 "),
    (b"GET / HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % (http.MAX_REQUEST_BYTES + 1), b"HTTP/1.1 413 "),
], ids=["lf", "body", "garbage", "http2", "post", "long-line", "long-header", "many-headers", "long-body"])
def test_bad_and_odd_requests_get_their_answer_at_once(sent, expected):
    with serving() as port, socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        began = time.monotonic()
        s.sendall(sent)
        answer = whole_answer(s, timeout=4)  # well within the request deadline
        assert expected in answer and time.monotonic() - began < 4, answer[:200]
        assert not answer.startswith(b"HTTP/") or b"\r\nConnection: close\r\n" in answer


def test_one_answer_per_connection_and_a_request_ended_by_closing_is_still_answered():
    """Keep-alive and pipelining are not served (a worker never waits on a connection); a client
    that half-closes after a request without its final empty line still gets its answer."""
    with serving() as port:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nConnection: keep-alive\r\n\r\nGET /readyz HTTP/1.1\r\n\r\n")
            answer = whole_answer(s)
            assert answer.startswith(b"HTTP/1.1 200 ") and answer.count(b"HTTP/1.1 ") == 1
            assert b"\r\nConnection: close\r\n" in answer and answer.endswith(b"\r\n\r\nok\n")
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n")
            s.shutdown(socket.SHUT_WR)
            assert whole_answer(s).startswith(b"HTTP/1.1 200 ")
