"""An HTTP proxy between the product and moto that answers chosen EC2 actions with an AWS error
and counts requests per Action: how throttling and permission errors are tested over real HTTP."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

_ERROR = ('<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>{code}</Code>'
          "<Message>{message}</Message></Error></Errors><RequestID>fault-proxy</RequestID></Response>")
_HOP_BY_HOP = {"host", "content-length", "connection", "transfer-encoding", "accept-encoding"}


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.calls: Counter = Counter()
        self._faults: dict[str, list[tuple[int, str, str]]] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def fail(self, action: str, code: str, status: int = 400, times: int = 1,
             message: str = "injected by the test proxy") -> None:
        with self._lock:
            self._faults.setdefault(action, []).extend([(status, code, message)] * times)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _next_fault(self, action: str) -> tuple[int, str, str] | None:
        with self._lock:
            queue = self._faults.get(action)
            return queue.pop(0) if queue else None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                action = parse_qs(body.decode("utf-8", "replace")).get("Action", [""])[0]
                with proxy._lock:
                    proxy.calls[action] += 1
                fault = proxy._next_fault(action)
                if fault is not None:
                    status, code, message = fault
                    self._reply(status, "text/xml", _ERROR.format(code=code, message=message).encode())
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                request = urllib.request.Request(proxy.upstream + self.path, data=body, headers=headers, method="POST")
                try:
                    with urllib.request.urlopen(request, timeout=30) as answer:
                        self._reply(answer.status, answer.headers.get("Content-Type", "text/xml"), answer.read())
                except urllib.error.HTTPError as error:
                    self._reply(error.code, error.headers.get("Content-Type", "text/xml"), error.read())

            def _reply(self, status: int, content_type: str, payload: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        return Handler
