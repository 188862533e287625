"""Builds the Kubernetes ApiClient from in-cluster config or a kubeconfig, per `--kubernetes auto|on|off`."""

from __future__ import annotations

import os

from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException

from monitor.core.errors import ConfigError

MODES = ("auto", "on", "off")
# Connection errors are retried by urllib3; a down API server must not stall a check cycle for long.
CONNECT_RETRIES = 1


def connect(mode: str) -> client.ApiClient | None:
    """An ApiClient, or None when Kubernetes is off or (in auto mode) no configuration is found.

    In-cluster configuration (the pod's service account) wins over a kubeconfig, as for kubectl in a pod.
    Raises ConfigError for an unknown mode, and in `on` mode when no configuration is found.
    """
    if mode not in MODES:
        raise ConfigError(f"--kubernetes: unknown mode {mode!r}; expected auto, on or off")
    if mode == "off":
        return None
    configuration = client.Configuration()
    problems = []
    try:
        config.load_incluster_config(client_configuration=configuration)
        return _finish(configuration)
    except ConfigException as exc:
        problems.append(f"in-cluster: {exc}")
    # The client reads KUBECONFIG once at import time; read it now so the current environment counts.
    kubeconfig = os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    try:
        config.load_kube_config(config_file=kubeconfig, client_configuration=configuration, persist_config=False)
        return _finish(configuration)
    except (ConfigException, OSError, TypeError, ValueError) as exc:
        # A missing ~/.kube/config surfaces as ConfigException or OSError depending on the version.
        problems.append(f"kubeconfig: {exc}")
    if mode == "on":
        where = kubeconfig
        raise ConfigError(
            "--kubernetes on: no Kubernetes configuration found (not in a pod with a service account, "
            f"and no usable kubeconfig at {where}); use --kubernetes auto or off to run AWS-only"
        )
    return None


def for_host(host: str, token: str | None = None) -> client.ApiClient:
    """An ApiClient for an explicit API server URL (an emulator in tests, or a proxy such as `kubectl proxy`)."""
    configuration = client.Configuration(host=host)
    if token:
        configuration.api_key = {"authorization": token}
        configuration.api_key_prefix = {"authorization": "Bearer"}
    return _finish(configuration)


def _finish(configuration: client.Configuration) -> client.ApiClient:
    configuration.retries = CONNECT_RETRIES
    api = client.ApiClient(configuration)
    api.user_agent = "alb-sg-monitor"
    return api
