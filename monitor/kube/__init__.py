"""The Kubernetes adapter: the only code that imports the kubernetes client."""

from monitor.kube.client import connect, for_host
from monitor.kube.reader import REQUIRED_ACCESS, ClusterReader

__all__ = ["REQUIRED_ACCESS", "ClusterReader", "connect", "for_host"]
