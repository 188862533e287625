"""Starts the embedded demo account for `--demo`: moto with the world, the cluster's Kubernetes API,
the v2 controller's role, and this process's AWS and Kubernetes settings pointed at them."""

from __future__ import annotations

import atexit
import json
import os
import tempfile
from dataclasses import dataclass
from typing import Any

from monitor.core.errors import ConfigError

DEMO_CLUSTER = "demo-eks"
DEMO_REGION = "ap-northeast-1"


@dataclass
class DemoAccount:
    world: Any
    moto: Any
    kube: Any = None  # the demo Kubernetes API, when started
    elb: Any = None  # the front that answers target health from the account's rules
    kubeconfig: str = ""
    stopped: bool = False

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        if self.kube is not None:
            self.kube.__exit__(None, None, None)
        if self.elb is not None:
            self.elb.stop()
        self.moto.stop()
        if self.kubeconfig and os.path.exists(self.kubeconfig):
            os.unlink(self.kubeconfig)


def start(cluster: str = DEMO_CLUSTER, region: str = DEMO_REGION, kubernetes: bool = True) -> DemoAccount:
    """The account, seeded; with `kubernetes`, also the cluster's API, found through KUBECONFIG."""
    try:
        from monitor.demo import cluster as demo_cluster
        from monitor.demo import world as demo_world
        from monitor.demo.elb import DemoElb
        from monitor.demo.kubeapi import DemoKubeApi
    except ImportError as exc:  # moto comes with the demo extra
        from monitor.demo import INSTALL_EXTRA

        raise ConfigError(f"demo: needs the demo extra ({exc.name} is missing); "
                          f"install it with: {INSTALL_EXTRA}") from None
    moto, endpoint = demo_world.start_moto()
    os.environ.update(AWS_ENDPOINT_URL=endpoint, AWS_REGION=region, AWS_ACCESS_KEY_ID="demo",
                      AWS_SECRET_ACCESS_KEY="demo")
    os.environ.pop("AWS_PROFILE", None)
    world = demo_world.seed(endpoint, region=region, cluster=cluster)
    demo_cluster.create_controller_role(world)
    # The monitor talks to the account through its load balancers' health checks (moto answers
    # `healthy` whatever the rules); the story changes the world straight in moto.
    elb = DemoElb(endpoint, region).start()
    os.environ["AWS_ENDPOINT_URL"] = elb.url
    if not kubernetes:
        account = DemoAccount(world=world, moto=moto, elb=elb)
        atexit.register(account.stop)
        return account
    kube = DemoKubeApi(demo_cluster.objects(world)).__enter__()
    handle, path = tempfile.mkstemp(prefix="alb-sg-monitor-demo-", suffix=".kubeconfig")
    with os.fdopen(handle, "w") as out:
        json.dump({"apiVersion": "v1", "kind": "Config", "current-context": "demo",
                   "clusters": [{"name": "demo", "cluster": {"server": kube.url}}],
                   "contexts": [{"name": "demo", "context": {"cluster": "demo", "user": "demo"}}],
                   "users": [{"name": "demo", "user": {"token": "demo"}}]}, out)
    os.environ["KUBECONFIG"] = path
    os.environ.pop("KUBERNETES_SERVICE_HOST", None)
    account = DemoAccount(world=world, moto=moto, kube=kube, kubeconfig=path, elb=elb)
    atexit.register(account.stop)
    return account
