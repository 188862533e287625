"""A read-only Kubernetes API for the demo: serves fixed objects over HTTP the way the API server
lists and gets them, so the monitor's real Kubernetes client can be pointed at it."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

_PLURALS = {"Ingress": "ingresses", "IngressClass": "ingressclasses", "Service": "services", "Node": "nodes",
            "Event": "events", "Deployment": "deployments", "ServiceAccount": "serviceaccounts",
            "TargetGroupBinding": "targetgroupbindings"}
_PATH = re.compile(r"^/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
                   r"(?:/namespaces/(?P<namespace>[^/]+))?/(?P<plural>[a-z]+)(?:/(?P<name>[^/]+))?$")


class DemoKubeApi:
    """`with DemoKubeApi(objects) as api:` serves them at `api.url` until the block ends."""

    def __init__(self, objects: list[dict]) -> None:
        self.objects = list(objects)
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
        api_version = match["core"] or f"{match['group']}/{match['version']}"
        items = [o for o in self.objects if o["apiVersion"] == api_version and _PLURALS.get(o["kind"]) == match["plural"]
                 and (match["namespace"] is None or o["metadata"].get("namespace") == match["namespace"])]
        if match["name"]:
            found = [o for o in items if o["metadata"]["name"] == match["name"]]
            return (200, found[0]) if found else (404, _status(404, "NotFound", f"{match['plural']} {match['name']} not found"))
        selector = parse_qs(parts.query).get("fieldSelector", [""])[0]
        items = [o for o in items if _selected(o, selector)]
        kind = next((k for k, p in _PLURALS.items() if p == match["plural"]), "Object")
        return 200, {"apiVersion": api_version, "kind": f"{kind}List", "metadata": {"resourceVersion": "1"}, "items": items}


def _selected(obj: dict, selector: str) -> bool:
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
            status, body = api.answer(self.path)
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    return Handler
