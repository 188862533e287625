"""A loopback HTTP proxy between boto3 and moto that counts requests per (service, Action) and
can answer chosen actions with the errors real AWS gives under throttling or an outage, answer
them late (a slow endpoint), answer them with a body cut short (HTTP 200 the SDK cannot parse), or
empty a listing's answer (HTTP 200 with nothing found).

ELBv2, EC2 and IAM use the AWS query protocol: the action is the `Action` field of the form body
(or the query string). SQS and CloudTrail use the JSON protocol: the action is the last part of the
X-Amz-Target header (`AmazonSQS.ReceiveMessage`), and errors are JSON with a `__type`. The service is
the SigV4 credential scope of the Authorization header. Point a client at it with
AWS_ENDPOINT_URL=proxy.url.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import struct
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit
from xml.etree import ElementTree

_SCOPE = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/aws4_request")
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "upgrade", "server", "date"}

THROTTLE = "throttle"
UNAVAILABLE = "unavailable"
ERROR = "error"  # a given error code and status, e.g. UnauthorizedOperation 403
MAX_DELAY_SECONDS = 60.0  # a delay never holds a request (or a test) longer than this
DROP = "drop"  # no answer: the connection is reset once the request has been read
MALFORMED = "malformed"  # HTTP 200 with the real answer cut in half: no parser accepts it
EMPTY = "empty"  # HTTP 200 with the real answer's listing emptied, as AWS answers when nothing matches

# The list element of each listing answer (as moto and AWS send it; a path below the root), and
# the paging fields that go with it: what EMPTY takes out.
LISTINGS = {
    "DescribeInstances": "reservationSet",
    "DescribeNetworkAcls": "networkAclSet",
    "DescribeNetworkInterfaces": "networkInterfaceSet",
    "DescribeSecurityGroupRules": "securityGroupRuleSet",
    "DescribeSecurityGroups": "securityGroupInfo",
    "DescribeSubnets": "subnetSet",
    "DescribeVpcs": "vpcSet",
    "GetManagedPrefixListEntries": "entrySet",
    "DescribeLoadBalancers": "DescribeLoadBalancersResult/LoadBalancers",
    "DescribeTags": "DescribeTagsResult/TagDescriptions",
    "DescribeTargetGroups": "DescribeTargetGroupsResult/TargetGroups",
    "DescribeTargetHealth": "DescribeTargetHealthResult/TargetHealthDescriptions",
    "ListAttachedRolePolicies": "ListAttachedRolePoliciesResult/AttachedPolicies",
    "ListRolePolicies": "ListRolePoliciesResult/PolicyNames",
}
_PAGING = ("nextToken", "NextMarker", "Marker")  # a page token, in whichever part of the answer


@dataclass
class _Fault:
    kind: str  # THROTTLE, UNAVAILABLE, ERROR, DROP, MALFORMED or EMPTY
    service: str | None  # None: every service
    actions: frozenset[str] | None  # None: every action
    code: str | None = None  # for ERROR
    status: int = 400  # for ERROR
    remaining: int | None = None  # answers left; None: until heal()
    body: bytes | None = None  # for ERROR: this answer (text/html) instead of the service's error document

    def applies(self, service: str, action: str) -> bool:
        return (self.service is None or self.service == service) and (self.actions is None or action in self.actions)


@dataclass
class _Delay:
    seconds: float
    service: str | None  # None: every service
    actions: frozenset[str] | None  # None: every action

    def applies(self, service: str, action: str) -> bool:
        return (self.service is None or self.service == service) and (self.actions is None or action in self.actions)


@dataclass
class _Endless:
    tokens: int | None  # distinct next tokens, given in turn; None: a new one each answer
    answers: int | None  # endless answers to give; None: until heal()
    given: int = 0


def with_next_token(payload: bytes, service: str, token: str | None) -> bytes:
    """A listing's answer with its own next token taken out and `token` put in, where the service
    puts it: EC2's <nextToken> in the response, ELBv2's <NextMarker> in its Result."""
    root = ElementTree.fromstring(payload)
    namespace = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    ElementTree.register_namespace("", namespace.strip("{}"))
    for parent in [root, *root]:
        for child in list(parent):
            if child.tag in (f"{namespace}nextToken", f"{namespace}NextMarker"):
                parent.remove(child)
    if token is not None:
        if service == "ec2":
            ElementTree.SubElement(root, f"{namespace}nextToken").text = token
        elif service == "elbv2":
            result = next(child for child in root if child.tag.endswith("Result"))
            ElementTree.SubElement(result, f"{namespace}NextMarker").text = token
        else:
            raise ValueError(f"endless listings of {service} are not served")
    return ElementTree.tostring(root, xml_declaration=True, encoding="UTF-8")


def error_response(kind: str, service: str, code: str | None = None, status: int = 400,
                   json_protocol: bool = False) -> tuple[int, bytes]:
    """The status and body the service sends for this fault, in the shape botocore parses: EC2's
    `<Response><Errors>`, the other query services' `<ErrorResponse>`, and the JSON protocol's
    `{"__type": ...}`."""
    request_id = str(uuid.uuid4())
    if kind == ERROR:
        status, code, message = status, code or "InternalError", "injected by the test proxy"
    elif kind == THROTTLE:
        status, code, message = 400, ("RequestLimitExceeded" if service == "ec2" else "Throttling"), (
            "Request limit exceeded." if service == "ec2" else "Rate exceeded")
    else:
        status, code, message = 503, ("Unavailable" if service == "ec2" else "ServiceUnavailable"), (
            "The service is unavailable. Please try again shortly.")
    if json_protocol:
        return status, json.dumps({"__type": code, "message": message}).encode()
    if service == "ec2":
        body = (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code>"
                f"<Message>{message}</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>")
    else:
        kind_of = "Sender" if status < 500 else "Receiver"
        body = (f"<ErrorResponse><Error><Type>{kind_of}</Type><Code>{code}</Code><Message>{message}</Message>"
                f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>")
    return status, body.encode()


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:  # noqa: ANN001
        """A client that went away mid-answer (a daemon stopped, a timed-out test) is routine."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class AwsProxy:
    """Start with `with AwsProxy(upstream_url) as proxy:`; `proxy.url` is the endpoint to use."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._lock = threading.Lock()
        self._faults: list[_Fault] = []
        self._delays: list[_Delay] = []
        self._healed = threading.Event()  # set by heal() and stop(): delayed requests go on at once
        self.requests: Counter[tuple[str, str]] = Counter()  # forwarded or failed, per (service, action)
        self.injected: Counter[tuple[str, str]] = Counter()  # answered with a fault
        self.arrivals: list[tuple[float, str, str]] = []  # (time.monotonic(), service, action) per request
        self._pages: dict[str, tuple[str, int]] = {}  # action -> (list element, items a page): see paginate()
        self._rewrites: dict[str, Callable[[bytes], bytes]] = {}  # action -> how its answers change: see rewrite()
        self._endless: dict[str, _Endless] = {}  # action -> its never-ending listing: see endless()
        self._before: dict[str, Callable[[], object]] = {}  # action -> what to run once first: see before()
        self._server = _Server(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="awsproxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> "AwsProxy":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._healed.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "AwsProxy":
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- faults -------------------------------------------------------------------------------
    def fail(self, actions: Iterable[str] | None = None, kind: str = THROTTLE, service: str | None = None,
             code: str | None = None, status: int = 400, times: int | None = None, body: bytes | None = None) -> None:
        """From now on answer these actions (all when None) of this service (all when None) with a
        fault: throttling, an outage, (kind=ERROR) the given error code and HTTP status, or (kind=DROP)
        a connection reset instead of any answer, or (kind=ERROR with `body`) that status with
        this body as text/html, as a proxy or load balancer in front of AWS answers; (kind=MALFORMED) moto's answer cut short, which the
        SDK cannot parse; (kind=EMPTY, LISTINGS actions only) moto's answer with its listing emptied
        and no page token; `times` answers only, or until heal()."""
        if kind not in (THROTTLE, UNAVAILABLE, ERROR, DROP, MALFORMED, EMPTY):
            raise ValueError(f"unknown fault {kind!r}")
        if isinstance(actions, str):
            actions = [actions]
        if kind == EMPTY and (actions is None or set(actions) - LISTINGS.keys()):
            raise ValueError(f"an empty answer is made for {sorted(LISTINGS)} only")
        with self._lock:
            self._faults.append(_Fault(kind, service, None if actions is None else frozenset(actions),
                                       code, status, times, body=body))

    def delay(self, actions: Iterable[str] | None = None, seconds: float = 5.0, service: str | None = None) -> None:
        """From now on hold these actions (all when None) of this service (all when None) `seconds`
        (at most MAX_DELAY_SECONDS) before forwarding them, until heal(): a slow AWS endpoint.
        heal() also releases the requests being held."""
        if not 0 < seconds <= MAX_DELAY_SECONDS:
            raise ValueError(f"a delay is between 0 and {MAX_DELAY_SECONDS:g} seconds")
        if isinstance(actions, str):
            actions = [actions]
        with self._lock:
            if self._healed.is_set():
                self._healed = threading.Event()
            self._delays.append(_Delay(seconds, service, None if actions is None else frozenset(actions)))

    def paginate(self, action: str, items: str, size: int) -> None:
        """Answer an EC2 (query protocol) list action `size` items a page, with a NextToken, as AWS
        does and moto does not (moto answers every item at once): `items` is the response's list
        element, e.g. securityGroupRuleSet. Each page asks moto for the whole list and slices it."""
        with self._lock:
            self._pages[action] = (items, size)

    def _page(self, action: str, body: bytes) -> tuple[bytes, int, int] | None:
        """For a paged action: the body without MaxResults and NextToken, the offset and page size."""
        with self._lock:
            paged = self._pages.get(action)
        if paged is None:
            return None
        fields = parse_qs(body.decode(), keep_blank_values=True)
        offset = int((fields.pop("NextToken", None) or ["0"])[0])
        fields.pop("MaxResults", None)
        return urlencode(fields, doseq=True).encode(), offset, paged[1]

    def _slice(self, action: str, payload: bytes, offset: int, size: int) -> bytes:
        root = ElementTree.fromstring(payload)
        namespace = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
        ElementTree.register_namespace("", namespace.strip("{}"))
        listing = root.find(f"{namespace}{self._pages[action][0]}")
        if listing is None:
            return payload
        items = list(listing)
        for item in items[:offset] + items[offset + size:]:
            listing.remove(item)
        if offset + size < len(items):
            token = ElementTree.SubElement(root, f"{namespace}nextToken")
            token.text = str(offset + size)
        return ElementTree.tostring(root, xml_declaration=True, encoding="UTF-8")

    def rewrite(self, action: str, change: Callable[[bytes], bytes]) -> None:
        """From now on pass this action's successful answers through `change` until heal(): an
        answer shaped unlike any AWS sends (a field missing, say)."""
        with self._lock:
            self._rewrites[action] = change

    def _rewritten(self, action: str, payload: bytes) -> bytes:
        with self._lock:
            change = self._rewrites.get(action)
        return payload if change is None else change(payload)

    def endless(self, action: str, tokens: int | None = 2, answers: int | None = None) -> None:
        """From now on answer `action`, an EC2 or ELBv2 listing, as one that never ends: every answer
        is moto's first page again with a next token, whatever token was asked for, the tokens going
        round `tokens` values (A, B, A, B ... for 2; a new one each answer when None). After `answers`
        such answers (None: until heal()) the listing ends, so that code that would page forever
        fails a test rather than hanging it."""
        with self._lock:
            self._endless[action] = _Endless(tokens, answers)

    def _endless_token(self, action: str) -> str | None:
        """The next token this answer of `action` carries; None when it is not endless (or no more)."""
        with self._lock:
            endless = self._endless.get(action)
            if endless is None or (endless.answers is not None and endless.given >= endless.answers):
                return None
            endless.given += 1
            n = endless.given - 1 if endless.tokens is None else (endless.given - 1) % endless.tokens
            return chr(ord("A") + n) if n < 26 else f"T{n}"

    def before(self, action: str, then: Callable[[], object]) -> None:
        """Run `then` once, when the next `action` request arrives and before it is forwarded: a
        race, e.g. another writer whose write lands between a client's read and its own write. The
        held request waits for `then`; requests `then` itself sends are forwarded as usual."""
        with self._lock:
            self._before[action] = then

    def _run_before(self, action: str) -> None:
        with self._lock:
            then = self._before.pop(action, None)
        if then is not None:
            then()

    @staticmethod
    def _empty(action: str, payload: bytes) -> bytes:
        """The answer with no member in its listing and no page token: AWS's answer for nothing found."""
        root = ElementTree.fromstring(payload)
        namespace = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
        ElementTree.register_namespace("", namespace.strip("{}"))
        path = "/".join(f"{namespace}{part}" for part in LISTINGS[action].split("/"))
        listing = root.find(path)
        if listing is None:
            raise AssertionError(f"{action}: no {LISTINGS[action]} in the answer {payload[:300]!r}")
        for item in list(listing):
            listing.remove(item)
        for parent in root.iter():
            for child in list(parent):
                if child.tag.removeprefix(namespace) in _PAGING:
                    parent.remove(child)
                elif child.tag.removeprefix(namespace) == "IsTruncated":
                    child.text = "false"
        return ElementTree.tostring(root, xml_declaration=True, encoding="UTF-8")

    def heal(self) -> None:
        """Stop injecting faults, delays, rewrites and endless listings: every request is forwarded
        again, at once."""
        with self._lock:
            self._faults.clear()
            self._delays.clear()
            self._rewrites.clear()
            self._endless.clear()
            self._healed.set()

    def _hold(self, service: str, action: str) -> None:
        with self._lock:
            seconds = max((d.seconds for d in self._delays if d.applies(service, action)), default=0.0)
            healed = self._healed
        if seconds:
            healed.wait(seconds)

    def count(self, service: str | None = None, action: str | None = None) -> int:
        with self._lock:
            return sum(n for (s, a), n in self.requests.items()
                       if (service is None or s == service) and (action is None or a == action))

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()
            self.injected.clear()
            self.arrivals.clear()

    def _decide(self, service: str, action: str) -> _Fault | None:
        with self._lock:
            self.requests[(service, action)] += 1
            self.arrivals.append((time.monotonic(), service, action))
            for fault in self._faults:
                if fault.applies(service, action):
                    self.injected[(service, action)] += 1
                    if fault.remaining is not None:
                        fault.remaining -= 1
                        if fault.remaining <= 0:
                            self._faults.remove(fault)
                    return fault
        return None

    def calls(self, action: str) -> int:
        return self.count(action=action)

    def _forward(self, method: str, path: str, headers: list[tuple[str, str]], body: bytes):
        connection = http.client.HTTPConnection(*self._upstream, timeout=30)
        try:
            connection.request(method, path, body=body, headers=dict(headers))
            answer = connection.getresponse()
            return answer.status, [(k, v) for k, v in answer.getheaders() if k.lower() not in _HOP_BY_HOP], answer.read()
        finally:
            connection.close()


def identify(headers: dict[str, str], path: str, body: bytes) -> tuple[str, str]:
    """(service, action) of a query- or JSON-protocol request; ('unknown', '') parts when absent."""
    match = _SCOPE.search(headers.get("authorization", ""))
    service = match.group(1) if match else "unknown"
    # botocore's service names, as the code labels its calls (the scope holds the signing name)
    service = {"elasticloadbalancing": "elbv2", "servicequotas": "service-quotas"}.get(service, service)
    target = headers.get("x-amz-target", "")
    if target:
        return service, target.rsplit(".", 1)[-1]
    fields = parse_qs(urlsplit(path).query)
    if not fields.get("Action") and body:
        fields = parse_qs(body.decode("utf-8", "replace"))
    return service, (fields.get("Action") or [""])[0]


def _handler_for(proxy: AwsProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes: with Nagle's algorithm on, the body waits for the
        # client's delayed ACK (about 40 ms a request), which real AWS endpoints do not add.
        disable_nagle_algorithm = True

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            lowered = {k.lower(): v for k, v in self.headers.items()}
            service, action = identify(lowered, self.path, body)
            proxy._hold(service, action)
            proxy._run_before(action)
            fault = proxy._decide(service, action)
            if fault is not None and fault.kind == DROP:
                # SO_LINGER 0: closing sends a TCP reset, as a dying load balancer or NAT does.
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True
                return
            if fault is not None and fault.body is not None:
                self._send(fault.status, [("Content-Type", "text/html; charset=utf-8")], fault.body)
                return
            if fault is not None and fault.kind not in (MALFORMED, EMPTY):
                json_protocol = "x-amz-target" in lowered
                status, payload = error_response(fault.kind, service, fault.code, fault.status, json_protocol)
                self._send(status, [("Content-Type", lowered.get("content-type", "application/x-amz-json-1.0")
                                     if json_protocol else "text/xml")], payload)
                return
            headers = [(k, v) for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP]
            endless = action in proxy._endless
            if endless:  # the first page, whatever token was asked for (moto may not know it)
                fields = parse_qs(body.decode(), keep_blank_values=True)
                for name in ("NextToken", "Marker"):
                    fields.pop(name, None)
                body = urlencode(fields, doseq=True).encode()
                headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
                headers.append(("Content-Length", str(len(body))))
            paged = None if endless else proxy._page(action, body)
            if paged is not None:
                body = paged[0]
                headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
                headers.append(("Content-Length", str(len(body))))
            status, answer_headers, payload = proxy._forward(self.command, self.path, headers, body)
            if paged is not None and status == 200:
                payload = proxy._slice(action, payload, paged[1], paged[2])
            if fault is not None and status == 200:
                # Both are real answers rewritten: the status and headers stay moto's.
                payload = proxy._empty(action, payload) if fault.kind == EMPTY else payload[: len(payload) // 2]
            if endless and status == 200:
                payload = with_next_token(payload, service, proxy._endless_token(action))
            if status == 200:
                payload = proxy._rewritten(action, payload)
            self._send(status, [(k, v) for k, v in answer_headers if k.lower() != "content-length"], payload)

        def _send(self, status: int, headers: list[tuple[str, str]], payload: bytes) -> None:
            self.send_response(status)
            for key, value in headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = _handle

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    return Handler
