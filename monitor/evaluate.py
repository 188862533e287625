"""The pure verdict: topology + observed rules -> per-path coverage, per-ALB reachability, findings.

No I/O, no clock, no logging: everything it needs comes in as frozen values (DESIGN.md).
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from collections import defaultdict
from collections.abc import Iterable

from monitor import controllers, ownership
from monitor import failures as failures_words
from monitor.model import (
    Finding,
    LoadBalancer,
    LoadBalancerResult,
    Observation,
    PathResult,
    PeerKind,
    ReadFailure,
    Report,
    Rule,
    SecurityGroup,
    Severity,
    Topology,
)

_SEVERITY_ORDER = {Severity.CRITICAL: 0, Severity.WARNING: 1, Severity.INFO: 2}
# Targets that will not receive traffic again; a missing rule behind them harms nobody.
_IGNORED_TARGET_STATES = frozenset({"draining"})


def evaluate(topology: Topology, observation: Observation) -> Report:
    groups = {g.group_id: g for g in (*topology.security_groups, *observation.extra_groups)}
    rules_by_group: dict[str, list[Rule]] = defaultdict(list)
    for rule in observation.rules:
        rules_by_group[rule.group_id].append(rule)
    fresh_lb_sgs = dict(observation.lb_security_groups)
    prefix_lists = dict(observation.prefix_lists)
    subnets_read = not any(f.operation == "DescribeSubnets" for f in topology.failures)

    by_lb: dict[str, list] = defaultdict(list)
    for tg in topology.target_groups:
        for arn in tg.load_balancer_arns:
            by_lb[arn].append(tg)
    results: list[LoadBalancerResult] = []
    findings: list[Finding] = []
    for lb in topology.load_balancers:
        if observation.live_lb_arns is not None and lb.arn not in observation.live_lb_arns:
            continue  # deleted since the topology was read
        lb = _with_fresh_groups(lb, fresh_lb_sgs)
        paths = tuple(_paths(lb, by_lb[lb.arn], topology.cluster, rules_by_group, observation.read_groups, groups,
                             prefix_lists))
        paths = tuple(_unresolved(p, lb, rules_by_group, prefix_lists, subnets_read) for p in paths)
        reachable = _reachability(paths, unknown=lb.arn in topology.incomplete_lbs)
        results.append(
            LoadBalancerResult(
                name=lb.name,
                arn=lb.arn,
                adoption=lb.adoption,
                security_groups=lb.security_groups,
                reachable=reachable,
                paths=paths,
                ingress_namespace=lb.ingress_namespace,
                ingress=lb.ingress,
            )
        )
        findings.extend(_revoked(lb, paths))
        if lb.adoption == "v1":
            findings.append(_unadopted(lb))

    findings.extend(_ambiguous_node_groups(topology, groups))
    findings.extend(_rule_findings(observation.rules, groups, topology, fresh_lb_sgs))
    failures = (*topology.failures, *observation.failures)
    findings.extend(_incomplete(failures))
    findings.sort(key=lambda f: (_SEVERITY_ORDER[f.severity], f.code, f.load_balancer or "", f.rule or ""))
    return Report(
        cluster=topology.cluster,
        region=topology.region,
        complete=not failures,
        load_balancers=tuple(results),
        findings=tuple(findings),
        failures=failures,
    )


def _with_fresh_groups(lb: LoadBalancer, fresh: dict[str, tuple[str, ...]]) -> LoadBalancer:
    if lb.arn in fresh and fresh[lb.arn] != lb.security_groups:
        return replace(lb, security_groups=fresh[lb.arn])
    return lb


def _paths(lb, target_groups, cluster, rules_by_group, read_groups, groups, prefix_lists) -> Iterable[PathResult]:
    for tg in target_groups:
        if tg.target_type not in ("instance", "ip"):
            continue
        for target in tg.targets or ():
            if target.state in _IGNORED_TARGET_STATES:
                continue
            ports = tuple(sorted({target.port, tg.health_port_for(target)}))
            yield _path(lb, tg.arn, target, ports, rules_by_group, read_groups, groups, cluster, prefix_lists)


def _path(lb, tg_arn, target, ports, rules_by_group, read_groups, groups, cluster, prefix_lists) -> PathResult:
    base = dict(load_balancer_arn=lb.arn, target_group_arn=tg_arn, target=target.target_id, ports=ports)
    if target.security_groups is None:
        return PathResult(**base, security_groups=(), covered=None)
    sgs = target.security_groups
    node_sg = controllers.node_security_group(sgs, groups, cluster) or (sgs[0] if sgs else None)
    covering: set[str] = set()
    missing: list[int] = []
    for port in ports:
        admitting = [
            rule
            for group_id in sgs
            for rule in rules_by_group.get(group_id, ())
            if rule.admits_tcp(port) and _peer_admits(rule, lb, prefix_lists)
        ]
        if admitting:
            covering.update(rule.rule_id or _rule_text(rule) for rule in admitting)
        else:
            missing.append(port)
    if not missing:
        covered: bool | None = True
    elif all(g in read_groups for g in sgs):
        covered = False
    else:
        covered = None  # a rule on an unread SG might still admit it
    return PathResult(
        **base,
        security_groups=sgs,
        covered=covered,
        covered_by=tuple(sorted(covering)),
        missing_ports=tuple(missing) if covered is False else (),
        node_security_group=node_sg,
    )


def _rule_text(rule: Rule) -> str:
    return f"{rule.group_id}:{rule.ports_text()}:{rule.peer}"


def _peer_admits(rule: Rule, lb: LoadBalancer, prefix_lists: dict[str, tuple[str, ...]]) -> bool:
    if rule.peer_kind is PeerKind.SECURITY_GROUP:
        return rule.peer in lb.security_groups
    if rule.peer_kind is PeerKind.CIDR:
        return _cidrs_cover([rule.peer], lb.subnet_cidrs)
    if rule.peer_kind is PeerKind.PREFIX_LIST:
        return _cidrs_cover(prefix_lists.get(rule.peer, ()), lb.subnet_cidrs)
    return False  # ALB-to-target traffic is IPv4 for instance and IPv4 ip targets


def _cidrs_cover(peers: Iterable[str], subnets: tuple[str, ...]) -> bool:
    """True when every subnet the ALB's nodes live in is inside one of the peer CIDRs."""
    networks = []
    for peer in peers:
        try:
            networks.append(ipaddress.ip_network(peer, strict=False))
        except ValueError:
            continue
    if any(n.prefixlen == 0 and n.version == 4 for n in networks):
        return True
    if not subnets:
        return False
    for subnet in subnets:
        net = ipaddress.ip_network(subnet, strict=False)
        if not any(n.version == net.version and net.subnet_of(n) for n in networks):
            return False
    return True


def _unresolved(path: PathResult, lb: LoadBalancer, rules_by_group, prefix_lists, subnets_read: bool) -> PathResult:
    """An uncovered path is unknown instead when a rule admitting a missing port has a peer that
    could not be resolved: a prefix list whose entries were not read, or a CIDR while the ALB's
    subnets were not read. Such a rule may well cover the ALB."""
    if path.covered is not False:
        return path
    for port in path.missing_ports:
        for group_id in path.security_groups:
            for rule in rules_by_group.get(group_id, ()):
                if not rule.admits_tcp(port):
                    continue
                unread_list = rule.peer_kind is PeerKind.PREFIX_LIST and rule.peer not in prefix_lists
                unread_subnets = rule.peer_kind in (PeerKind.CIDR, PeerKind.CIDR6, PeerKind.PREFIX_LIST) and (
                    not subnets_read or not lb.subnet_cidrs)
                if unread_list or unread_subnets:
                    return replace(path, covered=None, missing_ports=())
    return path


def _reachability(paths: tuple[PathResult, ...], unknown: bool) -> bool | None:
    if any(p.covered is False for p in paths):
        return False
    if unknown or any(p.covered is None for p in paths):
        return None
    return True


def _revoked(lb: LoadBalancer, paths: tuple[PathResult, ...]) -> Iterable[Finding]:
    by_group: dict[str, list[PathResult]] = defaultdict(list)
    for path in paths:
        if path.covered is False:
            by_group[path.node_security_group or "?"].append(path)
    source = lb.security_groups[0] if lb.security_groups else "the ALB's security group"
    for group_id, group_paths in sorted(by_group.items()):
        ports = sorted({p for path in group_paths for p in path.missing_ports})
        span = f"{ports[0]}" if len(ports) == 1 else f"{ports[0]}-{ports[-1]}"
        yield Finding(
            code="ACCESS_REVOKED",
            severity=Severity.CRITICAL,
            load_balancer=lb.name,
            security_group=group_id,
            message=(
                f"{controllers.lb_label(lb)} cannot reach {len(group_paths)} target(s) on port(s) "
                f"{', '.join(map(str, ports))} through {group_id}: admit tcp {span} from {source} again, "
                f"with a description of your own (never the v2 label), e.g. `aws ec2 authorize-security-group-ingress "
                f"--group-id {group_id} --ip-permissions 'IpProtocol=tcp,FromPort={ports[0]},ToPort={ports[-1]},"
                f"UserIdGroupPairs=[{{GroupId={source},Description=restored-by-hand}}]'`."
            ),
        )


def _unadopted(lb: LoadBalancer) -> Finding:
    return Finding(
        code="UNADOPTED_LOAD_BALANCER",
        severity=Severity.INFO,
        load_balancer=lb.name,
        message=(
            f"{controllers.lb_label(lb)} carries only v1 tags: before v2 reconciles it, make sure "
            "the v2 controller's role has the migration IAM policy, or v2 cannot adopt it."
        ),
    )


def _ambiguous_node_groups(topology: Topology, groups: dict[str, SecurityGroup]) -> Iterable[Finding]:
    seen: dict[tuple[str, ...], tuple[str, str]] = {}
    lbs = {lb.arn: lb.name for lb in topology.load_balancers}
    for tg in topology.target_groups:
        for target in tg.targets or ():
            sgs = target.security_groups or ()
            if len(sgs) < 2 or sgs in seen:
                continue
            tagged = controllers.tagged_groups(sgs, groups, topology.cluster)
            if len(tagged) < 2 and any(g not in groups for g in sgs):
                continue  # an unread group's tags might make it exactly one: unknown, not ambiguous
            if controllers.node_security_group(sgs, groups, topology.cluster) is None:
                lb_name = next((lbs[a] for a in tg.load_balancer_arns if a in lbs), "")
                seen[sgs] = (target.eni_id or target.target_id, lb_name)
    tag = controllers.cluster_tag(topology.cluster)
    for sgs, (eni, lb_name) in seen.items():
        tagged = controllers.tagged_groups(sgs, groups, topology.cluster)
        yield Finding(
            code="AMBIGUOUS_NODE_SECURITY_GROUP",
            severity=Severity.CRITICAL,
            load_balancer=lb_name or None,
            security_group=sgs[0],
            message=(
                f"{eni} has security groups {', '.join(sgs)} and {len(tagged)} of them tagged {tag}: "
                "tag exactly one of them, or v2 cannot manage node rules and its ALBs return 503."
            ),
        )


def _rule_findings(rules, groups, topology: Topology, fresh_lb_sgs) -> Iterable[Finding]:
    owner_lb: dict[str, str] = {}
    for lb in topology.load_balancers:
        for sg in fresh_lb_sgs.get(lb.arn, lb.security_groups):
            owner_lb.setdefault(sg, lb.name)
    for rule in sorted(rules, key=lambda r: (r.group_id, r.rule_id or "")):
        if rule.peer_kind is not PeerKind.SECURITY_GROUP:
            continue
        source = groups.get(rule.peer)
        labelled = controllers.has_shared_label(rule.description)
        if labelled and source is not None and not controllers.is_controller_owned(source):
            yield Finding(
                code="SHARED_LABEL_ON_FOREIGN_SOURCE",
                severity=Severity.CRITICAL,
                load_balancer=owner_lb.get(rule.peer),
                security_group=rule.group_id,
                rule=rule.rule_id,
                message=(
                    f"Rule {rule.rule_id or _rule_text(rule)} on {rule.group_id} ({rule.ports_text()} from "
                    f"{rule.peer} '{source.name}', a group no controller owns) is labelled "
                    f"{controllers.SHARED_LABEL_KEY}={controllers.SHARED_LABEL_VALUE}: v2 will revoke it; "
                    "remove the label from the rule's description now."
                ),
            )
        elif ownership.is_ours_tags(rule.tags):
            # A rule the monitor restored: v2 sees its tuple as present and never collects it, and
            # the monitor removes it itself once no live ALB uses its source. Labelling it would
            # hand it to v2's garbage collection, the outage the restore undid.
            continue
        elif not labelled and source is not None and controllers.is_v1_managed(source):
            yield Finding(
                code="UNLABELLED_V1_RULE",
                severity=Severity.INFO,
                load_balancer=owner_lb.get(rule.peer),
                security_group=rule.group_id,
                rule=rule.rule_id,
                message=(
                    f"Rule {rule.rule_id or _rule_text(rule)} on {rule.group_id} admits the v1-managed "
                    f"group {rule.peer} without the v2 label, so v2 will not delete it with its Ingress; "
                    f"label this rule (and only rules from v1-managed groups) "
                    f"{controllers.SHARED_LABEL_KEY}={controllers.SHARED_LABEL_VALUE} when v2 has adopted the ALB."
                ),
            )


def _incomplete(failures: tuple[ReadFailure, ...]) -> tuple[Finding, ...]:
    """One OBSERVATION_INCOMPLETE per distinct (operation, error code), with advice for its class."""
    return failures_words.incomplete_findings(failures)
