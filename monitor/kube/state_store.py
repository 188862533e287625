"""The remembered rules and remediation history in a ConfigMap, so a restarted or rescheduled pod
still knows, mid-outage, what to restore (a StateStore of monitor.core.state_doc, with Kubernetes on)."""

from __future__ import annotations

import json
from typing import Any

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from monitor.core.errors import StateError
from monitor.core.state_doc import State, dumps, loads

CONFIGMAP_NAME = "alb-sg-monitor-state"
KEY = "state.json"
REQUEST_TIMEOUT = (3, 10)
ACCESS: frozenset[tuple[str, str, str]] = frozenset({
    ("", "configmaps", "get"),
    ("", "configmaps", "create"),
    ("", "configmaps", "update"),
})


class ConfigMapStateStore:
    """One ConfigMap, `data["state.json"]`. Replaced with the resourceVersion last read, so a write
    based on a stale read is refused by the API server (409) rather than silently lost; one retry
    after re-reading, as only the leader writes and a conflict means a former leader's last save."""

    durable = True

    def __init__(self, api: client.ApiClient, namespace: str, cluster: str, name: str = CONFIGMAP_NAME) -> None:
        self._core = client.CoreV1Api(api)
        self.namespace, self.cluster, self.name = namespace, cluster, name
        self._version: str | None = None  # resourceVersion of the ConfigMap last read or written

    @property
    def where(self) -> str:
        return f"ConfigMap {self.namespace}/{self.name}"

    def load(self) -> State | None:
        raw = self._read()
        if raw is None:
            return None
        data = raw.get("data") or {}
        if KEY not in data:
            raise StateError(f"state {self.where}: has no {KEY} key; it is not alb-sg-monitor's state, "
                             "remove it or let the monitor use another namespace")
        return loads(data[KEY], self.cluster, self.where)

    def save(self, state: State) -> None:
        for attempt in (1, 2):
            try:
                self._write(state)
                return
            except ApiException as exc:
                if exc.status == 409 and attempt == 1:
                    self._read()  # learn the current resourceVersion, then replace once more
                    continue
                raise StateError(f"state {self.where}: cannot be written (HTTP {exc.status} {exc.reason})") from None
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                raise StateError(f"state {self.where}: cannot be written ({_first_line(exc)})") from None

    def probe(self) -> str | None:
        """Not probed at start (only the leader writes, and a dry-run write is one more RBAC verb):
        the leader's first save, at its first cycle, tells (state_save_failed, albsg_state_persisted 0)."""
        return None

    def missing(self) -> bool:
        """Not asked of the API server every cycle (one GET a cycle for a rare accident): a deleted
        ConfigMap is created again at the next save, which follows the next change of the state."""
        return False

    def _read(self) -> dict[str, Any] | None:
        try:
            answer = self._core.read_namespaced_config_map(self.name, self.namespace, _preload_content=False,
                                                           _request_timeout=REQUEST_TIMEOUT)
            raw = json.loads(answer.data or b"{}")
        except ApiException as exc:
            if exc.status == 404:
                self._version = None
                return None
            raise StateError(f"state {self.where}: cannot be read (HTTP {exc.status} {exc.reason})") from None
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            raise StateError(f"state {self.where}: cannot be read ({_first_line(exc)})") from None
        self._version = (raw.get("metadata") or {}).get("resourceVersion")
        return raw

    def _write(self, state: State) -> None:
        body: dict[str, Any] = {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": self.name, "namespace": self.namespace,
                         "labels": {"app.kubernetes.io/name": "alb-sg-monitor"}},
            "data": {KEY: dumps(state)},
        }
        if self._version is None:
            try:
                answer = self._core.create_namespaced_config_map(self.namespace, body, _preload_content=False,
                                                                 _request_timeout=REQUEST_TIMEOUT)
            except ApiException as exc:
                if exc.status != 409:  # AlreadyExists: someone created it since we read; replace it
                    raise
                if self._read() is None:
                    raise
                return self._write(state)
        else:
            body["metadata"]["resourceVersion"] = self._version
            try:
                answer = self._core.replace_namespaced_config_map(self.name, self.namespace, body,
                                                                  _preload_content=False,
                                                                  _request_timeout=REQUEST_TIMEOUT)
            except ApiException as exc:
                if exc.status != 404:
                    raise
                self._version = None  # deleted under us: create it again
                return self._write(state)
        self._version = (json.loads(answer.data or b"{}").get("metadata") or {}).get("resourceVersion")


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:200]
