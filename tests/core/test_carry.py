"""The carried verdict (monitor.core.carry) equals the full one, check after check, over randomised
sequences of the changes a cluster sees: rules revoked and granted, a load balancer's groups
changed, a group's tags or completeness changed, a target moved, a network ACL entry added, a
prefix list edited, a read failing, a load balancer missing from the listing, the topology
re-discovered."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from monitor.core.carry import evaluate_carried
from monitor.core.evaluate import evaluate
from monitor.core.model import (
    LoadBalancer,
    NaclEntry,
    NetworkAcl,
    Observation,
    PeerKind,
    ReadFailure,
    Rule,
    SecurityGroup,
    Subnet,
    Target,
    TargetGroup,
    Topology,
)

CLUSTER = "prod"
ALB_SGS = [f"sg-alb{i}" for i in range(5)]
NODE_SGS = [f"sg-node{i}" for i in range(4)]
SUBNETS = [Subnet(f"subnet-{i}", f"10.0.{i}.0/24") for i in range(3)]
PREFIX_LIST = "pl-0123"
OUTSIDE_SG = "sg-outside"  # a rule source on no load balancer and no target


def _arn(i: int) -> str:
    return f"arn:aws:elasticloadbalancing:ap-northeast-1:123456789012:loadbalancer/app/lb{i}/{i:016x}"


def _tg_arn(i: int, j: int) -> str:
    return f"arn:aws:elasticloadbalancing:ap-northeast-1:123456789012:targetgroup/tg{i}-{j}/{i:08x}{j:08x}"


def _target(rng: random.Random, n: int) -> Target:
    subnet = rng.choice(SUBNETS)
    address = f"10.0.{subnet.cidr.split('.')[2]}.{10 + n % 240}"
    groups = tuple(rng.sample(NODE_SGS, rng.choice((1, 1, 2))))
    return Target(f"i-{n:04x}", rng.choice((30080, 30443, 8080)), f"eni-{n:04x}",
                  None if rng.random() < 0.05 else groups, rng.choice(("healthy", "healthy", "unhealthy", "draining")),
                  address=address, subnet_id=subnet.subnet_id, vpc_id="vpc-1")


def _world(rng: random.Random) -> Topology:
    lbs, tgs, n = [], [], 0
    for i in range(rng.randint(3, 6)):
        lbs.append(LoadBalancer(
            arn=_arn(i), name=f"lb{i}", lb_type="application", vpc_id="vpc-1",
            security_groups=tuple(rng.sample(ALB_SGS, rng.choice((1, 1, 2)))),
            subnet_cidrs=tuple(s.cidr for s in SUBNETS[:2]), subnets=tuple(SUBNETS[:2]),
            adoption=rng.choice(("v1", "adopted", "v2"))))
        for j in range(rng.choice((1, 1, 2))):
            targets = []
            for _ in range(rng.randint(1, 3)):
                n += 1
                targets.append(_target(rng, n))
            tgs.append(TargetGroup(arn=_tg_arn(i, j), name=f"tg{i}-{j}", target_type=rng.choice(("instance", "ip")),
                                   protocol="HTTP", port=80, vpc_id="vpc-1",
                                   health_check_port=rng.choice(("traffic-port", "8081")),
                                   load_balancer_arns=(_arn(i),), targets=tuple(targets),
                                   health_check_protocol="HTTP"))
    groups = tuple(SecurityGroup(g, g, "", "vpc-1", ((f"kubernetes.io/cluster/{CLUSTER}", "owned"),)
                                 if g == NODE_SGS[0] else ()) for g in (*ALB_SGS, *NODE_SGS))
    return Topology(CLUSTER, "ap-northeast-1", tuple(lbs), tuple(tgs), groups,
                    known_lb_arns=frozenset(lb.arn for lb in lbs))


def _rule(rng: random.Random, serial: int) -> Rule:
    kind = rng.random()
    low = rng.choice((0, 8080, 30000, 30080))
    high = rng.choice((low, 65535, 32767))
    if kind < 0.7:
        peer_kind, peer = PeerKind.SECURITY_GROUP, rng.choice(ALB_SGS)
    elif kind < 0.85:
        peer_kind, peer = PeerKind.CIDR, rng.choice(("10.0.0.0/16", "10.0.1.0/24", "192.168.0.0/16"))
    else:
        peer_kind, peer = PeerKind.PREFIX_LIST, PREFIX_LIST
    return Rule(rng.choice(NODE_SGS), rng.choice(("tcp", "tcp", "-1", "udp")), None if low == 0 and high == 65535 and
                rng.random() < 0.3 else low, None if low == 0 and high == 65535 and rng.random() < 0.3 else high,
                peer_kind, peer, rule_id=f"sgr-{serial:05d}",
                description=rng.choice(("", "elbv2.k8s.aws/targetGroupBinding=shared", "by hand")))


def _egress(group: str, serial: int, allow_all: bool = True, to_group: str | None = None) -> Rule:
    if to_group is not None:  # out to the targets' group, every port: what hardened ALB groups keep
        return Rule(group, "tcp", 0, 65535, PeerKind.SECURITY_GROUP, to_group, rule_id=f"sgr-out{serial:05d}",
                    egress=True)
    return Rule(group, "-1" if allow_all else "tcp", None if allow_all else 443, None if allow_all else 443,
                PeerKind.CIDR, "0.0.0.0/0", rule_id=f"sgr-out{serial:05d}", egress=True)


def _acl(extra: tuple[NaclEntry, ...] = ()) -> NetworkAcl:
    entries = (*extra, NaclEntry(100, False, "-1", True, "0.0.0.0/0"), NaclEntry(100, True, "-1", True, "0.0.0.0/0"))
    return NetworkAcl("acl-1", "vpc-1", True, tuple(s.subnet_id for s in SUBNETS), tuple(sorted(
        entries, key=lambda e: (e.egress, e.rule_number))))


class _State:
    """One cluster as the checks read it, changed a step at a time."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.topology = _world(rng)
        self.serial = 0
        self.rules = [self._new_rule() for _ in range(rng.randint(3, 10))]
        self.egress = [_egress(g, i) for i, g in enumerate(ALB_SGS)]
        self.lb_groups = {lb.arn: lb.security_groups for lb in self.topology.load_balancers}
        self.unread: set[str] = set()
        self.acl_extra: tuple[NaclEntry, ...] = ()
        self.prefix = ("10.0.0.0/16",)
        self.failures: tuple[ReadFailure, ...] = ()
        self.unlisted: set[str] = set()
        self.extra: tuple[SecurityGroup, ...] = ()  # rule sources looked up outside the topology

    def _new_rule(self) -> Rule:
        self.serial += 1
        return _rule(self.rng, self.serial)

    def observation(self) -> Observation:
        groups = set(ALB_SGS) | set(NODE_SGS)
        lbs = self.topology.load_balancers
        return Observation(
            rules=tuple(self.rules), egress_rules=tuple(self.egress),
            read_groups=frozenset(groups - self.unread),
            lb_security_groups=tuple((lb.arn, self.lb_groups.get(lb.arn, lb.security_groups)) for lb in lbs),
            live_lb_arns=frozenset(lb.arn for lb in lbs if lb.arn not in self.unlisted),
            prefix_lists=((PREFIX_LIST, self.prefix),),
            failures=self.failures, network_acls=(_acl(self.acl_extra),), network_acls_read=True,
            extra_groups=self.extra)

    def step(self) -> str:
        rng, self.failures = self.rng, ()
        change = rng.choice(("revoke", "grant", "revoke", "grant", "lb_groups", "egress", "unread", "tags", "target",
                             "acl", "prefix", "failure", "unlisted", "rediscover", "source", "nothing", "nothing"))
        if change == "revoke" and self.rules:
            self.rules.pop(rng.randrange(len(self.rules)))
        elif change == "grant":
            self.rules.insert(rng.randrange(len(self.rules) + 1), self._new_rule())
        elif change == "lb_groups":
            lb = rng.choice(self.topology.load_balancers)
            self.lb_groups[lb.arn] = tuple(rng.sample(ALB_SGS, rng.choice((1, 2))))
        elif change == "egress":
            i = rng.randrange(len(self.egress))
            self.serial += 1
            kind = rng.random()
            self.egress[i] = _egress(self.egress[i].group_id, self.serial, allow_all=kind < 0.3,
                                     to_group=rng.choice(NODE_SGS) if kind > 0.6 else None)
        elif change == "unread":
            self.unread = {rng.choice((*ALB_SGS, *NODE_SGS))} if rng.random() < 0.7 else set()
        elif change == "tags":
            group = rng.choice(NODE_SGS)
            tags = ((f"kubernetes.io/cluster/{CLUSTER}", "owned"),) if rng.random() < 0.5 else ()
            self.topology = replace(self.topology, security_groups=tuple(
                replace(g, tags=tags) if g.group_id == group else g for g in self.topology.security_groups))
        elif change == "target":
            tgs = list(self.topology.target_groups)
            i = rng.randrange(len(tgs))
            self.serial += 1
            tgs[i] = replace(tgs[i], targets=(*tgs[i].targets[1:], _target(rng, 1000 + self.serial)))
            self.topology = replace(self.topology, target_groups=tuple(tgs))
        elif change == "acl":
            self.acl_extra = () if self.acl_extra else (
                NaclEntry(90, rng.random() < 0.5, "6", False, "10.0.0.0/16", 30000, 30999),)
        elif change == "prefix":
            self.prefix = rng.choice((("10.0.0.0/16",), ("192.168.0.0/16",), ("10.0.1.0/24", "10.0.2.0/24")))
        elif change == "failure":
            self.failures = (ReadFailure("ec2", "DescribeSecurityGroupRules", "Throttling", "Rate exceeded"),)
        elif change == "unlisted":
            lb = rng.choice(self.topology.load_balancers)
            self.unlisted ^= {lb.arn}
        elif change == "source":
            # A labelled rule from a group outside the topology, looked up with the rules: its tags
            # (a controller's or none) decide whose the rule is.
            self.serial += 1
            self.rules.append(Rule(rng.choice(NODE_SGS), "tcp", 0, 65535, PeerKind.SECURITY_GROUP, OUTSIDE_SG,
                                   rule_id=f"sgr-{self.serial:05d}",
                                   description="elbv2.k8s.aws/targetGroupBinding=shared"))
            tags = rng.choice(((("elbv2.k8s.aws/cluster", CLUSTER), ("ingress.k8s.aws/stack", "ns/web")), ()))
            self.extra = (SecurityGroup(OUTSIDE_SG, OUTSIDE_SG, "", "vpc-1", tags),) if rng.random() < 0.8 else ()
        elif change == "rediscover":
            # A full discovery: equal values, every object new.
            self.topology = replace(self.topology, load_balancers=tuple(replace(lb) for lb in self.topology.load_balancers),
                                    target_groups=tuple(replace(tg) for tg in self.topology.target_groups))
        return change


@pytest.mark.parametrize("seed", range(100))
def test_the_carried_verdict_equals_the_full_one_after_every_change(seed):
    rng = random.Random(seed)
    state = _State(rng)
    carried = None
    history = []
    for _ in range(40):
        history.append(state.step())
        observation = state.observation()
        full = evaluate(state.topology, observation)
        # No periodic guard here: every check after the first is carried, so a missed dependency shows.
        outcome = evaluate_carried(state.topology, observation, carried, full_every=10**6)
        assert outcome.report == full, f"seed {seed}, after {history}"
        carried = outcome.carried


def test_a_steady_check_judges_nothing_again_and_a_revoke_judges_only_the_load_balancers_it_admitted():
    rng = random.Random(7)
    state = _State(rng)
    state.rules = [Rule(NODE_SGS[0], "tcp", 0, 65535, PeerKind.SECURITY_GROUP, g, rule_id=f"sgr-{g}") for g in ALB_SGS]
    first = evaluate_carried(state.topology, state.observation(), None)
    assert first.full and first.judged == len(state.topology.load_balancers)
    steady = evaluate_carried(state.topology, state.observation(), first.carried)
    assert (steady.full, steady.judged) == (False, 0)
    assert steady.report == first.report
    behind = {arn for tg in state.topology.target_groups for t in tg.targets
              if NODE_SGS[0] in (t.security_groups or ()) for arn in tg.load_balancer_arns}
    # One rule on one node group revoked, the one admitting ALB_SGS[0]: of the load balancers behind
    # that group, only those sending from ALB_SGS[0] can have lost anything.
    sending = {lb.arn for lb in state.topology.load_balancers if ALB_SGS[0] in state.lb_groups[lb.arn]}
    state.rules = state.rules[1:]
    after = evaluate_carried(state.topology, state.observation(), steady.carried)
    assert after.judged == len(behind & sending) < len(state.topology.load_balancers)
    assert after.report == evaluate(state.topology, state.observation())
    # A CIDR rule on that group may admit any of them: all behind it are judged again.
    state.rules = [*state.rules, Rule(NODE_SGS[0], "tcp", 8080, 8080, PeerKind.CIDR, "10.9.0.0/16", rule_id="sgr-cidr")]
    cidr = evaluate_carried(state.topology, state.observation(), after.carried)
    assert cidr.judged == len(behind) and cidr.report == evaluate(state.topology, state.observation())


def test_an_incomplete_read_is_judged_in_full_and_so_is_the_check_after_it():
    state = _State(random.Random(3))
    first = evaluate_carried(state.topology, state.observation(), None)
    state.failures = (ReadFailure("ec2", "DescribeSecurityGroupRules", "Throttling", "Rate exceeded"),)
    failed = evaluate_carried(state.topology, state.observation(), first.carried)
    assert failed.full and failed.judged == len(state.topology.load_balancers)
    assert failed.carried is None and not failed.report.complete
    state.failures = ()
    after = evaluate_carried(state.topology, state.observation(), failed.carried)
    assert after.full and after.judged == len(state.topology.load_balancers)


def test_every_so_many_checks_the_verdict_is_judged_in_full_as_a_guard():
    state = _State(random.Random(5))
    outcome = evaluate_carried(state.topology, state.observation(), None, full_every=3)
    fulls = []
    for _ in range(6):
        outcome = evaluate_carried(state.topology, state.observation(), outcome.carried, full_every=3)
        fulls.append(outcome.full)
    assert fulls == [False, False, True, False, False, True]
