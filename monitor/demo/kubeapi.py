"""A small Kubernetes API for the demo: serves objects over HTTP the way the API server lists and
gets them, so the monitor's real Kubernetes client can be pointed at it. It also takes creates (POST)
and replaces (PUT) with the API server's optimistic concurrency (resourceVersion, 409 Conflict), for
the monitor's Lease, state ConfigMap and Events; nothing else is writable (no patch, no delete)."""

from __future__ import annotations

import itertools
import json
import re
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

_PLURALS = {"Ingress": "ingresses", "IngressClass": "ingressclasses", "Service": "services", "Node": "nodes",
            "Event": "events", "Deployment": "deployments", "ServiceAccount": "serviceaccounts",
            "TargetGroupBinding": "targetgroupbindings", "Lease": "leases", "ConfigMap": "configmaps"}
_PATH = re.compile(r"^/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
                   r"(?:/namespaces/(?P<namespace>[^/]+))?/(?P<plural>[a-z]+)(?:/(?P<name>[^/]+))?$")


class DemoKubeApi:
    """`with DemoKubeApi(objects) as api:` serves them at `api.url` until the block ends."""

    def __init__(self, objects: list[dict]) -> None:
        self.objects = list(objects)
        self.lock = threading.Lock()
        self.down = False  # answer nothing (the connection is closed), as an unreachable API server
        self.log: list[tuple[str, str, str]] = []  # (apiGroup, resource, verb) of every request
        self._versions = itertools.count(100)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="demo-kubeapi", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> "DemoKubeApi":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answer(self, path: str) -> tuple[int, dict]:
        parts = urlsplit(path)
        match = _PATH.match(parts.path)
        if not match:
            return 404, _status(404, "NotFound", f"no such path {parts.path}")
        self._note(match, "get" if match["name"] else "list")
        api_version = match["core"] or f"{match['group']}/{match['version']}"
        items = [o for o in self.objects if o["apiVersion"] == api_version and _PLURALS.get(o["kind"]) == match["plural"]
                 and (match["namespace"] is None or o["metadata"].get("namespace") == match["namespace"])]
        if match["name"]:
            found = [o for o in items if o["metadata"]["name"] == match["name"]]
            return (200, found[0]) if found else (404, _status(404, "NotFound", f"{match['plural']} {match['name']} not found"))
        selector = parse_qs(parts.query).get("fieldSelector", [""])[0]
        items = [o for o in items if selected(o, selector)]
        kind = next((k for k, p in _PLURALS.items() if p == match["plural"]), "Object")
        return 200, {"apiVersion": api_version, "kind": f"{kind}List", "metadata": {"resourceVersion": "1"}, "items": items}


    def write(self, method: str, path: str, body: dict) -> tuple[int, dict]:
        """POST (create) to a collection or PUT (replace) of one object."""
        match = _PATH.match(urlsplit(path).path)
        if not match or match["namespace"] is None or (method == "PUT") != bool(match["name"]):
            return 405, _status(405, "MethodNotAllowed", f"{method} is not supported on {path}")
        self._note(match, "create" if method == "POST" else "update")
        api_version = match["core"] or f"{match['group']}/{match['version']}"
        meta = body.setdefault("metadata", {})
        name = match["name"] or meta.get("name")
        if body.get("apiVersion") != api_version or _PLURALS.get(body.get("kind", "")) != match["plural"] or not name:
            return 400, _status(400, "BadRequest", "the object does not match the path")
        meta.update(name=name, namespace=match["namespace"])
        with self.lock:
            index = next((i for i, o in enumerate(self.objects) if o["apiVersion"] == api_version
                          and o["kind"] == body["kind"] and o["metadata"].get("namespace") == match["namespace"]
                          and o["metadata"]["name"] == name), None)
            if method == "POST":
                if index is not None:
                    return 409, _status(409, "AlreadyExists", f"{match['plural']} {name!r} already exists")
                meta.update(uid=f"uid-{next(self._versions)}",
                            creationTimestamp=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
            else:
                if index is None:
                    return 404, _status(404, "NotFound", f"{match['plural']} {name!r} not found")
                current = self.objects[index]["metadata"]
                if meta.get("resourceVersion") != current.get("resourceVersion"):
                    return 409, _status(409, "Conflict", f"Operation cannot be fulfilled on {match['plural']} "
                                        f"{name!r}: the object has been modified; please apply your changes "
                                        "to the latest version and try again")
                meta.update(uid=current.get("uid"), creationTimestamp=current.get("creationTimestamp"))
            meta["resourceVersion"] = str(next(self._versions))
            if index is None:
                self.objects.append(body)
            else:
                self.objects[index] = body
        return (201 if method == "POST" else 200), body

    def _note(self, match: re.Match, verb: str) -> None:
        self.log.append((match["group"] or "", match["plural"], verb))


def selected(obj: dict, selector: str) -> bool:
    """Whether `obj` matches a field selector such as involvedObject.kind=Ingress,reason=X."""
    for term in filter(None, selector.split(",")):
        field_path, _, value = term.partition("=")
        current = obj
        for part in field_path.split("."):
            current = current.get(part, {}) if isinstance(current, dict) else {}
        if current != value:
            return False
    return True


def _status(code: int, reason: str, message: str) -> dict:
    return {"apiVersion": "v1", "kind": "Status", "status": "Failure", "code": code, "reason": reason, "message": message}


def _handler(api: DemoKubeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if api.down:
                self.close_connection = True
                return
            status, body = api.answer(self.path)
            self._send(status, body)

        def _write(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b"{}"
            if api.down:
                self.close_connection = True
                return
            try:
                body = json.loads(raw)
            except ValueError:
                self._send(400, _status(400, "BadRequest", "the body is not JSON"))
                return
            self._send(*api.write(self.command, self.path, body))

        do_POST = do_PUT = _write  # noqa: N815

        def _send(self, status: int, body: dict) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    return Handler
