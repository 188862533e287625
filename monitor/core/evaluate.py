"""The pure verdict: topology + observed rules -> per-path coverage, per-ALB reachability, findings.

No I/O, no clock, no logging: everything it needs comes in as frozen values.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, replace

from monitor.core import clients, controllers, coverage, cut_findings, nacl, ownership, quota
from monitor.core import failures as failures_words
from monitor.core.coverage import Need
from monitor.core.inputs import Context, Inputs, inputs
from monitor.core.model import (
    SEVERITY_RANK,
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
    Target,
    TargetGroup,
    Topology,
)


def evaluate(topology: Topology, observation: Observation) -> Report:
    """Every load balancer judged from scratch (monitor.core.carry judges again only what changed)."""
    given = inputs(topology, observation)
    judged = {lb.arn: judge(lb, topology, given) for lb in topology.load_balancers if listed(lb, observation)}
    return assemble(topology, observation, judged, whole_findings(topology, observation, given, judged))


@dataclass(frozen=True, slots=True)
class Judgement:
    """One load balancer's verdict and the findings about its paths."""

    result: LoadBalancerResult
    findings: tuple[Finding, ...]


def listed(lb: LoadBalancer, observation: Observation) -> bool:
    """False when the load balancer listing was read and lacks it: deleted since the topology was
    read, or a listing that lost it. One answer is no proof: it is unknown (no verdict, no path)
    until a read of it by ARN confirms it gone."""
    return observation.live_lb_arns is None or lb.arn in observation.live_lb_arns


def fresh(lb: LoadBalancer, given: Inputs) -> LoadBalancer:
    """The load balancer with its security groups as listed now."""
    now = given.fresh_lb_sgs.get(lb.arn)
    if now is not None and now != lb.security_groups:
        return replace(lb, security_groups=now)
    return lb


def judge(lb: LoadBalancer, topology: Topology, given: Inputs) -> Judgement:
    lb = fresh(lb, given)
    target_groups = given.by_lb.get(lb.arn, ())
    paths = tuple(_paths(lb, target_groups, given.context))
    result = LoadBalancerResult(
        name=lb.name,
        arn=lb.arn,
        adoption=lb.adoption,
        security_groups=lb.security_groups,
        reachable=_reachability(paths, unknown=lb.arn in topology.incomplete_lbs),
        paths=paths,
        ingress_namespace=lb.ingress_namespace,
        ingress=lb.ingress,
    )
    findings = [*cut_findings.revoked(lb, paths), *cut_findings.egress_blocked(lb, paths),
                *clients.not_admitted(lb, paths, target_groups), *nacl.findings(lb, paths)]
    if lb.adoption == "v1":
        findings.append(_unadopted(lb))
    return Judgement(result, tuple(findings))


def whole_findings(topology: Topology, observation: Observation, given: Inputs,
                   judged: dict[str, Judgement]) -> tuple[Finding, ...]:
    """The findings about the account's groups and rules rather than one load balancer's paths."""
    names = {sg: j.result.name for j in judged.values() for sg in j.result.security_groups}
    return (*_ambiguous_node_groups(topology, given.context.groups),
            *_rule_findings(observation.rules, given.context.groups, topology, given.fresh_lb_sgs),
            *quota.near_quota(observation, names))


def assemble(topology: Topology, observation: Observation, judged: dict[str, Judgement],
             whole: tuple[Finding, ...]) -> Report:
    """The report: every load balancer in the topology's order (the unlisted ones unknown), the
    findings sorted, and what could not be read."""
    results: list[LoadBalancerResult] = []
    findings: list[Finding] = []
    unlisted: list[ReadFailure] = []
    for lb in topology.load_balancers:
        judgement = judged.get(lb.arn)
        if judgement is None or not listed(lb, observation):
            why = f"{lb.name} was missing from the load balancer listing or could not be read again"
            unlisted.append(ReadFailure("elbv2", "DescribeLoadBalancers", failures_words.NOT_LISTED, why, lb.name))
            results.append(LoadBalancerResult(lb.name, lb.arn, lb.adoption, lb.security_groups, None, (),
                                              lb.ingress_namespace, lb.ingress))
            continue
        results.append(judgement.result)
        findings.extend(judgement.findings)
    findings.extend(whole)
    failures = (*topology.failures, *observation.failures, *unlisted)
    findings.extend(_incomplete(failures))
    findings.sort(key=lambda f: (SEVERITY_RANK[f.severity], f.code, f.load_balancer or "", f.rule or ""))
    return Report(
        cluster=topology.cluster,
        region=topology.region,
        complete=not failures,
        load_balancers=tuple(results),
        findings=tuple(findings),
        failures=failures,
    )


def _paths(lb: LoadBalancer, target_groups, context: Context) -> Iterable[PathResult]:
    for tg in target_groups:
        if tg.target_type not in ("instance", "ip"):
            continue
        shapes: dict[tuple[int, int], _Shape] = {}  # one per port pair: shared by the paths that have it
        for target in tg.targets or ():
            if not target.judged:
                continue
            key = (target.port, tg.health_port_for(target))
            shape = shapes.get(key)
            if shape is None:
                shape = shapes[key] = _shape(tg, target)
            yield _path(lb, tg, target, shape, context)


@dataclass(frozen=True, slots=True)
class _Shape:
    """What a path needs admitted: its (protocol, port) pairs, their ports, the health check's pair."""

    needs: tuple[Need, ...]
    ports: tuple[int, ...]
    health_need: Need


def _shape(tg: TargetGroup, target: Target) -> _Shape:
    needs = _needs(tg, target)
    return _Shape(needs, tuple(sorted({port for _, port in needs})),
                  (coverage.health_check_protocol(tg.health_check_protocol), tg.health_port_for(target)))


def _needs(tg: TargetGroup, target: Target) -> tuple[Need, ...]:
    """The traffic port with the target group's protocol(s), the health-check port with the
    health check's: a UDP service needs `udp <port>` and a tcp rule for its health check."""
    needs = {(protocol, target.port) for protocol in coverage.traffic_protocols(tg.protocol)}
    needs.add((coverage.health_check_protocol(tg.health_check_protocol), tg.health_port_for(target)))
    return tuple(sorted(needs, key=lambda n: (n[1], n[0])))


def _family(tg: TargetGroup, target: Target) -> int:
    """IPv6 only for ip targets with an IPv6 address; instance targets get IPv4 traffic."""
    if tg.target_type != "ip":
        return 4
    try:
        return ipaddress.ip_address(target.target_id).version
    except ValueError:
        return 4


def _path(lb: LoadBalancer, tg: TargetGroup, target: Target, shape: _Shape, context: Context) -> PathResult:
    needs = shape.needs
    base = dict(load_balancer_arn=lb.arn, target_group_arn=tg.arn, target=target.target_id, ports=shape.ports,
                needs=needs, health_need=shape.health_need)
    if target.unjudged:
        # No ENI of the account owns the address (on premises, another account): no security group
        # of the account stands in its way that could be read, so neither direction is judged.
        return PathResult(**base, security_groups=(), covered=None, egress_allowed=None, judged=False,
                          not_judged_reason=target.unjudged)
    family = _family(tg, target)
    egress = _egress(lb, target, needs, family, context)
    acl = nacl.judge(context.acls, lb, target, needs, family, _address(target))
    base.update(nacl_allowed=acl.allowed, nacl_blocked=acl.blocked)
    if target.security_groups is None:
        return PathResult(**base, security_groups=(), covered=None, egress_allowed=egress.covered)
    sgs = target.security_groups
    node_sg = controllers.node_security_group(sgs, context.groups, context.cluster) or (sgs[0] if sgs else None)
    subnets = lb.subnet_ipv6_cidrs if family == 6 else lb.subnet_cidrs
    source = coverage.Peer(groups=frozenset(lb.security_groups), networks=subnets if lb.subnets_read else None,
                           family=family)
    verdict, admitted = clients.judge(lb, tg, target, needs, context.rules(sgs, egress=False), source,
                                      context.prefix_lists, all(g in context.read_groups for g in sgs))
    return PathResult(
        **base,
        security_groups=sgs,
        covered=verdict.covered,
        covered_by=verdict.covered_by,
        missing_ports=tuple(sorted({port for _, port in verdict.missing})),
        node_security_group=node_sg,
        missing=verdict.missing,
        egress_allowed=egress.covered,
        egress_missing=egress.missing,
        clients_admitted=admitted.admitted,
        clients_missing=admitted.missing,
    )


def _egress(lb: LoadBalancer, target: Target, needs: tuple[Need, ...], family: int,
            context: Context) -> coverage.Verdict:
    """Whether the ALB's own SGs let the traffic and health checks out to this target: AWS filters
    a load balancer's outbound traffic by its SGs too ("Security groups for your Application Load
    Balancer"), and hardening policies strip the default allow-all egress rule."""
    if not lb.security_groups:
        return coverage.Verdict(True)
    address = _address(target)
    destination = coverage.Peer(
        groups=None if target.security_groups is None else frozenset(target.security_groups),
        networks=None if address is None else (address,),
        family=family,
    )
    return coverage.cover(context.rules(lb.security_groups, egress=True), needs, destination, context.prefix_lists,
                          rules_complete=all(g in context.read_groups for g in lb.security_groups))


def _address(target: Target) -> str | None:
    return target.address or (target.target_id if _is_address(target.target_id) else None)


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _rule_text(rule: Rule) -> str:
    return f"{rule.group_id}:{rule.ports_text()}:{rule.peer}"


def _reachability(paths: tuple[PathResult, ...], unknown: bool) -> bool | None:
    """Over the judged paths only: a path not judged is never counted reachable, and a load balancer
    whose every path is not judged has no verdict (None)."""
    judged = tuple(p for p in paths if p.judged)
    if paths and not judged:
        return None
    paths = judged
    if any(p.reachable is False for p in paths):
        return False
    if unknown or any(p.reachable is None for p in paths):
        return None
    return True


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
