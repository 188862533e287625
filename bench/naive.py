"""The straightforward per-ALB checker the benchmark compares the monitor with.

For each load balancer of the cluster, on its own and with no memory between load balancers:
its tags, its target groups, each group's target health, each target's instance (or the ENI that
owns an ip target's address), the subnets the ALB lives in, and the inbound rules of every
security group on those targets. A target is reachable when, for its traffic port and its health
check port, some rule on one of its groups admits TCP from one of the ALB's groups (or from a CIDR
that holds all of the ALB's subnets); the ALB is reachable when all of its targets are. It asks
no question twice for one ALB and never shares an answer between two ALBs: that is what makes it
simple, and what the monitor's batched discovery and single rule listing are measured against.
It judges inbound rules only: the benchmark's ALB security groups keep their default allow-all
outbound rule, so outbound is never what cuts a path there.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from monitor.core import controllers

ELB_PAGE = 400


@dataclass(frozen=True)
class Verdict:
    arn: str
    name: str
    reachable: bool


def cluster_load_balancers(elbv2: Any, cluster: str) -> list[dict]:
    """Every load balancer of the region (one listing), then one DescribeTags per load balancer."""
    listing = []
    for page in elbv2.get_paginator("describe_load_balancers").paginate(PaginationConfig={"PageSize": ELB_PAGE}):
        listing.extend(page["LoadBalancers"])
    ours = []
    for lb in listing:
        described = elbv2.describe_tags(ResourceArns=[lb["LoadBalancerArn"]])["TagDescriptions"]
        tags = {t["Key"]: t.get("Value", "") for d in described for t in d.get("Tags", ())}
        if controllers.belongs_to_cluster(tags, cluster) and lb.get("Type") == "application":
            ours.append(lb)
    return ours


def check_all(ec2: Any, elbv2: Any, cluster: str) -> list[Verdict]:
    return [check_one(ec2, elbv2, lb) for lb in cluster_load_balancers(elbv2, cluster)]


def check_arn(ec2: Any, elbv2: Any, arn: str) -> Verdict:
    """One ALB by ARN (its own DescribeLoadBalancers), e.g. right after revoking one of its rules."""
    (lb,) = elbv2.describe_load_balancers(LoadBalancerArns=[arn])["LoadBalancers"]
    return check_one(ec2, elbv2, lb)


def check_one(ec2: Any, elbv2: Any, lb: dict) -> Verdict:
    alb_groups = set(lb.get("SecurityGroups", ()))
    subnet_ids = [az["SubnetId"] for az in lb.get("AvailabilityZones", ()) if az.get("SubnetId")]
    subnets = ec2.describe_subnets(SubnetIds=subnet_ids)["Subnets"] if subnet_ids else []
    alb_cidrs = [ipaddress.ip_network(s["CidrBlock"]) for s in subnets]
    rules_of: dict[str, list[dict]] = {}  # per ALB only: asked once per group for this ALB
    reachable = True
    for tg in elbv2.describe_target_groups(LoadBalancerArn=lb["LoadBalancerArn"])["TargetGroups"]:
        if tg.get("TargetType") not in ("instance", "ip"):
            continue
        health = elbv2.describe_target_health(TargetGroupArn=tg["TargetGroupArn"])["TargetHealthDescriptions"]
        for description in health:
            target = description["Target"]
            if target.get("AvailabilityZone") == "all" or description.get("TargetHealth", {}).get("State") == "draining":
                continue
            groups = _target_groups(ec2, tg, target["Id"])
            if groups is None:
                continue  # an instance that no longer exists carries no traffic
            port = int(target.get("Port") or tg.get("Port") or 0)
            health_port = tg.get("HealthCheckPort", "traffic-port")
            ports = {port, port if health_port in ("", "traffic-port") else int(health_port)}
            for group in groups:
                if group not in rules_of:
                    rules_of[group] = _inbound_rules(ec2, group)
            rules = [r for g in groups for r in rules_of[g]]
            if not all(any(_admits(r, p, alb_groups, alb_cidrs) for r in rules) for p in ports):
                reachable = False
    return Verdict(lb["LoadBalancerArn"], lb["LoadBalancerName"], reachable)


def _target_groups(ec2: Any, tg: dict, target_id: str) -> list[str] | None:
    if tg["TargetType"] == "instance":
        reservations = ec2.describe_instances(Filters=[{"Name": "instance-id", "Values": [target_id]}])["Reservations"]
        instances = [i for r in reservations for i in r.get("Instances", ())]
        if not instances:
            return None
        for eni in instances[0].get("NetworkInterfaces", ()):
            if eni.get("Attachment", {}).get("DeviceIndex") == 0:
                return [g["GroupId"] for g in eni.get("Groups", ())]
        return [g["GroupId"] for g in instances[0].get("SecurityGroups", ())]
    enis = ec2.describe_network_interfaces(Filters=[
        {"Name": "vpc-id", "Values": [tg["VpcId"]]},
        {"Name": "addresses.private-ip-address", "Values": [target_id]}])["NetworkInterfaces"]
    return [g["GroupId"] for eni in enis[:1] for g in eni.get("Groups", ())]


def _inbound_rules(ec2: Any, group: str) -> list[dict]:
    rules = []
    for page in ec2.get_paginator("describe_security_group_rules").paginate(
            Filters=[{"Name": "group-id", "Values": [group]}], PaginationConfig={"PageSize": 1000}):
        rules.extend(r for r in page["SecurityGroupRules"] if not r.get("IsEgress"))
    return rules


def _admits(rule: dict, port: int, alb_groups: set[str], alb_cidrs: list) -> bool:
    protocol = str(rule.get("IpProtocol"))
    if protocol not in ("-1", "tcp", "6"):
        return False
    if protocol != "-1" and not (rule.get("FromPort", -1) <= port <= rule.get("ToPort", -1)):
        return False
    source = rule.get("ReferencedGroupInfo", {}).get("GroupId")
    if source:
        return source in alb_groups
    if rule.get("CidrIpv4"):
        network = ipaddress.ip_network(rule["CidrIpv4"], strict=False)
        return network.prefixlen == 0 or bool(alb_cidrs) and all(c.subnet_of(network) for c in alb_cidrs)
    return False
