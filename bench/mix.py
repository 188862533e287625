"""Seeds a cluster of a given number of ALBs in a realistic mix, for the benchmark.

On top of the demo's mid-migration cluster (five ALBs of every kind, and another cluster's ALB),
each added ALB is, in turn: v1 (its own managed SG, instance targets on a node group of its own
whose SG holds v1's all-ports rule from that managed SG, at most 50 such rules a node group as
the per-group rule limit requires), adopted (v1 tags plus v2's cluster tag, managed SG plus the
shared backend SG), v2 with ip targets (pod addresses on VPC CNI ENIs in the node SG) or v2 with
instance targets on NodePorts; every fourth has a second target group behind a path rule. v2's
shared backend SG reaches the nodes through one rule over the NodePort range.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from monitor.core import controllers
from monitor.demo import world as demo_world
from monitor.demo.world import World

DEMO_ALBS = 5  # the demo cluster's own ALBs
V1_RULES_PER_NODE_GROUP = 50
NODEPORTS = (30000, 32767)
PODS_CIDR = "10.20.128.0/17"  # room for a pod address per ip target at 5,000 ALBs


def seed(endpoint: str, cluster: str, albs: int, region: str = "ap-northeast-1") -> World:
    """A cluster of `albs` ALBs in all (at least the demo's five), plus one of another cluster."""
    world = demo_world.seed(endpoint, region=region, cluster=cluster)
    c = world.clients()
    ec2, elbv2 = c["ec2"], c["elbv2"]
    world.subnets["pods"] = ec2.create_subnet(VpcId=world.vpc_id, CidrBlock=PODS_CIDR,
                                              AvailabilityZone=f"{region}a")["Subnet"]["SubnetId"]
    pods = ipaddress.ip_network(PODS_CIDR).hosts()
    for _ in range(4):
        next(pods)  # AWS keeps a subnet's first addresses
    for index in range(max(0, albs - DEMO_ALBS)):
        kind = ("v1", "adopted", "ip", "instance", "instance")[index % 5]
        add_alb(world, ec2, elbv2, index, kind, pods)
    world.rule["backend_nodeports"] = demo_world._authorize(
        ec2, world.sg["cluster"], "tcp", *NODEPORTS, source=world.sg["backend"], description=demo_world._label())
    return world


def add_alb(world: World, ec2: Any, elbv2: Any, index: int, kind: str, pods: Any = None) -> str:
    """One ALB of `kind` (v1, adopted, ip, instance), its target group(s) and targets; returns its key."""
    namespace, ingress = f"bench{index:05d}", "web"
    key = f"mix{index}"
    port = NODEPORTS[0] + (2 * index) % (NODEPORTS[1] - NODEPORTS[0])
    if kind in ("v1", "adopted"):
        name = demo_world.v1_name(world.cluster, namespace, ingress)
        sg = demo_world._v1_managed_sg(world, ec2, f"{key}_alb", name, namespace, ingress)
        tags = demo_world._v1_tags(world, namespace, ingress)
        groups = [sg]
        if kind == "adopted":
            ec2.create_tags(Resources=[sg], Tags=[{"Key": controllers.V2_CLUSTER_TAG, "Value": world.cluster}])
            tags[controllers.V2_CLUSTER_TAG] = world.cluster
            groups.append(world.sg["backend"])
    else:
        name = demo_world.v2_name(world.cluster, namespace, ingress)
        sg = demo_world._group(world, ec2, f"{key}_alb", name, controllers.V2_MANAGED_SG_DESCRIPTION, {
            controllers.V2_CLUSTER_TAG: world.cluster, controllers.V1_STACK_TAG: f"{namespace}/{ingress}",
            controllers.V1_RESOURCE_TAG: "ManagedLBSecurityGroup"})
        demo_world._authorize(ec2, sg, "tcp", 443, 443, cidr="0.0.0.0/0")
        tags = demo_world._v2_tags(world, namespace, ingress)
        groups = [sg, world.sg["backend"]]
    demo_world._alb(world, elbv2, key, name, groups, tags)
    if kind == "v1":
        nodes = _v1_node_group(world, ec2)
        world.rule[f"{key}_v1"] = demo_world._authorize(ec2, world.sg[nodes], "tcp", 0, 65535, source=sg)
        targets, target_type = [(i, port) for i in world.instances[nodes]], "instance"
    elif kind == "ip":
        addresses = [str(next(pods)), str(next(pods))]
        for address in addresses:
            ec2.create_network_interface(SubnetId=world.subnets["pods"], Groups=[world.sg["cluster"]],
                                         PrivateIpAddress=address, Description="aws-K8S-i-node")
        targets, target_type = [(a, 8080) for a in addresses], "ip"
    else:
        targets, target_type = [(i, port) for i in world.instances["general"]], "instance"
    listener = _target_group(world, elbv2, key, target_type, targets, None)
    if index % 4 == 3:  # a second backend behind a path rule
        second = [(t, p + 1 if target_type == "instance" else p) for t, p in targets]
        _target_group(world, elbv2, f"{key}_b", target_type, second, listener)
    return key


def _v1_node_group(world: World, ec2: Any) -> str:
    """The node group the next v1 ALB's rule goes on: a new one every 50 v1 ALBs."""
    count = sum(1 for k in world.rule if k.startswith("mix") and k.endswith("_v1"))
    nodes = f"v1nodes{count // V1_RULES_PER_NODE_GROUP}"
    if nodes not in world.sg:
        demo_world._group(world, ec2, nodes, f"{world.cluster}-{nodes}", "node group for v1 ALBs",
                          {"Name": f"{world.cluster}-{nodes}"})
        world.instances[nodes] = demo_world._run(ec2, world.subnets["private-c"],
                                                 [world.sg["cluster"], world.sg[nodes]], 2, nodes)
    return nodes


def _target_group(world: World, elbv2: Any, key: str, target_type: str, targets: list[tuple[str, int]],
                  listener: str | None) -> str:
    """A target group forwarded to by a new port-80 listener, or by a path rule on `listener`."""
    name = demo_world.v2_name(world.cluster, key.replace("_", ""), "tg")[:32]  # mix1003_b: no "--" in the name
    tg = elbv2.create_target_group(Name=name, Protocol="HTTP", Port=targets[0][1], VpcId=world.vpc_id,
                                   TargetType=target_type)["TargetGroups"][0]["TargetGroupArn"]
    world.tg[key] = tg
    forward = [{"Type": "forward", "TargetGroupArn": tg}]
    lb = world.lb[key.removesuffix("_b")]
    if listener is None:
        listener = elbv2.create_listener(LoadBalancerArn=lb, Protocol="HTTP", Port=80,
                                         DefaultActions=forward)["Listeners"][0]["ListenerArn"]
    else:
        elbv2.create_rule(ListenerArn=listener, Priority=10, Actions=forward,
                          Conditions=[{"Field": "path-pattern", "Values": ["/api/*"]}])
    elbv2.register_targets(TargetGroupArn=tg, Targets=[{"Id": t, "Port": p} for t, p in targets])
    return listener
