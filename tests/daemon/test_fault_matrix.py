"""A finding is only raised on what was read: every AWS read the code makes (found by scanning
monitor/aws/, so a new call is covered without editing this file) fails in turn with each kind of
fault, for `check`, `preflight` and the daemon in observe and in enforce mode, and the verdict stays
honest: nothing the failed read decides is reported ok, unreachable or critical, nothing is written,
and the next cycle after the fault ends is complete and right again.

Each call that returns a list is also answered with a body the SDK cannot parse, and with a
well-formed answer listing nothing (AWS's answer when nothing matches). An empty answer that
contradicts what is known is a failed read too; where AWS really answers so and nothing read
contradicts it (CONSISTENT_EMPTY, each with its reason), the verdict still stays within the
baseline's, nothing is written and the next cycle is right.

The calls that only say who cut a path (the events queue's probe, receives and deletes; CloudTrail
lookups, served by a CloudTrail-shaped responder since moto has no LookupEvents) fail in turn too:
attribution goes off (ATTRIBUTION_OFF) or stays absent, and every verdict, finding and write is the
baseline's.

The rules-per-group quota (Service Quotas) fails in turn too: it decides no verdict, only the
words of the RULE_QUOTA_NEAR warning ("assumed 60"), so the report stays whole and the baseline's,
and enforce writes what the baseline writes.

One moto server and world serve the whole module. AWS_MAX_ATTEMPTS=1 keeps botocore from
retrying, so a fault costs one request instead of a backoff: the verdict, not the retry, is tested here.
(The queue's and CloudTrail's clients keep their own retries.)
"""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import boto3
import pytest

from monitor import aws
from monitor.core import controllers
from monitor.core.model import Report
from monitor.core.settings import Settings
from monitor.daemon.cycle import check_once, preflight_once
from monitor.daemon.trail_lookups import RETRY_AFTER
from monitor.demo import cluster as demo_cluster
from monitor.demo import world as demo_world
from monitor.demo.kubeapi import DemoKubeApi
from monitor.surface.main import assemble_daemon, kube_source, with_attribution
from tests.core.test_events import HUMAN, message, sg_permission
from tests.daemon.test_trail_lookups import Trail
from tests.support.aws_calls import read_operations, scan_code
from tests.support.awsproxy import DROP, EMPTY, ERROR, LISTINGS, MALFORMED, THROTTLE, UNAVAILABLE, AwsProxy
from tests.surface.test_preflight import kubeconfig

READS = read_operations()
IAM_READS = [op for op in READS if op[0] == "iam"]  # only preflight reads the v2 controller's role
# Calls that only attribute a revocation and decide no verdict: the events queue's (a probe of it in
# check and preflight, the daemon's receives and deletes) and CloudTrail lookups (daemon, no queue).
# A receive or delete is no write to what is watched: it consumes the monitor's own queue.
ATTRIBUTION_CALLS = sorted({(c.service, c.operation) for c in scan_code() if c.service in ("sqs", "cloudtrail")})
QUEUE_PROBE = [op for op in ATTRIBUTION_CALLS if op[0] == "sqs" and op in READS]
QUEUE_POLL = [op for op in ATTRIBUTION_CALLS if op[0] == "sqs" and op not in READS]
TRAIL_READS = [op for op in ATTRIBUTION_CALLS if op[0] == "cloudtrail"]
# The rules-per-group quota, read once per process: only the RULE_QUOTA_NEAR message depends on it.
QUOTA_READS = [op for op in READS if op[0] == "service-quotas"]
AWS_READS = [op for op in READS if op[0] != "iam" and op not in ATTRIBUTION_CALLS and op not in QUOTA_READS]
KINDS = ("throttling", "access_denied", "5xx", "connection_reset")
# Two more answers for the calls that return a list: a body the SDK cannot parse, and a well-formed
# answer listing nothing.
LISTING_KINDS = ("malformed", "empty")
INTERVAL, GRACE = 15.0, 60.0
T0 = 1_700_000_000.0
SHOP_RULE = ("tcp", 0, 65535)  # v1's node rule for the shop ALB, from its managed SG


def inject(proxy: AwsProxy, service: str, operation: str, kind: str) -> None:
    if kind == "throttling":
        proxy.fail([operation], kind=THROTTLE, service=service)
    elif kind == "access_denied":
        proxy.fail([operation], kind=ERROR, service=service, status=403, code={
            "ec2": "UnauthorizedOperation", "sqs": "AccessDenied", "cloudtrail": "AccessDeniedException",
            "service-quotas": "AccessDeniedException"}.get(
            service, "AccessDenied"))
    elif kind == "5xx":
        proxy.fail([operation], kind=UNAVAILABLE, service=service)
    elif kind == "malformed":
        proxy.fail([operation], kind=MALFORMED, service=service)
    elif kind == "empty":
        proxy.fail([operation], kind=EMPTY, service=service)
    else:
        proxy.fail([operation], kind=DROP, service=service)


def writes_sent(proxy: AwsProxy) -> dict[tuple[str, str], int]:
    return {k: n for k, n in proxy.requests.items()
            if n and k not in ATTRIBUTION_CALLS and not k[1].startswith(("Describe", "Get", "List", "Lookup"))}


def reachability(report: Report) -> dict[str, bool | None]:
    return {lb.name: lb.reachable for lb in report.load_balancers}


def criticals(report: Report) -> set[tuple]:
    return {(f.code, f.load_balancer, f.security_group) for f in report.findings if f.severity.value == "critical"}


def assert_within(report: Report, baseline: Report) -> None:
    """Every verdict is the baseline's or unknown; no critical finding the baseline does not have."""
    before = reachability(baseline)
    for name, reachable in reachability(report).items():
        assert reachable in (before.get(name), None), f"{name}: {reachable}, but {before.get(name)} when all was read"
    assert criticals(report) <= criticals(baseline), criticals(report) - criticals(baseline)


def assert_honest(report: Report, baseline: Report) -> None:
    """Within the baseline, and the report says it is not whole."""
    assert_within(report, baseline)
    assert not report.complete


@dataclass
class Matrix:
    world: demo_world.World
    proxy: AwsProxy
    clients: Any
    kube: Any
    template: str  # a state file: the shop rule remembered covering, then lost (at T0 + INTERVAL)
    tmp: Any
    check: Report | None = None
    preflight: Report | None = None
    daemon: Report | None = None
    exercised: dict[str, set[tuple[str, str]]] | None = None
    trail: Any = None  # the CloudTrail responder, and the proxy in front of it
    trail_proxy: AwsProxy | None = None

    def shop_rule(self, present: bool) -> None:
        """Put v1's shop rule back, or take it (or the monitor's copy of it) away, directly in moto."""
        ec2 = self.world.clients()["ec2"]
        node, source = self.world.sg["cluster"], self.world.sg["shop_alb"]
        rules = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [node]}])["SecurityGroupRules"]
        ids = [r["SecurityGroupRuleId"] for r in rules if not r["IsEgress"]
               and (r["IpProtocol"], r["FromPort"], r["ToPort"]) == SHOP_RULE
               and r.get("ReferencedGroupInfo", {}).get("GroupId") == source]
        if present and not ids:
            ec2.authorize_security_group_ingress(GroupId=node, IpPermissions=[{
                "IpProtocol": "tcp", "FromPort": 0, "ToPort": 65535, "UserIdGroupPairs": [{"GroupId": source}]}])
        elif not present and ids:
            ec2.revoke_security_group_ingress(GroupId=node, SecurityGroupRuleIds=ids)


def build_world(endpoint: str) -> demo_world.World:
    """The demo's mid-migration cluster, plus the reads it lacks: blog reached only through a CIDR rule
    (DescribeSubnets decides it), marketing only through a prefix list (GetManagedPrefixListEntries),
    an internal NLB without security groups whose targets see its clients' addresses, admitted
    from the VPC (DescribeTargetGroupAttributes and DescribeVpcs decide it), and the v2 role with an
    attached managed policy as well as inline ones (IAM list and get reads)."""
    world = demo_world.seed(endpoint, cluster=f"faults-{uuid.uuid4().hex[:6]}-eks")
    c = world.clients()
    ec2, iam = c["ec2"], c["iam"]
    _internal_nlb(world, c["elbv2"], ec2)
    demo_world.revoke(world, "blog_v1")
    ec2.authorize_security_group_ingress(GroupId=world.sg["legacy_extra"], IpPermissions=[{
        "IpProtocol": "tcp", "FromPort": 31000, "ToPort": 31000, "IpRanges": [{"CidrIp": "10.20.0.0/23"}]}])
    demo_world.revoke(world, "marketing_user")
    prefix_list = ec2.create_managed_prefix_list(
        PrefixListName=f"{world.cluster}-alb-subnets", MaxEntries=5, AddressFamily="IPv4",
        Entries=[{"Cidr": "10.20.0.0/24"}, {"Cidr": "10.20.1.0/24"}])["PrefixList"]["PrefixListId"]
    ec2.authorize_security_group_ingress(GroupId=world.sg["cluster"], IpPermissions=[{
        "IpProtocol": "tcp", "FromPort": 30900, "ToPort": 30900, "PrefixListIds": [{"PrefixListId": prefix_list}]}])
    role = demo_cluster.create_controller_role(world, migration_policy=True)
    policy = iam.create_policy(PolicyName=f"{world.cluster}-extra-reads", PolicyDocument=(
        '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ec2:DescribeVpcs", '
        '"Resource": "*"}]}'))["Policy"]["Arn"]
    iam.attach_role_policy(RoleName=role.rsplit("/", 1)[1], PolicyArn=policy)
    return world


def _internal_nlb(world: demo_world.World, elbv2: Any, ec2: Any) -> None:
    lb = elbv2.create_load_balancer(
        Name=f"k8s-game-tcp-{world.cluster[7:13]}", Type="network", Scheme="internal",
        Subnets=[world.subnets["private-a"], world.subnets["private-c"]],
        Tags=[{"Key": controllers.V2_CLUSTER_TAG, "Value": world.cluster},
              {"Key": controllers.SERVICE_STACK_TAG, "Value": "game/tcp"}])["LoadBalancers"][0]
    tg = elbv2.create_target_group(Name=f"k8s-game-tcp-{world.cluster[7:13]}", Protocol="TCP", Port=31500,
                                   VpcId=world.vpc_id, TargetType="instance")["TargetGroups"][0]["TargetGroupArn"]
    elbv2.register_targets(TargetGroupArn=tg, Targets=[{"Id": world.instances["general"][0], "Port": 31500}])
    elbv2.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="TCP", Port=80,
                          DefaultActions=[{"Type": "forward", "TargetGroupArn": tg}])
    ec2.authorize_security_group_ingress(GroupId=world.sg["cluster"], IpPermissions=[{
        "IpProtocol": "tcp", "FromPort": 31500, "ToPort": 31500, "IpRanges": [{"CidrIp": "10.20.0.0/16"}]}])


def settings(world: demo_world.World, mode: str, state_file: str, events_queue: str | None = None) -> Settings:
    return Settings(cluster_name=world.cluster, mode=mode, interval=INTERVAL, grace=GRACE, listen="127.0.0.1:0",
                    kubernetes="off", state_file=state_file, events_queue=events_queue)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def moto_of_its_own():
    """Its own moto server: filtered describes scan every group moto holds, and the session's server
    fills up with other tests' worlds."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        server, endpoint = demo_world.start_moto()
        try:
            yield endpoint
        finally:
            server.stop()


@pytest.fixture(scope="module")
def matrix(moto_of_its_own, tmp_path_factory):
    moto_endpoint = moto_of_its_own
    tmp = tmp_path_factory.mktemp("faults")
    trail = Trail()  # moto does not serve LookupEvents: a CloudTrail-shaped responder, behind a proxy too
    with pytest.MonkeyPatch.context() as env, AwsProxy(moto_endpoint) as proxy, AwsProxy(trail.url) as trail_proxy:
        for key in ("AWS_PROFILE", "KUBERNETES_SERVICE_HOST"):
            env.delenv(key, raising=False)
        env.setenv("AWS_REGION", "ap-northeast-1")
        env.setenv("AWS_MAX_ATTEMPTS", "1")
        env.setenv("AWS_ENDPOINT_URL", proxy.url)
        env.setenv("AWS_ENDPOINT_URL_CLOUDTRAIL", trail_proxy.url)
        world = build_world(moto_endpoint)
        with DemoKubeApi(demo_cluster.objects(world)) as api:
            env.setenv("KUBECONFIG", kubeconfig(tmp / "kubeconfig", api.url))
            clients = aws.connect(None)
            m = Matrix(world, proxy, clients, kube_source("on"), str(tmp / "template.json"), tmp)
            m.trail, m.trail_proxy = trail, trail_proxy
            m.exercised = {}
            m.shop_rule(True)
            proxy.reset_counts()
            m.check = check_once(clients, world.cluster)
            m.exercised["check"] = set(proxy.requests)
            proxy.reset_counts()
            m.preflight = preflight_once(clients, world.cluster, m.kube)
            m.exercised["preflight"] = set(proxy.requests)
            _remember_a_lost_rule(m)
            proxy.reset_counts()
            m.daemon = _daemon_cycle(m, "observe", lambda: None)[0]
            assert m.daemon.complete
            m.exercised["daemon"] = set(proxy.requests)
            try:
                yield m
            finally:
                trail.server.shutdown()


def _remember_a_lost_rule(m: Matrix) -> None:
    """The state an enforce daemon has one interval after the shop rule went: a restore is pending."""
    clock = Clock(T0)
    parts = assemble_daemon(settings(m.world, "enforce", m.template), m.clients, kube=None, wall=clock, monotonic=clock)
    try:
        assert parts.daemon.run_once().complete
        m.shop_rule(False)
        clock.now += INTERVAL
        summary = parts.daemon.run_once()
        assert summary.complete and not [o for o in summary.remediations if o.result is not None]
    finally:
        _close(m, parts)


def _close(m: Matrix, parts) -> None:
    parts.server.stop()
    if parts.metrics in m.clients.counter.listeners:
        m.clients.counter.listeners.remove(parts.metrics)


def _daemon_cycle(m: Matrix, mode: str, fault) -> tuple[Report, Any, Any, dict]:
    """A daemon started from the template past the grace (a write is due), one cycle under `fault`,
    then one cycle after it ends: (first report, first summary, second summary, writes sent during
    the first)."""
    m.shop_rule(False)
    state = m.tmp / f"state-{uuid.uuid4().hex[:8]}.json"
    shutil.copy(m.template, state)
    clock = Clock(T0 + INTERVAL + GRACE + 2 * INTERVAL)
    parts = assemble_daemon(settings(m.world, mode, str(state)), m.clients, kube=None, wall=clock, monotonic=clock)
    try:
        fault()
        first = parts.daemon.run_once()
        written = writes_sent(m.proxy)
        m.proxy.heal()
        clock.now += INTERVAL
        second = parts.daemon.run_once()
    finally:
        m.proxy.heal()
        _close(m, parts)
    assert first.ok and second.ok, (first.error, second.error)
    return first.report, first, second, written


# --- the baselines: all read, all right ----------------------------------------------------------

def test_with_every_read_answered_the_world_is_what_it_seems(matrix):
    assert matrix.check.complete and matrix.check.exit_code == 0
    assert set(reachability(matrix.check).values()) == {True}
    assert matrix.preflight.complete and matrix.preflight.exit_code == 0
    assert not [f for f in matrix.preflight.findings if f.code.startswith("MIGRATION_POLICY")]
    daemon = reachability(matrix.daemon)
    assert daemon.pop(matrix.world.lb_name["shop"]) is False and set(daemon.values()) == {True}


def test_every_read_the_code_does_is_exercised_by_the_matrix_world(matrix):
    """A read the world never makes would pass every case below without being tested: fail instead."""
    assert READS, "the scanner found no AWS reads in monitor/aws/"
    missing = {op for op in AWS_READS if op not in matrix.exercised["check"]}
    assert not missing, f"check never sends {sorted(missing)}: extend build_world so it does"
    missing = {op for op in AWS_READS if op not in matrix.exercised["daemon"]}
    assert not missing, f"the daemon never sends {sorted(missing)}: extend build_world so it does"
    missing = {op for op in IAM_READS if op not in matrix.exercised["preflight"]}
    assert not missing, f"preflight never sends {sorted(missing)}: extend build_world so it does"


def test_the_quota_is_read_by_check_and_the_daemon(matrix):
    """The applied quota is asked for; AWS's default (the other quota read) only when that fails,
    as test_quota_read makes it."""
    assert ("service-quotas", "GetServiceQuota") in QUOTA_READS and len(QUOTA_READS) == 2, QUOTA_READS
    for where in ("check", "daemon"):
        assert ("service-quotas", "GetServiceQuota") in matrix.exercised[where], where


def test_every_attribution_call_is_exercised_by_the_matrix_world(matrix, attribution):
    """The events queue's calls and CloudTrail's lookups, found by the same scanner, are sent too."""
    assert QUEUE_PROBE and QUEUE_POLL and TRAIL_READS, f"the scanner found {ATTRIBUTION_CALLS}"
    for where, expected in (("check", QUEUE_PROBE), ("preflight", QUEUE_PROBE), ("queue daemon", QUEUE_POLL),
                            ("lookups", TRAIL_READS)):
        missing = {op for op in expected if op not in matrix.exercised[where]}
        assert not missing, f"{where} never sends {sorted(missing)}: extend the attribution cases so it does"


# --- one read failing at a time -----------------------------------------------------------------

def _ids(value) -> str:
    return "-".join(value) if isinstance(value, tuple) else str(value)


# Empty answers AWS gives for real, which nothing `check` reads in the same run contradicts: it takes
# them as they are, so its report may be whole; the verdict still never goes beyond the baseline's.
# (The daemon remembers the paths behind them and believes such an answer only when the next read
# agrees: see test_daemon.)
CONSISTENT_EMPTY = {
    ("elbv2", "DescribeTargetGroups"): (
        "an ALB whose rules only redirect or answer fixed responses has no target group, and no other read "
        "of a cycle says which target groups an ALB has: check reports each ALB with no path to judge"),
    ("elbv2", "DescribeTargetHealth"): (
        "a target group with no registered target (its Service scaled to zero) is answered exactly so, and "
        "no other read says a target is registered: check reports the ALB with no path to judge"),
    ("iam", "ListAttachedRolePolicies"): (
        "a role holding inline policies only is answered so, and this role's inline policies allow every "
        "migration action: the verdict is the same whatever the attached list holds"),
}

def consistent(operation: tuple[str, str], kind: str) -> bool:
    return kind == "empty" and operation in CONSISTENT_EMPTY


def cases(operations: list[tuple[str, str]]) -> list:
    """Each operation with each kind of fault, and a listing with the two kinds of answer too."""
    return [pytest.param(op, kind, id=f"{_ids(op)}-{kind}")
            for op in operations for kind in KINDS + (LISTING_KINDS if op[1] in LISTINGS else ())]


@pytest.mark.parametrize("operation,kind", cases(AWS_READS))
def test_check(matrix, operation, kind):
    m, (service, name) = matrix, operation
    m.shop_rule(True)
    m.proxy.reset_counts()
    inject(m.proxy, service, name, kind)
    try:
        report = check_once(m.clients, m.world.cluster)
    finally:
        m.proxy.heal()
    assert m.proxy.injected[operation], f"{name} was never sent"
    if consistent(operation, kind):
        assert_within(report, m.check)
        assert report.exit_code == m.check.exit_code and not criticals(report)
    else:
        assert_honest(report, m.check)
        assert report.exit_code == 3 and not criticals(report)
    assert not writes_sent(m.proxy)
    again = check_once(m.clients, m.world.cluster)
    assert again.complete and again.exit_code == 0 and reachability(again) == reachability(m.check)


@pytest.mark.parametrize("operation,kind", cases(IAM_READS))
def test_preflight(matrix, operation, kind):
    m, (service, name) = matrix, operation
    m.shop_rule(True)
    m.proxy.reset_counts()
    inject(m.proxy, service, name, kind)
    try:
        report = preflight_once(m.clients, m.world.cluster, m.kube)
    finally:
        m.proxy.heal()
    assert m.proxy.injected[operation], f"{name} was never sent"
    if consistent(operation, kind):
        assert_within(report, m.preflight)
        assert report.exit_code == m.preflight.exit_code and codes(report) == codes(m.preflight)
    else:
        assert_honest(report, m.preflight)
        assert report.exit_code == 3 and not criticals(report)
        unverified = [f for f in report.findings if f.code == "MIGRATION_POLICY_UNVERIFIED"]
        assert unverified and name in unverified[0].message
    assert not writes_sent(m.proxy)
    again = preflight_once(m.clients, m.world.cluster, m.kube)
    assert again.complete and again.exit_code == 0


@pytest.mark.parametrize("mode", ("observe", "enforce"))
@pytest.mark.parametrize("operation,kind", cases(AWS_READS))
def test_daemon(matrix, operation, kind, mode):
    m, (service, name) = matrix, operation
    m.proxy.reset_counts()
    report, first, second, written_under_fault = _daemon_cycle(m, mode, lambda: inject(m.proxy, service, name, kind))
    assert m.proxy.injected[operation], f"{name} was never sent"
    # The daemon has what check lacks: its remembered paths contradict an empty target listing, which
    # it believes only when the next read agrees (monitor.core.vanished). So every kind leaves it unknown.
    assert_honest(report, m.daemon)
    assert not written_under_fault and not [o for o in first.remediations if o.result is not None]
    # Recovery within one cycle: whole and right again, and (enforce) the pending restore done.
    assert second.complete and reachability(second.report) == reachability(m.daemon)
    written = writes_sent(m.proxy)
    if mode == "observe":
        assert not written
    else:
        assert written == {("ec2", "AuthorizeSecurityGroupIngress"): 1}
        (restored,) = [o for o in second.remediations if o.result is not None]
        assert restored.result.outcome == "restored" and not controllers.has_shared_label(restored.decision.description)


# --- the rules-per-group quota -------------------------------------------------------------------

def quota_fault(m: Matrix, service: str, name: str, kind: str) -> None:
    """`kind` on this quota read; AWS's default is asked for only when the applied quota is not
    answered, so for that read the applied one is answered as for a quota with no applied value."""
    if name != "GetServiceQuota":
        m.proxy.fail(["GetServiceQuota"], kind=ERROR, service=service, code="NoSuchResourceException")
    inject(m.proxy, service, name, kind)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("operation", QUOTA_READS, ids=_ids)
def test_quota_read_check(matrix, operation, kind):
    m, (service, name) = matrix, operation
    m.shop_rule(True)
    # Other cases of this module change rule descriptions: the findings are compared with a read of now.
    base = check_once(m.clients, m.world.cluster)
    m.proxy.reset_counts()
    quota_fault(m, service, name, kind)
    try:
        report = check_once(m.clients, m.world.cluster)
    finally:
        m.proxy.heal()
    assert m.proxy.injected[operation], f"{name} was never sent"
    assert report.complete and report.exit_code == base.exit_code == m.check.exit_code
    assert verdict(report) == verdict(base) and reachability(report) == reachability(m.check)
    assert not writes_sent(m.proxy)


@pytest.mark.parametrize("mode", ("observe", "enforce"))
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("operation", QUOTA_READS, ids=_ids)
def test_quota_read_daemon(matrix, operation, kind, mode):
    m, (service, name) = matrix, operation
    base = _daemon_cycle(m, mode, lambda: None)[0]  # a read of now, as in test_quota_read_check
    m.proxy.reset_counts()
    report, first, second, written = _daemon_cycle(m, mode, lambda: quota_fault(m, service, name, kind))
    assert m.proxy.injected[operation], f"{name} was never sent"
    assert first.complete and verdict(report) == verdict(base) and reachability(report) == reachability(m.daemon)
    # The restore the state owes is made at once, as with the quota read: a failed quota read holds nothing back.
    assert written == ({} if mode == "observe" else {("ec2", "AuthorizeSecurityGroupIngress"): 1})
    assert second.complete
    if mode == "enforce":
        (restored,) = [o for o in first.remediations if o.result is not None]
        assert restored.result.outcome == "restored"


# --- the calls that only attribute a revocation ---------------------------------------------------
# The events queue and CloudTrail say who cut a path; no verdict, finding or write depends on them.
# A queue that cannot be read says so (ATTRIBUTION_OFF, a warning) and nothing else changes: the
# restore enforce owes is made all the same, as the baseline makes it.

def codes(report: Report) -> set[str]:
    return {f.code for f in report.findings}


def verdict(report: Report) -> tuple[dict, set, set]:
    """What a user reads: reachability per ALB, and the findings other than the attribution warning."""
    return (reachability(report), criticals(report),
            {(f.code, f.severity.value, f.load_balancer, f.security_group) for f in report.findings
             if f.code != "ATTRIBUTION_OFF"})


def new_queue(m: Matrix, event: dict | None = None) -> str:
    """A fresh queue (visibility 0: a message whose delete failed comes back at the next receive),
    holding the CloudTrail event of the shop rule's revocation, as EventBridge delivers it."""
    url = sqs_of(m).create_queue(QueueName=f"matrix-{uuid.uuid4().hex[:8]}",
                                 Attributes={"VisibilityTimeout": "0"})["QueueUrl"]
    redeliver(m, url, event or revoke_event(m))
    return url


def sqs_of(m: Matrix) -> Any:
    return boto3.client("sqs", region_name=m.world.region, endpoint_url=m.world.endpoint,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def redeliver(m: Matrix, url: str, event: dict) -> None:
    """Put the event on the queue (again: EventBridge delivers at least once). A receive then
    answers at once instead of waiting out its long poll on an empty queue."""
    sqs_of(m).send_message(QueueUrl=url, MessageBody=json.dumps(event))


def revoke_event(m: Matrix) -> dict:
    """The shop rule's revocation as EventBridge delivers it, from the world's own account (the
    monitor believes no event of another account)."""
    when = datetime.fromtimestamp(T0 + INTERVAL, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    event = message("RevokeSecurityGroupIngress", {
        "groupId": m.world.sg["cluster"],
        "ipPermissions": {"items": [sg_permission(*SHOP_RULE, m.world.sg["shop_alb"])]}},
        {"_return": True}, identity=HUMAN, time=when, event_id=str(uuid.uuid4()))
    event["account"] = m.world.lb["shop"].split(":")[4]
    return event


@dataclass
class QueueRun:
    reports: tuple[Report, Report, Report]  # the cycle under the fault, the next one, the one after it ends
    written: dict  # writes sent while the fault lasted
    remediations: tuple  # what enforce did, all three cycles


def _queue_daemon_run(m: Matrix, mode: str, fault) -> QueueRun:
    """A daemon with an events queue, past the grace (enforce owes a restore): a cycle, a poll of the
    queue and a cycle under `fault`, then a poll and a cycle after it ends."""
    m.shop_rule(False)
    state = m.tmp / f"state-{uuid.uuid4().hex[:8]}.json"
    shutil.copy(m.template, state)
    clock = Clock(T0 + INTERVAL + GRACE + 2 * INTERVAL)
    event = revoke_event(m)
    queue = new_queue(m, event)
    parts = assemble_daemon(settings(m.world, mode, str(state), queue), m.clients, kube=None, wall=clock,
                            monotonic=clock)
    summaries = []
    try:
        assert parts.daemon.feed is not None and parts.daemon.lookups is None
        m.proxy.reset_counts()
        fault()
        summaries.append(parts.daemon.run_once())
        parts.daemon.feed.poll_once()
        clock.now += INTERVAL
        summaries.append(parts.daemon.run_once())
        written = writes_sent(m.proxy)
        m.proxy.heal()
        redeliver(m, queue, event)
        parts.daemon.feed.poll_once()
        clock.now += INTERVAL
        summaries.append(parts.daemon.run_once())
    finally:
        m.proxy.heal()
        _close(m, parts)
    assert all(s.ok for s in summaries), [s.error for s in summaries]
    return QueueRun(tuple(s.report for s in summaries), written,
                    tuple(o for s in summaries for o in s.remediations if o.result is not None))


@dataclass
class Attribution:
    check: Report  # check and preflight with --events-queue, all read
    preflight: Report
    queue_daemon: dict[str, QueueRun]  # mode -> the run with nothing failing
    lookups: Report  # a daemon without a queue, once its first lookup is answered


@pytest.fixture(scope="module")
def attribution(matrix):
    m = matrix
    m.shop_rule(True)
    queue = new_queue(m)
    m.proxy.reset_counts()
    check, _ = with_attribution(check_once(m.clients, m.world.cluster), settings(m.world, "observe", "", queue),
                                m.clients)
    m.exercised["check"] |= set(m.proxy.requests)
    m.proxy.reset_counts()
    preflight, _ = with_attribution(preflight_once(m.clients, m.world.cluster, m.kube),
                                    settings(m.world, "observe", "", queue), m.clients)
    m.exercised["preflight"] |= set(m.proxy.requests)
    runs = {}
    m.exercised["queue daemon"] = set()
    for mode in ("observe", "enforce"):
        runs[mode] = _queue_daemon_run(m, mode, lambda: None)
        m.exercised["queue daemon"] |= set(m.proxy.requests)
    m.trail_proxy.reset_counts()
    lookups = _lookups_run(m, lambda: None)
    m.exercised["lookups"] = set(m.trail_proxy.requests)
    return Attribution(check, preflight, runs, lookups)


def test_with_the_queue_read_the_daemon_names_who_cut_the_path(matrix, attribution):
    assert not {"ATTRIBUTION_OFF"} & (codes(attribution.check) | codes(attribution.preflight))
    assert attribution.check.exit_code == 0 and attribution.preflight.exit_code == 0
    for mode, run in attribution.queue_daemon.items():
        assert all(r.complete and "ATTRIBUTION_OFF" not in codes(r) for r in run.reports)
        # The first cycle runs before the first receive; once the queue is read, the caller is named
        # (observe: enforce has restored the rule by then).
        assert shop_revoked(matrix, run.reports[0]).attribution is None
        if mode == "observe":
            assert shop_revoked(matrix, run.reports[1]).attribution.principal == HUMAN["arn"]
        restored = [o.result.outcome for o in run.remediations]
        assert restored == ([] if mode == "observe" else ["restored"]), restored
        assert run.written == ({} if mode == "observe" else {("ec2", "AuthorizeSecurityGroupIngress"): 1})


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("command", ("check", "preflight"))
@pytest.mark.parametrize("operation", QUEUE_PROBE, ids=_ids)
def test_queue_probe(matrix, attribution, operation, command, kind):
    m, (service, name) = matrix, operation
    m.shop_rule(True)
    queue = new_queue(m)
    m.proxy.reset_counts()
    inject(m.proxy, service, name, kind)
    try:
        base = check_once(m.clients, m.world.cluster) if command == "check" else preflight_once(
            m.clients, m.world.cluster, m.kube)
        report, line = with_attribution(base, settings(m.world, "observe", "", queue), m.clients)
    finally:
        m.proxy.heal()
    baseline = getattr(attribution, command)
    assert m.proxy.injected[operation], f"{name} was never sent"
    # The same reads as with the queue read: only the warning is added (other cases of this module
    # change the shop rule's description, so the findings are compared with this very read's).
    assert verdict(report) == verdict(base) and report.exit_code == base.exit_code == baseline.exit_code
    assert reachability(report) == reachability(baseline) and criticals(report) == criticals(baseline)
    (off,) = [f for f in report.findings if f.code == "ATTRIBUTION_OFF"]
    assert off.severity.value == "warning" and line["state"] == "off" and line["detail"].startswith("OFF")
    assert not writes_sent(m.proxy)
    again, line = with_attribution(base, settings(m.world, "observe", "", queue), m.clients)
    assert "ATTRIBUTION_OFF" not in codes(again) and line["state"] == "on"


@pytest.mark.parametrize("mode", ("observe", "enforce"))
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("operation", QUEUE_POLL, ids=_ids)
def test_queue_daemon(matrix, attribution, operation, kind, mode):
    m, (service, name) = matrix, operation
    run = _queue_daemon_run(m, mode, lambda: inject(m.proxy, service, name, kind))
    baseline = attribution.queue_daemon[mode]
    assert m.proxy.injected[operation], f"{name} was never sent"
    for report, expected in zip(run.reports, baseline.reports):
        assert verdict(report) == verdict(expected) and report.complete
    # The queue unread is said while it lasts (a failed delete is not: the queue was read), and
    # gone at the first cycle after the fault ends.
    assert ("ATTRIBUTION_OFF" in codes(run.reports[1])) == (name == "ReceiveMessage")
    assert "ATTRIBUTION_OFF" not in codes(run.reports[2])
    for report in run.reports:
        revoked = [f for f in report.findings if f.code == "ACCESS_REVOKED" and f.attribution is not None]
        assert all(f.attribution.principal == HUMAN["arn"] for f in revoked)  # absent or right, never wrong
    # Writes: exactly the baseline's (enforce restores the lost rule once, whatever the queue does).
    assert run.written == baseline.written
    assert [o.result.outcome for o in run.remediations] == [o.result.outcome for o in baseline.remediations]


def _lookups_run(m: Matrix, fault) -> Report:
    """A daemon without a queue (observe): the cycle that finds the shop rule revoked asks CloudTrail
    about its group; that lookup is made under `fault`, the next cycle runs; the fault ends and the
    lookup is tried again on its schedule (when it failed); the last cycle's report is returned."""
    m.shop_rule(False)
    node = m.world.sg["cluster"]
    m.trail.records[node] = [revoke_event(m)["detail"]]
    start = T0 + INTERVAL + GRACE + 2 * INTERVAL
    clock = Clock(start)
    # It remembers the rule it saw covering the path before the revoke: an event names who cut only a
    # rule the monitor's own reads saw go.
    state = m.tmp / f"state-{uuid.uuid4().hex[:8]}.json"
    shutil.copy(m.template, state)
    parts = assemble_daemon(settings(m.world, "observe", str(state)), m.clients, kube=None, wall=clock, monotonic=clock)
    lookups = parts.daemon.lookups
    try:
        assert lookups is not None and parts.daemon.feed is None
        first = parts.daemon.run_once()
        assert first.ok and node in lookups.pending()
        m.proxy.reset_counts()
        m.trail_proxy.reset_counts()
        fault()
        assert lookups.run_due()  # made, failed or not; a failure is logged, never raised
        failed = bool(m.trail_proxy.injected)
        sent = sum(m.trail_proxy.requests.values())  # the client's own retries included
        clock.now += INTERVAL
        second = parts.daemon.run_once()
        m.trail_proxy.heal()
        assert second.ok and not writes_sent(m.proxy) and not writes_sent(m.trail_proxy)
        assert verdict(second.report) == verdict(first.report) and second.report.complete
        if not failed:
            return second.report
        assert lookups.recent() == () and lookups.pending()[node] == 1
        assert not [f for f in second.report.findings if f.attribution is not None]  # absent, never wrong
        # Tried again at the next step of its schedule, not before.
        clock.now = start + RETRY_AFTER[1] - 1
        assert not lookups.run_due()
        clock.now = start + RETRY_AFTER[1]
        assert lookups.run_due() and sum(m.trail_proxy.requests.values()) == sent + 1
        third = parts.daemon.run_once()
        assert third.ok and verdict(third.report) == verdict(first.report)
        return third.report
    finally:
        m.trail_proxy.heal()
        _close(m, parts)


def shop_revoked(m: Matrix, report: Report):
    (revoked,) = [f for f in report.findings if f.code == "ACCESS_REVOKED" and f.security_group == m.world.sg["cluster"]
                  and f.load_balancer == m.world.lb_name["shop"]]
    return revoked


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("operation", TRAIL_READS, ids=_ids)
def test_trail_lookup(matrix, attribution, operation, kind):
    """No queue: a failed CloudTrail lookup changes nothing a user reads, writes nothing, raises
    nothing, and is tried again on its schedule, which then names the caller as the baseline does."""
    m, (service, name) = matrix, operation
    report = _lookups_run(m, lambda: inject(m.trail_proxy, service, name, kind))
    assert m.trail_proxy.injected[operation]
    assert verdict(report) == verdict(attribution.lookups)
    named, expected = shop_revoked(m, report).attribution, shop_revoked(m, attribution.lookups).attribution
    assert (named.principal, named.actor_kind, named.event_name) == (
        expected.principal, expected.actor_kind, expected.event_name) == (HUMAN["arn"], "other",
                                                                          "RevokeSecurityGroupIngress")
