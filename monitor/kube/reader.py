"""Reads the Kubernetes objects the monitor needs into `ClusterState`, turning API failures into data.

Cluster-wide list calls, paginated with limit/continue. A 403, an unreachable API server, an answer
that is not a list of objects, or a listing that would never end (a continue token seen before, more
than MAX_PAGES pages) makes that part unknown (None) and records a ReadFailure; the caller carries on
AWS-only for what is missing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from monitor.core.cluster_model import IRSA_ROLE_ANNOTATION, ClusterState, ControllerDeployment
from monitor.core.failures import PAGE_LIMIT, PAGINATION_LOOP, UNPARSABLE
from monitor.core.model import ReadFailure
from monitor.kube import translate

# Every (apiGroup, resource, verb) this reader uses; deploy/'s ClusterRole must grant exactly these,
# and tests/kube/test_kube_reader.py checks that every request sent is covered by one of them.
REQUIRED_ACCESS: frozenset[tuple[str, str, str]] = frozenset({
    ("networking.k8s.io", "ingresses", "list"),
    ("networking.k8s.io", "ingressclasses", "list"),
    ("", "services", "list"),
    ("", "nodes", "list"),
    ("", "events", "list"),
    ("", "serviceaccounts", "get"),
    ("apps", "deployments", "list"),
    ("elbv2.k8s.aws", "targetgroupbindings", "list"),
})

PAGE_SIZE = 500
MAX_PAGES = 1000  # 500,000 objects of one kind: far past any cluster, so a listing this long would never end
REQUEST_TIMEOUT = (5, 15)  # connect, read seconds
TGB_GROUP, TGB_VERSION, TGB_PLURAL = "elbv2.k8s.aws", "v1beta1", "targetgroupbindings"
# Events the controllers emit when they fail (docs/controllers.md, "Signals the controllers give").
WATCHED_EVENTS = (
    ("Ingress", "FailedDeployModel"),
    ("TargetGroupBinding", "FailedNetworkReconcile"),
    ("TargetGroupBinding", "FailedReconcile"),
)


class _Unreachable(Exception):
    """The API server did not answer at all: the remaining reads are skipped."""


class _BadAnswer(Exception):
    """An answer that arrived but cannot be used: a failed read of that part, never a fact about it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class ClusterReader:
    def __init__(self, api: client.ApiClient, page_size: int = PAGE_SIZE) -> None:
        self._core = client.CoreV1Api(api)
        self._networking = client.NetworkingV1Api(api)
        self._apps = client.AppsV1Api(api)
        self._custom = client.CustomObjectsApi(api)
        self._page_size = page_size

    def read(self) -> ClusterState:
        failures: list[ReadFailure] = []
        try:
            return self._read(failures)
        except _Unreachable:
            return ClusterState(failures=tuple(failures))

    def _read(self, failures: list[ReadFailure]) -> ClusterState:
        raw_ingresses = self._list(failures, ("networking.k8s.io", "ingresses"),
                                   self._networking.list_ingress_for_all_namespaces)
        raw_classes = self._list(failures, ("networking.k8s.io", "ingressclasses"),
                                 self._networking.list_ingress_class, absent_ok=True)
        raw_services = self._list(failures, ("", "services"), self._core.list_service_for_all_namespaces)
        # A 404 here means the TargetGroupBinding CRD is not installed: v2 has never run, so no bindings.
        raw_bindings = self._list(failures, (TGB_GROUP, TGB_PLURAL),
                                  lambda **kw: self._custom.list_cluster_custom_object(
                                      TGB_GROUP, TGB_VERSION, TGB_PLURAL, **kw),
                                  absent_ok=True)
        raw_nodes = self._list(failures, ("", "nodes"), self._core.list_node)
        raw_deployments = self._list(failures, ("apps", "deployments"), self._apps.list_deployment_for_all_namespaces)
        controllers = None
        if raw_deployments is not None:
            found = [c for c in map(translate.controller, raw_deployments) if c is not None]
            controllers = tuple(self._with_role(failures, c) for c in found)
        events = self._events(failures)
        return ClusterState(
            ingresses=_mapped(raw_ingresses, translate.ingress),
            ingress_classes=_mapped(raw_classes, translate.ingress_class),
            services=_mapped(raw_services, translate.service),
            bindings=_mapped(raw_bindings, translate.binding),
            nodes=_mapped(raw_nodes, translate.node),
            controllers=controllers,
            events=events,
            failures=tuple(failures),
        )

    def _events(self, failures: list[ReadFailure]):
        events = []
        for kind, reason in WATCHED_EVENTS:
            raw = self._list(failures, ("", "events"), self._core.list_event_for_all_namespaces,
                             field_selector=f"involvedObject.kind={kind},reason={reason}")
            if raw is None:
                return None
            # Filter again: the selector is an optimisation, the kind and reason are the contract.
            events.extend(e for e in map(translate.event, raw) if e.kind == kind and e.reason == reason)
        return tuple(events)

    def _with_role(self, failures: list[ReadFailure], controller: ControllerDeployment) -> ControllerDeployment:
        account = self._call(failures, ("", "serviceaccounts"), "get",
                             lambda: self._core.read_namespaced_service_account(
                                 controller.service_account, controller.namespace,
                                 _preload_content=False, _request_timeout=REQUEST_TIMEOUT),
                             scope=f"{controller.namespace}/{controller.service_account}", absent_ok=True)
        if not account:
            return controller
        annotations = (account.get("metadata") or {}).get("annotations") or {}
        return replace(controller, role_arn=annotations.get(IRSA_ROLE_ANNOTATION))

    def _list(self, failures, access: tuple[str, str], fn: Callable[..., Any], absent_ok: bool = False,
              **kwargs: Any) -> list[dict] | None:
        def pages() -> list[dict]:
            items: list[dict] = []
            token, seen = None, set()
            for _ in range(MAX_PAGES):
                body = _json(fn(limit=self._page_size, _continue=token, _preload_content=False,
                                _request_timeout=REQUEST_TIMEOUT, **kwargs))
                page = body.get("items") or []
                if not isinstance(page, list) or not all(isinstance(item, dict) for item in page):
                    raise _BadAnswer(UNPARSABLE, "the answer's items are not a list of objects")
                items.extend(page)
                token = (body.get("metadata") or {}).get("continue")
                if not token:
                    return items
                if token in seen:
                    raise _BadAnswer(PAGINATION_LOOP, f"the continue token {str(token)[:40]!r} came again after "
                                                      f"{len(seen) + 1} pages")
                seen.add(token)
            raise _BadAnswer(PAGE_LIMIT, f"more than {MAX_PAGES} pages of {self._page_size}")

        return self._call(failures, access, "list", pages, absent_ok=absent_ok)

    def _call(self, failures, access: tuple[str, str], verb: str, fn: Callable[[], Any], scope: str = "",
              absent_ok: bool = False):
        group, resource = access
        operation = f"{verb} {resource}" + (f".{group}" if group else "")
        try:
            result = fn()
            return _json(result) if verb != "list" else result
        except ApiException as exc:
            if exc.status == 404 and absent_ok:
                return [] if verb == "list" else None
            failures.append(ReadFailure("kubernetes", operation, _code(exc), _message(exc), scope))
            return None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            failures.append(ReadFailure("kubernetes", operation, "Unreachable", str(exc).splitlines()[0][:300], scope))
            raise _Unreachable() from exc
        except _BadAnswer as exc:
            failures.append(ReadFailure("kubernetes", operation, exc.code, exc.message, scope))
            return None


def _json(response: Any) -> dict:
    try:
        body = json.loads(response.data or b"{}")
    except ValueError as exc:  # cut short, or not JSON (a proxy's error page)
        raise _BadAnswer(UNPARSABLE, f"the answer is not JSON ({exc})") from None
    if not isinstance(body, dict):
        raise _BadAnswer(UNPARSABLE, "the answer is not a JSON object")
    return body


def _mapped(raw: list[dict] | None, fn: Callable[[dict], Any]) -> tuple | None:
    return None if raw is None else tuple(fn(item) for item in raw)


def _code(exc: ApiException) -> str:
    try:
        reason = json.loads(exc.body or "{}").get("reason")
    except (TypeError, ValueError):
        reason = None
    return str(reason or exc.reason or f"HTTP {exc.status}")


def _message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or "{}").get("message") or exc.reason)
    except (TypeError, ValueError):
        return str(exc.reason)

