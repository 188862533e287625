"""`alb-sg-monitor demo`: the monitor against the embedded world, with the two migration pitfalls."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from monitor import aws, render
from monitor.cycle import check_once
from monitor.errors import ConfigError
from monitor.settings import Settings

DEMO_CLUSTER = "demo-eks"
DEMO_REGION = "ap-northeast-1"


def start_world(cluster: str = DEMO_CLUSTER, region: str = DEMO_REGION):
    """Start moto, seed the world, and point this process's AWS settings at it."""
    try:
        from monitor.demo import world as demo_world
    except ImportError as exc:  # moto is an extra: pip install 'alb-sg-monitor[demo]'
        raise ConfigError(f"demo: needs the demo extra ({exc.name} missing); "
                          "install it with: pip install 'alb-sg-monitor[demo]'") from None
    server, endpoint = demo_world.start_moto()
    os.environ.update(AWS_ENDPOINT_URL=endpoint, AWS_REGION=region, AWS_ACCESS_KEY_ID="demo",
                      AWS_SECRET_ACCESS_KEY="demo")
    os.environ.pop("AWS_PROFILE", None)
    return server, demo_world.seed(endpoint, region=region, cluster=cluster)


def run_demo(settings: Settings, out: Callable[[str], None] = print) -> int:
    from monitor.demo import world as demo_world

    cluster = settings.cluster_name or DEMO_CLUSTER
    out(f"Starting a simulated AWS account with EKS cluster {cluster!r} mid-migration (v1 -> v2)...")
    server, world = start_world(cluster)
    try:
        clients = aws.connect(world.region)
        steps: list[tuple[str, Callable[[], None] | None]] = [
            ("1. The cluster as it is: two v1 ALBs, one adopted, two created by v2.", None),
            ("2. The v2 controller starts without the migration IAM policy and revokes the v1 node rule "
             f"of {world.lb_name['shop']} (shop/frontend).", lambda: demo_world.revoke(world, "shop_v1")),
            ("3. Someone follows the migration guide's jq recipe and labels every tcp 0-65535 node rule, "
             "including the rule from the marketing team's own ALB security group.",
             lambda: [demo_world.label_with_shared(world, key) for key in ("blog_v1", "marketing_user")]),
        ]
        for title, action in steps:
            if action:
                action()
            out("")
            out(f"=== {title}")
            report = check_once(clients, cluster)
            out(render.to_json(report) if settings.output == "json" else render.to_table(report))
            out(f"(alb-sg-monitor check would exit {report.exit_code})")
        out("")
        out("The check caught both: the revoked rule (ACCESS_REVOKED) and the rule v2 will revoke next "
            "(SHARED_LABEL_ON_FOREIGN_SOURCE). Run `alb-sg-monitor check --cluster-name <yours>` on a real account.")
        return 0
    finally:
        server.stop()
        sys.stdout.flush()
