"""Leader election on a coordination.k8s.io/v1 Lease: only the holder writes to AWS.

The protocol of client-go's leaderelection, reduced to what the monitor needs: get the Lease,
create it when absent, renew it while we hold it, take it over only once its holder has not renewed
for a whole lease duration *as observed by our own monotonic clock* (no trust in the other pod's
wall clock), and every write carries the resourceVersion read, so two candidates cannot both win.
We count ourselves leader only while the last successful renewal is younger than the renew deadline,
which is shorter than the lease duration: we stop writing before anyone else may start.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import structlog
import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

log = structlog.get_logger("monitor.kube.lease")

LEASE_NAME = "alb-sg-monitor-leader"
LEASE_DURATION = 15.0  # seconds another candidate waits after the last renewal it saw
RENEW_DEADLINE = 10.0  # we stop counting ourselves leader this long after our last renewal
RETRY_PERIOD = 5.0  # how often the holder renews and candidates try
REQUEST_TIMEOUT = (3, 5)
ACCESS: frozenset[tuple[str, str, str]] = frozenset({
    ("coordination.k8s.io", "leases", "get"),
    ("coordination.k8s.io", "leases", "create"),
    ("coordination.k8s.io", "leases", "update"),
})


def micro_time(wall: float) -> str:
    """A Kubernetes MicroTime: RFC 3339 with microseconds, UTC."""
    return datetime.fromtimestamp(wall, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseElector:
    """`is_leader()` answers from the last renewal; `confirm()` renews now (call it right before a
    write); `start()` renews every RETRY_PERIOD in a daemon thread, `stop()` ends it and releases."""

    def __init__(self, api: client.ApiClient, namespace: str, identity: str, name: str = LEASE_NAME,
                 lease_duration: float = LEASE_DURATION, renew_deadline: float = RENEW_DEADLINE,
                 retry_period: float = RETRY_PERIOD, monotonic: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        if not renew_deadline < lease_duration:
            raise ValueError("the renew deadline must be shorter than the lease duration")
        self._api = client.CoordinationV1Api(api)
        self.namespace, self.identity, self.name = namespace, identity, name
        self._duration, self._deadline, self._retry = lease_duration, renew_deadline, retry_period
        self._monotonic, self._wall = monotonic, wall
        self._lock = threading.RLock()
        self._renewed_at: float | None = None  # monotonic time of our last successful renewal
        self._attempted_at: float | None = None
        self._observed: tuple[str, str] | None = None  # (holder, renewTime) of someone else's lease
        self._observed_at = 0.0  # when that record was first seen unchanged
        self._was_leader = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- asking -----------------------------------------------------------------------------------
    def is_leader(self) -> bool:
        """True while our last renewal is younger than the renew deadline. Without the renewal
        thread, renews first when the last attempt is a retry period old."""
        with self._lock:
            if self._thread is None and (self._attempted_at is None
                                         or self._monotonic() - self._attempted_at >= self._retry):
                self.try_acquire_or_renew()
            return self.holds()

    def confirm(self) -> bool:
        """Renew now and answer whether we still hold the Lease: the check right before a write."""
        with self._lock:
            self.try_acquire_or_renew()
            return self.holds()

    def holds(self) -> bool:
        """Whether our last renewal is younger than the renew deadline, without renewing."""
        held = self._renewed_at is not None and self._monotonic() - self._renewed_at < self._deadline
        if held != self._was_leader:
            self._was_leader = held
            log.warning("leadership_changed", leader=held, identity=self.identity, lease=self.name,
                        namespace=self.namespace)
        return held

    # -- the protocol -----------------------------------------------------------------------------
    def try_acquire_or_renew(self) -> bool:
        """One round of the election. Never raises: a failed call just does not renew."""
        with self._lock:
            now = self._monotonic()
            self._attempted_at = now
            try:
                lease = self._get()
                if lease is None:
                    self._create()
                else:
                    spec = lease.get("spec") or {}
                    holder = spec.get("holderIdentity") or ""
                    if holder != self.identity and holder and not self._expired(holder, spec, now):
                        self._renewed_at = None
                        return False
                    self._update(lease, taking_over=holder != self.identity)
            except ApiException as exc:
                if exc.status != 409:  # a conflict is just another candidate winning this round
                    log.warning("lease_renew_failed", lease=self.name, status=exc.status, reason=exc.reason)
                return False
            except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
                log.warning("lease_renew_failed", lease=self.name, error=str(exc).splitlines()[0][:200])
                return False
            self._renewed_at = now
            self._observed = None
            return True

    def _expired(self, holder: str, spec: dict[str, Any], now: float) -> bool:
        record = (holder, str(spec.get("renewTime") or spec.get("acquireTime") or ""))
        if record != self._observed:
            self._observed, self._observed_at = record, now
            return False
        duration = float(spec.get("leaseDurationSeconds") or self._duration)
        return now - self._observed_at >= duration

    def _get(self) -> dict[str, Any] | None:
        try:
            answer = self._api.read_namespaced_lease(self.name, self.namespace, _preload_content=False,
                                                     _request_timeout=REQUEST_TIMEOUT)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return json.loads(answer.data or b"{}")

    def _spec(self, acquire: str, transitions: int) -> dict[str, Any]:
        return {"holderIdentity": self.identity, "leaseDurationSeconds": int(self._duration),
                "acquireTime": acquire, "renewTime": micro_time(self._wall()), "leaseTransitions": transitions}

    def _create(self) -> None:
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace,
                             "labels": {"app.kubernetes.io/name": "alb-sg-monitor"}},
                "spec": self._spec(micro_time(self._wall()), 0)}
        self._api.create_namespaced_lease(self.namespace, body, _preload_content=False,
                                          _request_timeout=REQUEST_TIMEOUT)

    def _update(self, lease: dict[str, Any], taking_over: bool) -> None:
        spec = lease.get("spec") or {}
        transitions = int(spec.get("leaseTransitions") or 0) + (1 if taking_over else 0)
        acquire = micro_time(self._wall()) if taking_over else str(spec.get("acquireTime") or micro_time(self._wall()))
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": lease.get("metadata") or {},
                "spec": self._spec(acquire, transitions)}
        self._api.replace_namespaced_lease(self.name, self.namespace, body, _preload_content=False,
                                           _request_timeout=REQUEST_TIMEOUT)

    # -- running ----------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="lease", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.try_acquire_or_renew()
            with self._lock:
                self.holds()
            self._stop.wait(self._retry)

    def stop(self, release: bool = True) -> None:
        """End the renewal thread and, when we hold the Lease, give it up so a standby takes over at
        once instead of after a lease duration."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self._retry + 2)
            self._thread = None
        with self._lock:
            if not release or self._renewed_at is None:
                return
            self._renewed_at = None
            self.holds()
            try:
                lease = self._get()
                if lease and (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                    body = dict(lease)
                    body["spec"] = {**lease["spec"], "holderIdentity": "", "leaseDurationSeconds": 1}
                    self._api.replace_namespaced_lease(self.name, self.namespace, body, _preload_content=False,
                                                       _request_timeout=REQUEST_TIMEOUT)
                    log.info("lease_released", lease=self.name, identity=self.identity)
            except (ApiException, urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
                log.warning("lease_release_failed", lease=self.name, error=str(exc).splitlines()[0][:200])

