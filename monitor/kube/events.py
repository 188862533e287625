"""The audit trail on the Ingress: one core/v1 Event per remediation decision that changed.

Create only, never patch or aggregate: each decision is its own record, like `kubectl describe
ingress` shows the controllers' own events. A failure to write one is logged, never fatal.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timezone

import structlog
import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

log = structlog.get_logger("monitor.kube.events")

COMPONENT = "alb-sg-monitor"
REQUEST_TIMEOUT = (3, 5)
ACCESS: frozenset[tuple[str, str, str]] = frozenset({("", "events", "create")})
_MESSAGE_LIMIT = 1024  # the API server truncates longer event messages anyway


class EventRecorder:
    def __init__(self, api: client.ApiClient, reporting_instance: str = "") -> None:
        self._core = client.CoreV1Api(api)
        self._instance = reporting_instance

    def record(self, namespace: str, ingress: str, reason: str, message: str, warning: bool, now: float) -> bool:
        """Posts one Event on Ingress namespace/ingress; False (and a log line) when it failed."""
        stamp = datetime.fromtimestamp(now, timezone.utc)
        body = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{ingress}.{int(now * 1e9):x}{secrets.token_hex(2)}", "namespace": namespace},
            "involvedObject": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "namespace": namespace,
                               "name": ingress},
            "reason": reason,
            "message": message[:_MESSAGE_LIMIT],
            "type": "Warning" if warning else "Normal",
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": self._instance,
            "firstTimestamp": stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "lastTimestamp": stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "count": 1,
        }
        try:
            self._core.create_namespaced_event(namespace, body, _preload_content=False,
                                               _request_timeout=REQUEST_TIMEOUT)
        except ApiException as exc:
            log.warning("event_failed", namespace=namespace, ingress=ingress, reason=reason, status=exc.status,
                        error=str(exc.reason))
            return False
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            log.warning("event_failed", namespace=namespace, ingress=ingress, reason=reason,
                        error=(str(exc).splitlines() or [""])[0][:200])
            return False
        return True
