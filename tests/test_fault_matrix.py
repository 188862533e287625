"""A finding is only raised on what was read: every AWS read the code makes (found by scanning
monitor/aws/, so a new call is covered without editing this file) fails in turn with each kind of
fault, for `check`, `preflight` and the daemon in observe and in enforce mode, and the verdict stays
honest: nothing the failed read decides is reported ok, unreachable or critical, nothing is written,
and the next cycle after the fault ends is complete and right again.

One moto server and world serve the whole module. AWS_MAX_ATTEMPTS=1 keeps botocore from
retrying, so a fault costs one request instead of a backoff: the verdict, not the retry, is tested here.
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from monitor import aws, controllers
from monitor.cycle import check_once, preflight_once
from monitor.demo import cluster as demo_cluster
from monitor.demo import world as demo_world
from monitor.demo.kubeapi import DemoKubeApi
from monitor.main import assemble_daemon, kube_source
from monitor.model import Report
from monitor.settings import Settings
from tests.support.aws_calls import read_operations
from tests.support.awsproxy import DROP, ERROR, THROTTLE, UNAVAILABLE, AwsProxy
from tests.test_preflight import kubeconfig

READS = read_operations()
IAM_READS = [op for op in READS if op[0] == "iam"]  # only preflight reads the v2 controller's role
# Reads that only attribute a revocation (the events queue, CloudTrail lookups) and decide no verdict.
ATTRIBUTION_READS = [op for op in READS if op[0] in ("sqs", "cloudtrail")]
AWS_READS = [op for op in READS if op[0] != "iam" and op not in ATTRIBUTION_READS]
KINDS = ("throttling", "access_denied", "5xx", "connection_reset")
INTERVAL, GRACE = 15.0, 60.0
T0 = 1_700_000_000.0
SHOP_RULE = ("tcp", 0, 65535)  # v1's node rule for the shop ALB, from its managed SG


def inject(proxy: AwsProxy, service: str, operation: str, kind: str) -> None:
    if kind == "throttling":
        proxy.fail([operation], kind=THROTTLE, service=service)
    elif kind == "access_denied":
        proxy.fail([operation], kind=ERROR, service=service, status=403,
                   code="UnauthorizedOperation" if service == "ec2" else "AccessDenied")
    elif kind == "5xx":
        proxy.fail([operation], kind=UNAVAILABLE, service=service)
    else:
        proxy.fail([operation], kind=DROP, service=service)


def writes_sent(proxy: AwsProxy) -> dict[tuple[str, str], int]:
    return {k: n for k, n in proxy.requests.items() if n and not k[1].startswith(("Describe", "Get", "List"))}


def reachability(report: Report) -> dict[str, bool | None]:
    return {lb.name: lb.reachable for lb in report.load_balancers}


def criticals(report: Report) -> set[tuple]:
    return {(f.code, f.load_balancer, f.security_group) for f in report.findings if f.severity.value == "critical"}


def assert_honest(report: Report, baseline: Report) -> None:
    """Every verdict is the baseline's or unknown; no critical finding the baseline does not have."""
    before = reachability(baseline)
    for name, reachable in reachability(report).items():
        assert reachable in (before.get(name), None), f"{name}: {reachable}, but {before.get(name)} when all was read"
    assert criticals(report) <= criticals(baseline), criticals(report) - criticals(baseline)
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
    and the v2 role with an attached managed policy as well as inline ones (IAM list and get reads)."""
    world = demo_world.seed(endpoint, cluster=f"faults-{uuid.uuid4().hex[:6]}-eks")
    c = world.clients()
    ec2, iam = c["ec2"], c["iam"]
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


def settings(world: demo_world.World, mode: str, state_file: str) -> Settings:
    return Settings(cluster_name=world.cluster, mode=mode, interval=INTERVAL, grace=GRACE, listen="127.0.0.1:0",
                    kubernetes="off", state_file=state_file)


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
    with pytest.MonkeyPatch.context() as env, AwsProxy(moto_endpoint) as proxy:
        for key in ("AWS_PROFILE", "KUBERNETES_SERVICE_HOST"):
            env.delenv(key, raising=False)
        env.setenv("AWS_REGION", "ap-northeast-1")
        env.setenv("AWS_MAX_ATTEMPTS", "1")
        env.setenv("AWS_ENDPOINT_URL", proxy.url)
        world = build_world(moto_endpoint)
        with DemoKubeApi(demo_cluster.objects(world)) as api:
            env.setenv("KUBECONFIG", kubeconfig(tmp / "kubeconfig", api.url))
            clients = aws.connect(None)
            m = Matrix(world, proxy, clients, kube_source("on"), str(tmp / "template.json"), tmp)
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
            yield m


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


# --- one read failing at a time -----------------------------------------------------------------

def _ids(value) -> str:
    return "-".join(value) if isinstance(value, tuple) else str(value)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("operation", AWS_READS, ids=_ids)
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
    assert_honest(report, m.check)
    assert report.exit_code == 3 and not criticals(report)
    assert not writes_sent(m.proxy)
    again = check_once(m.clients, m.world.cluster)
    assert again.complete and again.exit_code == 0 and reachability(again) == reachability(m.check)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("operation", IAM_READS, ids=_ids)
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
    assert_honest(report, m.preflight)
    assert report.exit_code == 3 and not criticals(report)
    unverified = [f for f in report.findings if f.code == "MIGRATION_POLICY_UNVERIFIED"]
    assert unverified and name in unverified[0].message
    assert not writes_sent(m.proxy)
    again = preflight_once(m.clients, m.world.cluster, m.kube)
    assert again.complete and again.exit_code == 0


@pytest.mark.parametrize("mode", ("observe", "enforce"))
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("operation", AWS_READS, ids=_ids)
def test_daemon(matrix, operation, kind, mode):
    m, (service, name) = matrix, operation
    m.proxy.reset_counts()
    report, first, second, written_under_fault = _daemon_cycle(m, mode, lambda: inject(m.proxy, service, name, kind))
    assert m.proxy.injected[operation], f"{name} was never sent"
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
