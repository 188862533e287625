"""The Kubernetes adapter: the only code that imports the kubernetes client."""

from monitor.kube import events, lease, state_store
from monitor.kube.client import connect, for_host
from monitor.kube.reader import REQUIRED_ACCESS, ClusterReader

# Every (apiGroup, resource, verb) the monitor sends, split by where RBAC must grant it: in the
# monitor's own namespace (the Role) and cluster-wide (the ClusterRole). tests/deploy/test_manifests.py
# holds deploy/kubernetes/rbac.yaml to exactly these.
NAMESPACED_ACCESS: frozenset[tuple[str, str, str]] = lease.ACCESS | state_store.ACCESS
CLUSTER_ACCESS: frozenset[tuple[str, str, str]] = REQUIRED_ACCESS | events.ACCESS

__all__ = ["CLUSTER_ACCESS", "NAMESPACED_ACCESS", "REQUIRED_ACCESS", "ClusterReader", "connect", "for_host"]
