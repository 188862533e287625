"""The frozen values the decision core works on: topology, observed rules, paths, findings, reports."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum


class Severity(str, Enum):
    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


# How findings are ordered: critical first.
SEVERITY_RANK = {Severity.CRITICAL: 0, Severity.WARNING: 1, Severity.INFO: 2}


class PeerKind(str, Enum):
    SECURITY_GROUP = "sg"
    CIDR = "cidr"
    CIDR6 = "cidr6"
    PREFIX_LIST = "prefix_list"


@dataclass(frozen=True, slots=True)
class ReadFailure:
    """One AWS read that did not succeed; what depends on it is unknown."""

    service: str
    operation: str
    code: str
    message: str
    scope: str = ""  # what the read was about (an ARN, a list of SG ids), for the finding text


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule for one peer: inbound (the peer is the source), or outbound when `egress` (the
    peer is the destination). Identity is (group, direction, protocol, ports, peer); the
    description is not part of it, as for the v2 controller (docs/controllers.md)."""

    group_id: str
    protocol: str  # "tcp", "udp", "icmp", "-1" (all), or a protocol number as text
    from_port: int | None
    to_port: int | None
    peer_kind: PeerKind
    peer: str
    rule_id: str | None = None
    description: str = ""
    tags: tuple[tuple[str, str], ...] = ()
    egress: bool = False

    @property
    def key(self) -> tuple[str, bool, str, int | None, int | None, str, str]:
        return (self.group_id, self.egress, self.protocol, self.from_port, self.to_port, self.peer_kind.value,
                self.peer)

    def ports_text(self) -> str:
        if self.protocol == "-1":
            return "all traffic"
        if self.from_port == self.to_port:
            return f"{self.protocol} {self.from_port}"
        return f"{self.protocol} {self.from_port}-{self.to_port}"


@dataclass(frozen=True, slots=True)
class SecurityGroup:
    group_id: str
    name: str
    description: str
    vpc_id: str
    tags: tuple[tuple[str, str], ...] = ()

    def tag(self, key: str) -> str | None:
        return dict(self.tags).get(key)


@dataclass(frozen=True, slots=True)
class Subnet:
    """A subnet a load balancer sits in: its id (which network ACL filters it) and its CIDRs."""

    subnet_id: str
    cidr: str
    ipv6_cidrs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Target:
    """A registered target and the ENI its traffic arrives on.

    `security_groups` is None when the ENI could not be looked up (unknown, not empty)."""

    target_id: str  # instance id, or IP address for ip targets
    port: int
    eni_id: str | None
    security_groups: tuple[str, ...] | None
    state: str = ""
    address: str | None = None  # where the load balancer sends to: the IP, or an instance's primary IPv4
    subnet_id: str | None = None  # the ENI's subnet (its network ACL filters the target's traffic)
    vpc_id: str | None = None  # the ENI's VPC
    outside: bool = False  # an ip target registered with AvailabilityZone=all (outside the target group's VPC)
    unjudged: str = ""  # why its path cannot be judged ("" when it can): no ENI of the account owns its address

    @property
    def judged(self) -> bool:
        """Whether its path is checked. A draining target takes no new connections (its pod or node
        is often gone already, so its ENI cannot be found); an unused one gets neither traffic nor
        health checks (its zone is not enabled for the load balancer, or it is stopped). Unhealthy
        and initial targets are checked: after a revoke AWS reports them so."""
        return self.state not in ("draining", "unused")


@dataclass(frozen=True, slots=True)
class TargetGroup:
    arn: str
    name: str
    target_type: str  # "instance" | "ip" | "lambda" | "alb"
    protocol: str
    port: int | None
    vpc_id: str
    health_check_port: str  # "traffic-port" or a number as text
    load_balancer_arns: tuple[str, ...]
    targets: tuple[Target, ...] | None  # None: the target list could not be read
    tags: tuple[tuple[str, str], ...] = ()
    health_check_protocol: str = ""  # HTTP, HTTPS or TCP ("" when unknown: every one of them is tcp)
    # The health-check timing as DescribeTargetGroups gives it (None: absent; AWS's default applies)
    health_check_interval: int | None = None
    health_check_timeout: int | None = None
    unhealthy_threshold: int | None = None
    # Whether targets see the client's address: preserve_client_ip.enabled, or AWS's default when it
    # is unset. Read for network target groups only (an ALB never preserves); None there means the
    # attribute could not be read, and the clients' check is unknown.
    preserve_client_ip: bool | None = None

    def health_port_for(self, target: Target) -> int:
        if self.health_check_port in ("", "traffic-port"):
            return target.port
        return int(self.health_check_port)


@dataclass(frozen=True, slots=True)
class LoadBalancer:
    arn: str
    name: str
    lb_type: str  # "application" | "network"
    vpc_id: str
    security_groups: tuple[str, ...]
    subnet_cidrs: tuple[str, ...]  # CIDRs of the subnets its nodes sit in (for CIDR rules)
    tags: tuple[tuple[str, str], ...] = ()
    adoption: str = "other"  # "v1" | "adopted" | "v2" | "other"
    ingress_namespace: str = ""
    ingress: str = ""
    dns_name: str = ""  # matches the Ingress status hostname; joins Kubernetes names in
    subnet_ipv6_cidrs: tuple[str, ...] = ()  # the IPv6 CIDRs associated with those subnets
    subnets_read: bool = True  # False when the subnets could not be described: CIDR coverage is unknown
    scheme: str = ""  # "internet-facing" | "internal" ("" when not said: AWS's default, internet-facing)
    ip_address_type: str = ""  # "ipv4" | "dualstack" | "dualstack-without-public-ipv4"
    # Where clients of a preserving NLB come from. vpc_cidrs: the VPC's CIDRs, for an internal NLB
    # (None: not read). client_ranges: the Service's loadBalancerSourceRanges (() when it names none;
    # None when Kubernetes was read but its Services were not).
    vpc_cidrs: tuple[str, ...] | None = ()
    client_ranges: tuple[str, ...] | None = ()
    subnets: tuple[Subnet, ...] = ()  # the subnets themselves (their network ACLs filter its traffic)

    def tag(self, key: str) -> str | None:
        return dict(self.tags).get(key)


@dataclass(frozen=True, slots=True)
class Topology:
    """What must reach what: the slow-changing half of a cycle's inputs."""

    cluster: str
    region: str
    load_balancers: tuple[LoadBalancer, ...]
    target_groups: tuple[TargetGroup, ...]
    security_groups: tuple[SecurityGroup, ...]  # ALB SGs, ENI SGs and rule sources we looked up
    known_lb_arns: frozenset[str] = frozenset()  # every LB seen in the region, cluster's or not
    incomplete_lbs: frozenset[str] = frozenset()  # LBs part of whose topology could not be read
    failures: tuple[ReadFailure, ...] = ()

    @property
    def target_group_ids(self) -> frozenset[str]:
        ids: set[str] = set()
        for tg in self.target_groups:
            for target in tg.targets or ():
                ids.update(target.security_groups or ())
        return frozenset(ids)


@dataclass(frozen=True, slots=True)
class RuleQuota:
    """The rules-per-security-group quota (Service Quotas vpc L-0EA8095F, per direction and per
    IP family), as read once per process; `read` is False when it could not be read and `value` is
    AWS's default then."""

    value: int
    read: bool

    def text(self) -> str:
        return f"{self.value}" if self.read else f"{self.value} (quota not readable, assumed {self.value})"


@dataclass(frozen=True, slots=True)
class NaclEntry:
    """One network ACL entry: `egress` ones filter what leaves the subnet (the CIDR is the
    destination), the others what enters it (the CIDR is the source)."""

    rule_number: int
    egress: bool
    protocol: str  # "-1" (all) or an IP protocol number as text: "6" tcp, "17" udp
    allow: bool
    cidr: str  # an IPv4 or IPv6 CIDR
    from_port: int | None = None  # None: every port
    to_port: int | None = None


@dataclass(frozen=True, slots=True)
class NetworkAcl:
    acl_id: str
    vpc_id: str
    is_default: bool
    subnet_ids: tuple[str, ...]  # the subnets explicitly associated with it
    entries: tuple[NaclEntry, ...]


@dataclass(frozen=True, slots=True)
class NaclBlock:
    """What stops a path in a network ACL: the entry (`rule` is its number, or "*" for the final
    deny), the direction it filters, the subnet it is associated with, and the traffic it stops."""

    acl_id: str
    rule: str
    egress: bool
    subnet_id: str
    protocol: str  # "tcp" | "udp"
    from_port: int
    to_port: int
    peer: str  # the address or CIDR the traffic comes from (inbound) or goes to (outbound)
    reply: bool = False  # the replies on 1024-65535, not the requests

    @property
    def direction(self) -> str:
        return "outbound" if self.egress else "inbound"


@dataclass(frozen=True, slots=True)
class Observation:
    """The fast-changing half: the inbound rules on the targets' SGs, and the outbound rules on
    the load balancers' SGs, read this cycle."""

    rules: tuple[Rule, ...]  # inbound rules of the targets' SGs only
    read_groups: frozenset[str]  # SGs whose rules were read completely (targets' and load balancers')
    lb_security_groups: tuple[tuple[str, tuple[str, ...]], ...] = ()  # fresh ALB SG lists
    live_lb_arns: frozenset[str] | None = None  # every LB that exists now; None when unread
    new_lb_arns: frozenset[str] = frozenset()  # LBs the topology does not know yet
    extra_groups: tuple[SecurityGroup, ...] = ()  # rule sources looked up outside the topology
    prefix_lists: tuple[tuple[str, tuple[str, ...]], ...] = ()  # prefix list id -> CIDRs
    failures: tuple[ReadFailure, ...] = ()
    egress_rules: tuple[Rule, ...] = ()  # outbound rules of the load balancers' SGs only
    rule_quota: RuleQuota | None = None  # rules per group; None when not asked (AWS's default is assumed)
    network_acls: tuple[NetworkAcl, ...] = ()  # the network ACLs of the load balancers' and targets' VPCs
    network_acls_read: bool | None = None  # False: their read failed (unknown); None: not asked (not judged)


@dataclass(frozen=True, slots=True)
class PathResult:
    """One ALB → target group → target path: whether the target's SGs admit its ports (`covered`)
    and whether the ALB's own SGs let them out (`egress_allowed`)."""

    load_balancer_arn: str
    target_group_arn: str
    target: str
    ports: tuple[int, ...]
    security_groups: tuple[str, ...]
    covered: bool | None
    covered_by: tuple[str, ...] = ()
    missing_ports: tuple[int, ...] = ()
    node_security_group: str | None = None
    needs: tuple[tuple[str, int], ...] = ()  # (protocol, port) pairs the path needs admitted
    missing: tuple[tuple[str, int], ...] = ()  # those no inbound rule admits, when covered is False
    egress_allowed: bool | None = True
    egress_missing: tuple[tuple[str, int], ...] = ()  # those no outbound rule lets out, when egress_allowed is False
    nacl_allowed: bool | None = True  # whether the subnets' network ACLs pass it and its replies
    nacl_blocked: tuple[NaclBlock, ...] = ()  # what stops it there, when nacl_allowed is False
    health_need: tuple[str, int] | None = None  # the (protocol, port) the ELB's health checks use
    judged: bool = True  # False: no ENI of the account owns the target's address, nothing can be judged
    not_judged_reason: str = ""  # why, when not judged
    # An NLB that preserves client addresses: whether the traffic port admits its clients (True for
    # every other path), and the client ranges not admitted when it is False.
    clients_admitted: bool | None = True
    clients_missing: tuple[str, ...] = ()

    @property
    def reachable(self) -> bool | None:
        """Security groups both ways, network ACLs and an NLB's clients: False when any is known
        blocked, None when any is unknown."""
        # Asked of every path several times a check: spelt out, without a generator.
        covered, egress, nacl, clients = self.covered, self.egress_allowed, self.nacl_allowed, self.clients_admitted
        if covered is False or egress is False or nacl is False or clients is False:
            return False
        if covered is None or egress is None or nacl is None or clients is None:
            return None
        return True

    @property
    def state(self) -> str:
        """`covered`, `uncovered`, `unknown` (a read failed) or `not_judged`, as users see it."""
        if not self.judged:
            return "not_judged"
        return PATH_STATES[self.reachable]


# What a judged path's reachability is called; PATH_STATE_NAMES lists every state, not_judged last.
PATH_STATES: dict[bool | None, str] = {True: "covered", False: "uncovered", None: "unknown"}
PATH_STATE_NAMES = ("covered", "uncovered", "unknown", "not_judged")


@dataclass(frozen=True, slots=True)
class Attribution:
    """Who made the API call that cut a path, from its CloudTrail event."""

    principal: str  # the caller's ARN (for a role, the session ARN CloudTrail records)
    actor_kind: str  # "v2_controller", "v1_controller", "monitor" or "other"
    event_time: float  # seconds since the epoch
    event_id: str
    event_name: str = ""


@dataclass(frozen=True, slots=True)
class Finding:
    code: str
    severity: Severity
    message: str
    load_balancer: str | None = None
    security_group: str | None = None
    rule: str | None = None
    attribution: Attribution | None = None  # set when a CloudTrail event says who cut the path
    paths: tuple[tuple[str, str], ...] = ()  # (target group ARN, target) of the paths a cut concerns
    confirmation: str | None = None  # the ELB's word on a cut (monitor.core.health); None: not a cut


@dataclass(frozen=True, slots=True)
class LoadBalancerResult:
    name: str
    arn: str
    adoption: str
    security_groups: tuple[str, ...]
    reachable: bool | None
    paths: tuple[PathResult, ...]
    ingress_namespace: str = ""
    ingress: str = ""

    @property
    def not_judged(self) -> bool:
        """Every path of it is not judged: its `reachable` is None for that, not for a failed read."""
        return bool(self.paths) and not any(p.judged for p in self.paths)


@dataclass(frozen=True, slots=True)
class Report:
    """One cycle's complete verdict; everything users see is rendered from it."""

    cluster: str
    region: str
    complete: bool
    load_balancers: tuple[LoadBalancerResult, ...]
    findings: tuple[Finding, ...]
    failures: tuple[ReadFailure, ...] = field(default=())

    def with_findings(self, findings: tuple[Finding, ...], failures: tuple[ReadFailure, ...] = (),
                      order=None) -> "Report":
        """This report plus findings (and failures) from another source, re-ordered by `order`."""
        merged = (*self.findings, *findings)
        if order is not None:
            merged = tuple(sorted(merged, key=order))
        return replace(self, findings=tuple(merged), failures=(*self.failures, *failures),
                       complete=self.complete and not failures)

    @property
    def exit_code(self) -> int:
        if any(f.severity is Severity.CRITICAL for f in self.findings):
            return 1
        if not self.complete:
            return 3
        return 0
