"""Who and where this pod is: the namespace of its Lease and state ConfigMap, and its holder identity."""

from __future__ import annotations

import os
import socket

SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
DEFAULT_NAMESPACE = "default"


def pod_namespace(environ: dict[str, str] | None = None, namespace_file: str = SERVICE_ACCOUNT_NAMESPACE) -> str:
    """ALBSG_NAMESPACE, then POD_NAMESPACE (the Deployment sets it from the downward API), then the
    service account's namespace file, then `default` (a developer running it with a kubeconfig)."""
    environ = os.environ if environ is None else environ
    for name in ("ALBSG_NAMESPACE", "POD_NAMESPACE"):
        if environ.get(name, "").strip():
            return environ[name].strip()
    try:
        with open(namespace_file, encoding="utf-8") as handle:
            found = handle.read().strip()
    except OSError:
        found = ""
    return found or DEFAULT_NAMESPACE


def pod_name(environ: dict[str, str] | None = None) -> str:
    """POD_NAME (downward API), else the hostname, which is the pod name in a pod."""
    environ = os.environ if environ is None else environ
    return environ.get("POD_NAME", "").strip() or socket.gethostname()
