"""A small in-process stand-in for one SQS queue, serving the SQS JSON protocol over real HTTP
(ReceiveMessage, DeleteMessage, GetQueueAttributes): moto's SQS takes seconds a receive once a
queue holds thousands of messages, which would measure moto, not the monitor, in flood tests.
A receive never waits: an empty queue answers at once with no message."""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter, OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class SqsStandIn:
    def __init__(self, name: str = "alb-sg-monitor-events-flood", account: str = "123456789012") -> None:
        self._lock = threading.Lock()
        self._visible: OrderedDict[str, str] = OrderedDict()  # message id -> body
        self._in_flight: dict[str, str] = {}  # receipt handle -> message id
        self._bodies: dict[str, str] = {}
        self.requests: Counter[str] = Counter()
        self._name, self._account = name, account
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def queue_url(self) -> str:
        return f"{self.url}/{self._account}/{self._name}"

    def send(self, *bodies: str) -> None:
        with self._lock:
            for body in bodies:
                message_id = str(uuid.uuid4())
                self._visible[message_id] = body
                self._bodies[message_id] = body

    def left(self) -> int:
        with self._lock:
            return len(self._visible) + len(self._in_flight)

    def __enter__(self) -> SqsStandIn:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _answer(self, action: str, request: dict) -> tuple[int, dict]:
        self.requests[action] += 1
        with self._lock:
            if action == "ReceiveMessage":
                messages = []
                for _ in range(min(int(request.get("MaxNumberOfMessages", 1)), 10)):
                    if not self._visible:
                        break
                    message_id, body = self._visible.popitem(last=False)
                    receipt = str(uuid.uuid4())
                    self._in_flight[receipt] = message_id
                    messages.append({"MessageId": message_id, "ReceiptHandle": receipt, "Body": body,
                                     "MD5OfBody": ""})
                return 200, {"Messages": messages} if messages else {}
            if action == "DeleteMessage":
                self._bodies.pop(self._in_flight.pop(request["ReceiptHandle"], ""), None)
                return 200, {}
            if action == "GetQueueAttributes":
                return 200, {"Attributes": {"QueueArn": f"arn:aws:sqs:ap-northeast-1:{self._account}:{self._name}"}}
        return 400, {"__type": "com.amazonaws.sqs#UnsupportedOperation", "message": action}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length") or 0)
                request = json.loads(self.rfile.read(length) or b"{}")
                action = (self.headers.get("X-Amz-Target") or "").rsplit(".", 1)[-1]
                status, answer = standin._answer(action, request)
                body = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.0")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                pass

        return Handler
