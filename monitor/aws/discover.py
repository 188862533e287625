"""Topology discovery: the cluster's ALBs, their target groups, targets, ENIs and security groups.

Batched and paginated to the API limits; a failed read leaves what depends on it unknown.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from monitor.aws import client_ip, enis, outside
from monitor.aws.calls import (
    EC2_FILTER_VALUES,
    EC2_PAGE,
    ELB_PAGE,
    ELB_TAGS_PER_CALL,
    attempt,
    chunks,
    confirm_absent,
    contradiction,
    paginate,
    scope_of,
    tag_pairs,
)
from monitor.aws.session import AwsClients
from monitor.core import controllers
from monitor.core.compact import compact
from monitor.core.model import LoadBalancer, ReadFailure, SecurityGroup, Subnet, Target, TargetGroup, Topology


def _silent(_: str) -> None:
    return None


@dataclass
class _Discovery:
    clients: AwsClients
    cluster: str
    progress: Callable[[str], None] = _silent
    failures: list[ReadFailure] = field(default_factory=list)
    incomplete: set[str] = field(default_factory=set)


def discover(clients: AwsClients, cluster: str, progress: Callable[[str], None] = _silent) -> Topology:
    """`progress` hears a short line at each step (the CLI shows it on a terminal)."""
    d = _Discovery(clients, cluster, progress)
    progress("listing load balancers")
    raw_lbs = attempt(d.failures, "elbv2", "DescribeLoadBalancers",
                      lambda: paginate(clients.elbv2, "describe_load_balancers", "LoadBalancers", ELB_PAGE,
                                       each=listed_item))
    if raw_lbs == []:
        _confirm_no_load_balancers(d)
    if raw_lbs is None or d.failures:
        return Topology(cluster=cluster, region=clients.region, load_balancers=(), target_groups=(),
                        security_groups=(), failures=tuple(d.failures))
    # One listing for the whole region (400 a page) beats one call per load balancer.
    return _describe(d, raw_lbs, lambda _: paginate(clients.elbv2, "describe_target_groups", "TargetGroups", ELB_PAGE))


# What discovery reads of a DescribeLoadBalancers item (AvailabilityZones: only their subnets).
_LB_KEYS = ("LoadBalancerArn", "LoadBalancerName", "Type", "VpcId", "SecurityGroups", "DNSName", "Scheme",
            "IpAddressType")


def listed_item(lb: dict) -> dict:
    """A DescribeLoadBalancers item with only what discovery reads: the region's whole listing is
    held until the topology is built, and most of each item (zones, addresses, times) is not read."""
    kept = {key: lb[key] for key in _LB_KEYS if key in lb}
    kept["AvailabilityZones"] = [{"SubnetId": zone["SubnetId"]} for zone in lb.get("AvailabilityZones", ())
                                 if zone.get("SubnetId")]
    return kept


def _confirm_no_load_balancers(d: _Discovery) -> None:
    """An empty listing erases everything the monitor knows, so it is checked against one page of the
    region's target groups: any attached to a load balancer says load balancers exist, and the empty
    listing becomes a failed read (EmptyAnswer). One request, only when the listing is empty."""
    page = attempt(d.failures, "elbv2", "DescribeTargetGroups",
                   lambda: d.clients.elbv2.describe_target_groups(PageSize=ELB_PAGE), "confirming an empty listing")
    attached = [tg["TargetGroupArn"] for tg in (page or {}).get("TargetGroups", ()) if tg.get("LoadBalancerArns")]
    if attached:
        contradiction(d.failures, "elbv2", "DescribeLoadBalancers",
                      f"the listing named no load balancer while target group {attached[0]} is attached to one")


def discover_load_balancers(clients: AwsClients, cluster: str, raw_lbs: list[dict]) -> Topology:
    """The topology behind a few load balancers only (DescribeLoadBalancers items the rule check
    listed): their tags, their own target groups (one DescribeTargetGroups each), their targets'
    health and ENIs, their security groups and subnets. Costs requests in proportion to them, not
    to the region. `known_lb_arns` are the ones read: merge it into the full topology."""
    d = _Discovery(clients, cluster)

    def their_target_groups(lb_arns: list[str]) -> list[dict]:
        groups: dict[str, dict] = {}
        for arn in lb_arns:
            for tg in paginate(clients.elbv2, "describe_target_groups", "TargetGroups", ELB_PAGE,
                               LoadBalancerArn=arn):
                groups.setdefault(tg["TargetGroupArn"], tg)
        return list(groups.values())

    return _describe(d, raw_lbs, their_target_groups)


def listed_by_arn(clients: AwsClients, arns: list[str], failures: list[ReadFailure]) -> tuple[list[dict], set[str]]:
    """DescribeLoadBalancers items by ARN (20 a call), and the ARNs AWS says do not exist. A batch
    naming a deleted load balancer fails as a whole: its ARNs are then asked one by one."""
    items: list[dict] = []
    gone: set[str] = set()
    for batch in chunks(arns, ELB_TAGS_PER_CALL):
        for group in ([batch], [[arn] for arn in batch]):
            missing = False
            for arns_of in group:
                tried: list[ReadFailure] = []
                answer = attempt(tried, "elbv2", "DescribeLoadBalancers",
                                 lambda: clients.elbv2.describe_load_balancers(LoadBalancerArns=arns_of),
                                 scope_of(arns_of))
                if answer is not None:
                    listed = answer.get("LoadBalancers", ())
                    items.extend(listed)
                    # Asked by ARN, AWS answers LoadBalancerNotFound for one that is gone: one left
                    # out of a successful answer is unread, never proof that it is gone.
                    left_out = sorted(set(arns_of) - {lb.get("LoadBalancerArn") for lb in listed})
                    if left_out:
                        contradiction(failures, "elbv2", "DescribeLoadBalancers",
                                      "a read by ARN left out load balancers it was asked for", scope_of(left_out))
                elif tried[0].code == "LoadBalancerNotFound" and len(arns_of) > 1:
                    missing = True
                    break
                elif tried[0].code == "LoadBalancerNotFound":
                    gone.update(arns_of)
                else:
                    failures.extend(tried)
            if not missing:
                break
    return items, gone


TargetGroupLister = Callable[[list[str]], list[dict]]  # the cluster's load balancer ARNs -> target groups


def _describe(d: _Discovery, raw_lbs: list[dict], list_target_groups: TargetGroupLister) -> Topology:
    clients, cluster, progress = d.clients, d.cluster, d.progress
    tags = _lb_tags(d, [lb["LoadBalancerArn"] for lb in raw_lbs])
    lbs = [lb for lb in raw_lbs if _is_cluster_alb(lb, tags.get(lb["LoadBalancerArn"]), cluster)]
    progress(f"{len(lbs)} load balancers of {cluster} among {len(raw_lbs)}; listing target groups")
    target_groups = _target_groups(d, {lb["LoadBalancerArn"] for lb in lbs}, list_target_groups)
    progress("looking up the ENIs behind the targets")
    target_groups = _attach_enis(d, target_groups)
    lb_groups = {sg for lb in lbs for sg in lb.get("SecurityGroups", ())}
    eni_groups = {sg for tg in target_groups for t in tg.targets or () for sg in t.security_groups or ()}
    groups = describe_groups(clients, sorted(lb_groups | eni_groups), d.failures)
    subnets = _subnets(d, lbs)
    # Where an internal NLB's clients come from, should its targets see their addresses.
    vpcs = client_ip.vpc_cidrs(clients, sorted({lb.get("VpcId", "") for lb in lbs if lb.get("Type") == "network"
                                                and lb.get("Scheme") == "internal"}), d.failures)
    load_balancers = tuple(_load_balancer(lb, tags[lb["LoadBalancerArn"]], subnets, cluster, vpcs) for lb in lbs)
    # Held for the daemon's life: one copy of each string and small value (monitor.core.compact).
    return compact(Topology(
        cluster=cluster,
        region=clients.region,
        load_balancers=load_balancers,
        target_groups=tuple(target_groups),
        security_groups=tuple(groups),
        known_lb_arns=frozenset(lb["LoadBalancerArn"] for lb in raw_lbs),
        incomplete_lbs=frozenset(d.incomplete),
        failures=tuple(d.failures),
    ))


def _lb_tags(d: _Discovery, arns: list[str]) -> dict[str, dict[str, str]]:
    tags: dict[str, dict[str, str]] = {}
    for batch in chunks(arns, ELB_TAGS_PER_CALL):
        answer = attempt(d.failures, "elbv2", "DescribeTags",
                         lambda: d.clients.elbv2.describe_tags(ResourceArns=batch), scope_of(batch))
        for desc in (answer or {}).get("TagDescriptions", ()):
            tags[desc["ResourceArn"]] = dict(tag_pairs(desc.get("Tags")))
        untold = [arn for arn in batch if arn not in tags]
        if answer is not None and untold:
            # AWS answers one description per ARN asked, tags or not (an ARN it does not know is
            # an error): an ARN left out was not read.
            contradiction(d.failures, "elbv2", "DescribeTags", "no tag description for load balancers asked",
                          scope_of(untold))
    return tags


def _is_cluster_alb(lb: dict, tags: dict[str, str] | None, cluster: str) -> bool:
    # Every ALB and NLB: an NLB without security groups (made before v2.6, or with them turned off)
    # has node rules too, CIDR rules v2 writes and revokes the same way. Untagged-because-unreadable
    # LBs were recorded as a failure by _lb_tags and are left out here.
    if tags is None or not controllers.belongs_to_cluster(tags, cluster):
        return False
    return lb.get("Type") in ("application", "network")


def _target_groups(d: _Discovery, lb_arns: set[str], list_target_groups: TargetGroupLister) -> list[TargetGroup]:
    if not lb_arns:
        return []
    raw = attempt(d.failures, "elbv2", "DescribeTargetGroups", lambda: list_target_groups(sorted(lb_arns)))
    if raw is None:
        d.incomplete.update(lb_arns)
        return []
    groups = []
    ours = [tg for tg in raw if tg.get("TargetType") in ("instance", "ip")
            and any(a in lb_arns for a in tg.get("LoadBalancerArns", ()))]
    for index, tg in enumerate(ours, 1):
        attached = tuple(a for a in tg.get("LoadBalancerArns", ()) if a in lb_arns)
        if index % 25 == 0 or index == len(ours):
            d.progress(f"target health: {index}/{len(ours)} target groups")
        health = attempt(d.failures, "elbv2", "DescribeTargetHealth",
                         lambda: d.clients.elbv2.describe_target_health(TargetGroupArn=tg["TargetGroupArn"]),
                         tg["TargetGroupArn"])
        if health is None:
            d.incomplete.update(attached)
        groups.append(TargetGroup(
            arn=tg["TargetGroupArn"],
            name=tg.get("TargetGroupName", ""),
            target_type=tg["TargetType"],
            protocol=tg.get("Protocol", ""),
            port=tg.get("Port"),
            vpc_id=tg.get("VpcId", ""),
            health_check_port=str(tg.get("HealthCheckPort", "traffic-port")),
            health_check_protocol=tg.get("HealthCheckProtocol", ""),
            health_check_interval=tg.get("HealthCheckIntervalSeconds"),
            health_check_timeout=tg.get("HealthCheckTimeoutSeconds"),
            unhealthy_threshold=tg.get("UnhealthyThresholdCount"),
            load_balancer_arns=attached,
            targets=None if health is None else _targets(tg, health),
            preserve_client_ip=client_ip.preserve_client_ip(d.clients, tg, d.failures),
        ))
    return groups


def _targets(tg: dict, health: dict) -> tuple[Target, ...]:
    targets = []
    for description in health.get("TargetHealthDescriptions", ()):
        target = description["Target"]
        targets.append(Target(target_id=target["Id"], port=int(target.get("Port") or tg.get("Port") or 0),
                              eni_id=None, security_groups=None,
                              state=description.get("TargetHealth", {}).get("State", ""),
                              outside=target.get("AvailabilityZone") == "all"))
    return tuple(targets)


def _attach_enis(d: _Discovery, groups: list[TargetGroup]) -> list[TargetGroup]:
    """Fill in each target's ENI and its SGs: the primary ENI of an instance target, the ENI that
    owns the address of an ip target (a branch ENI with security groups for pods)."""
    # Targets that are not judged (draining, unused) are not looked up: a draining pod's address
    # often has no ENI any more, and that must not make its load balancer unknown.
    instance_ids = sorted({t.target_id for tg in groups if tg.target_type == "instance" for t in tg.targets or ()
                           if t.judged})
    addresses: dict[str, str] = {}
    by_instance = enis.instance_enis(d.clients, instance_ids, d.failures, addresses)
    # Addresses are only unique within a VPC (overlapping CIDRs across VPCs are common).
    by_ip: dict[tuple[str, str], enis.Owner] = {}
    for vpc in sorted({tg.vpc_id for tg in groups if tg.target_type == "ip"}):
        ips = sorted({t.target_id for tg in groups if tg.target_type == "ip" and tg.vpc_id == vpc
                      for t in tg.targets or () if t.judged and not t.outside})
        by_ip.update({(vpc, ip): eni for ip, eni in enis.ip_enis(d.clients, vpc, ips, d.failures).items()})
    # Targets outside the target group's VPC: their ENI may be in any VPC of the account.
    far = sorted({t.target_id for tg in groups if tg.target_type == "ip" for t in tg.targets or ()
                  if t.judged and t.outside})
    far_owners, far_unread = outside.owners_anywhere(d.clients, far, d.failures) if far else ({}, set())
    out = []
    for tg in groups:
        if tg.targets is None:
            out.append(tg)
            continue
        targets = []
        for t in tg.targets:
            if not t.judged:
                targets.append(t)
                continue
            if t.outside and tg.target_type == "ip":
                if t.target_id in far_unread:
                    d.incomplete.update(tg.load_balancer_arns)  # a failed lookup is unknown, never unowned
                    targets.append(t)
                else:
                    targets.append(_outside_target(t, far_owners.get(t.target_id, [])))
                continue
            found = by_instance.get(t.target_id) if tg.target_type == "instance" else by_ip.get((tg.vpc_id, t.target_id))
            if found == enis.GONE:
                continue  # deregistered-in-effect: the instance no longer exists
            if found is None:
                d.incomplete.update(tg.load_balancer_arns)
                targets.append(t)
            else:
                address = addresses.get(t.target_id) if tg.target_type == "instance" else t.target_id
                targets.append(replace(t, eni_id=found.eni_id, security_groups=found.groups, address=address,
                                       subnet_id=found.subnet_id, vpc_id=found.vpc_id))
        out.append(replace(tg, targets=tuple(targets)))
    return out


def _outside_target(target: Target, owned: list[outside.Owned]) -> Target:
    """An address outside the target group's VPC: judged on its ENI when exactly one VPC of the
    account owns it; not judged when none does (on premises, another account), nor when several do
    (addresses are unique only within a VPC: which one the traffic reaches cannot be told)."""
    vpcs = sorted({vpc for vpc, _ in owned})
    if len(vpcs) == 1:
        owner = owned[0][1]
        return replace(target, eni_id=owner.eni_id, security_groups=owner.groups, address=target.target_id,
                       subnet_id=owner.subnet_id, vpc_id=owner.vpc_id or vpcs[0])
    if not vpcs:
        return replace(target, address=target.target_id, unjudged="no ENI of the account owns this address")
    names = ", ".join(f"{owner[0]} in {vpc}" for vpc, owner in sorted(owned, key=lambda o: (o[0], o[1][0] or "")))
    return replace(target, address=target.target_id,
                   unjudged=f"ENIs in {len(vpcs)} VPCs own this address ({names}): which one it reaches is unknown")


def describe_groups(clients: AwsClients, group_ids: list[str], failures: list[ReadFailure]) -> list[SecurityGroup]:
    """Security groups by id. A filter (not GroupIds) so a deleted group is absent, not an error."""
    groups: list[SecurityGroup] = []
    for batch in chunks(group_ids, EC2_FILTER_VALUES):
        raw = attempt(failures, "ec2", "DescribeSecurityGroups",
                      lambda: paginate(clients.ec2, "describe_security_groups", "SecurityGroups", EC2_PAGE,
                                       Filters=[{"Name": "group-id", "Values": batch}]),
                      scope_of(batch))
        if raw == []:  # a group in use cannot be deleted: every one of them gone at once is doubted
            raw = confirm_absent(failures, "ec2", "DescribeSecurityGroups",
                                 lambda: clients.ec2.describe_security_groups(GroupIds=batch)["SecurityGroups"],
                                 scope_of(batch))
        for sg in raw or ():
            groups.append(SecurityGroup(group_id=sg["GroupId"], name=sg.get("GroupName", ""),
                                        description=sg.get("Description", ""), vpc_id=sg.get("VpcId", ""),
                                        tags=tag_pairs(sg.get("Tags"))))
    return groups


@dataclass(frozen=True)
class _Subnet:
    cidr: str
    ipv6_cidrs: tuple[str, ...]


def _subnets(d: _Discovery, lbs: list[dict]) -> dict[str, _Subnet]:
    """The subnets the load balancers sit in: their IPv4 CIDR and associated IPv6 CIDRs (the
    addresses the load balancer's nodes send from). A subnet missing here was not read."""
    subnet_ids = sorted({az["SubnetId"] for lb in lbs for az in lb.get("AvailabilityZones", ()) if az.get("SubnetId")})
    found: dict[str, _Subnet] = {}
    for batch in chunks(subnet_ids, EC2_FILTER_VALUES):
        raw = attempt(d.failures, "ec2", "DescribeSubnets",
                      lambda: paginate(d.clients.ec2, "describe_subnets", "Subnets", EC2_PAGE,
                                       Filters=[{"Name": "subnet-id", "Values": batch}]),
                      scope_of(batch))
        for subnet in raw or ():
            found[subnet["SubnetId"]] = _Subnet(subnet.get("CidrBlock", ""), enis.ipv6_cidrs(subnet))
        unlisted = [s for s in batch if s not in found]
        if raw is not None and unlisted:
            # A subnet cannot be deleted while a load balancer is in it.
            contradiction(d.failures, "ec2", "DescribeSubnets", "load balancers' subnets not listed",
                          scope_of(unlisted))
    return found


def _load_balancer(lb: dict, tags: dict[str, str], subnets: dict[str, _Subnet], cluster: str,
                   vpcs: dict[str, tuple[str, ...]]) -> LoadBalancer:
    namespace, ingress = controllers.ingress_of(tags)
    ids = [az["SubnetId"] for az in lb.get("AvailabilityZones", ()) if az.get("SubnetId")]
    mine = [subnets[i] for i in ids if i in subnets]
    return LoadBalancer(
        arn=lb["LoadBalancerArn"],
        name=lb["LoadBalancerName"],
        lb_type=lb.get("Type", "application"),
        vpc_id=lb.get("VpcId", ""),
        security_groups=tuple(lb.get("SecurityGroups", ())),
        subnet_cidrs=tuple(sorted({s.cidr for s in mine if s.cidr})),
        tags=tuple(sorted(tags.items())),
        adoption=controllers.adoption(tags, cluster),
        ingress_namespace=namespace,
        ingress=ingress,
        dns_name=lb.get("DNSName", ""),
        subnet_ipv6_cidrs=tuple(sorted({c for s in mine for c in s.ipv6_cidrs})),
        subnets_read=len(mine) == len(ids),
        scheme=lb.get("Scheme") or "internet-facing",  # AWS's default when not said
        ip_address_type=lb.get("IpAddressType", ""),
        vpc_cidrs=vpcs.get(lb.get("VpcId", "")) if lb.get("Scheme") == "internal" else (),
        subnets=tuple(Subnet(i, subnets[i].cidr, subnets[i].ipv6_cidrs) for i in ids if i in subnets),
    )
