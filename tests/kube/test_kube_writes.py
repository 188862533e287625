"""What the monitor writes to Kubernetes, over HTTP against the demo's Kubernetes API: the leader
Lease, the state ConfigMap and the audit Events; and the daemon with Kubernetes on (two replicas,
one writer; a lost lease stops writes; Ingress names on the metrics; an API that went away)."""

from __future__ import annotations

import json
import urllib.request

import kubernetes_validate
import pytest

from monitor import kube
from monitor.core.errors import StateError
from monitor.core.memory import Memory, PathKey, PathMemory, RuleTuple
from monitor.core.settings import Settings
from monitor.core.state_doc import State
from monitor.demo import cluster as demo_cluster
from monitor.demo import world as demo_world
from monitor.demo.kubeapi import DemoKubeApi
from monitor.kube.lease import LeaseElector, micro_time
from monitor.kube.state_store import ConfigMapStateStore
from monitor.surface.main import assemble_daemon
from tests.aws.test_writes import snapshot
from tests.daemon.test_enforce_daemon import GRACE, INTERVAL, T0, Clock, reachable, writes
from tests.support.awsproxy import AwsProxy
from tests.support.kubeapi import SCHEMA_VERSION

NS = "alb-sg-monitor"


def granted(sent: list[tuple[str, str, str]]) -> None:
    """Every (group, resource, verb) a test sent is one the RBAC of deploy/ grants
    (tests/deploy/test_manifests.py holds the RBAC to these lists). Checked as each test ends, so it
    holds wherever the test runs, alone or beside others."""
    allowed = kube.NAMESPACED_ACCESS | kube.CLUSTER_ACCESS
    assert set(sent) <= allowed, set(sent) - allowed


@pytest.fixture
def api():
    with DemoKubeApi([]) as server:
        yield server
        granted(server.log)


def stored(api: DemoKubeApi, kind: str) -> list[dict]:
    return [o for o in api.objects if o["kind"] == kind]


def put(api: DemoKubeApi, obj: dict) -> None:
    meta = obj["metadata"]
    group = obj["apiVersion"]
    base = f"/api/{group}" if "/" not in group else f"/apis/{group}"
    plural = {"Lease": "leases", "ConfigMap": "configmaps"}[obj["kind"]]
    request = urllib.request.Request(f"{api.url}{base}/namespaces/{meta['namespace']}/{plural}/{meta['name']}",
                                     data=json.dumps(obj).encode(), method="PUT",
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=5).read()


# -- the state ConfigMap ------------------------------------------------------------------------------

STATE = State("prod-eks", Memory(paths=((PathKey("arn:lb", "arn:tg", "i-0abc", 30080),
                                         PathMemory(covering=(RuleTuple("sg-0node", "tcp", 0, 65535, "sg", "sg-0alb"),),
                                                    uncovered_since=T0)),)))


def test_the_state_configmap_round_trips_and_survives_a_stale_writer(api):
    one = ConfigMapStateStore(kube.for_host(api.url), NS, "prod-eks")
    assert one.load() is None  # 404: nothing stored yet
    one.save(STATE)
    (config_map,) = stored(api, "ConfigMap")
    kubernetes_validate.validate(config_map, SCHEMA_VERSION, strict=True)
    assert config_map["metadata"]["name"] == "alb-sg-monitor-state" and "state.json" in config_map["data"]
    two = ConfigMapStateStore(kube.for_host(api.url), NS, "prod-eks")
    assert two.load() == STATE
    two.save(State("prod-eks"))
    one.save(STATE)  # based on an old resourceVersion: 409, re-read, replaced once more
    assert ConfigMapStateStore(kube.for_host(api.url), NS, "prod-eks").load() == STATE
    assert ("", "configmaps", "update") in api.log and ("", "configmaps", "create") in api.log


def test_a_corrupt_or_foreign_configmap_is_an_error_never_a_reset(api):
    store = ConfigMapStateStore(kube.for_host(api.url), NS, "prod-eks")
    store.save(STATE)
    (config_map,) = stored(api, "ConfigMap")
    put(api, {**config_map, "data": {"state.json": "{half"}})
    with pytest.raises(StateError, match="not valid JSON"):
        store.load()
    ConfigMapStateStore(kube.for_host(api.url), NS, "staging-eks").save(State("staging-eks"))
    with pytest.raises(StateError, match="belongs to cluster 'staging-eks'"):
        store.load()
    api.down = True
    with pytest.raises(StateError, match="cannot be read"):
        store.load()


# -- the Lease ----------------------------------------------------------------------------------------

def test_one_holder_at_a_time_and_a_takeover_only_after_the_lease_expires(api):
    clock = Clock()
    a = LeaseElector(kube.for_host(api.url), NS, "pod-a", monotonic=clock, wall=clock)
    b = LeaseElector(kube.for_host(api.url), NS, "pod-b", monotonic=clock, wall=clock)
    assert a.is_leader() and not b.is_leader()
    (lease,) = stored(api, "Lease")
    kubernetes_validate.validate(lease, SCHEMA_VERSION, strict=True)
    assert (lease["metadata"]["name"], lease["spec"]["holderIdentity"], lease["spec"]["leaseDurationSeconds"]) == \
        ("alb-sg-monitor-leader", "pod-a", 15)
    for _ in range(3):  # a renews every 5 s; b keeps seeing a fresh lease
        clock.now += 5
        assert a.is_leader() and not b.is_leader()
    # a stops renewing (its pod hangs): it stops counting itself leader after the renew deadline
    # (10 s), before b may take over after a whole lease duration (15 s) without a renewal.
    clock.now += 10
    assert not a.holds()
    assert not b.is_leader()  # b has seen the same renewTime for only 10 s
    clock.now += 5
    assert b.is_leader()
    assert not a.confirm()
    assert stored(api, "Lease")[0]["spec"]["holderIdentity"] == "pod-b"
    assert stored(api, "Lease")[0]["spec"]["leaseTransitions"] == 1
    b.stop()  # a clean stop hands the lease over at once
    assert a.confirm()
    # what election asks of the API: exactly the lease verbs the Role grants
    assert {verb for _, resource, verb in api.log if resource == "leases"} == {"get", "create", "update"}


# -- the daemon with Kubernetes -------------------------------------------------------------------------

@pytest.fixture
def cluster_api(world):
    with DemoKubeApi(demo_cluster.objects(world)) as server:
        yield server
        granted(server.log)


@pytest.fixture
def proxy(world, monkeypatch):
    with AwsProxy(world.endpoint) as running:
        monkeypatch.setenv("AWS_ENDPOINT_URL", running.url)
        yield running


def replica(world, cluster_api, clock, identity, mode="enforce"):
    settings = Settings(cluster_name=world.cluster, mode=mode, interval=INTERVAL, grace=GRACE,
                        listen="127.0.0.1:0", kubernetes="on")
    parts = assemble_daemon(settings, kube=kube.for_host(cluster_api.url), identity=identity, namespace=NS,
                            wall=clock, monotonic=clock)
    parts.server.stop()
    return parts


def tick(clock, replicas, seconds=INTERVAL, also=lambda: None):
    """Let `seconds` pass as they do in pods: every 5 s each replica's renewal thread runs a round."""
    for _ in range(int(seconds // 5)):
        also()
        clock.now += 5
        for parts in replicas:
            parts.leadership.is_leader()


def metric(parts, name, **labels):
    from prometheus_client.parser import text_string_to_metric_families

    body, _ = parts.metrics.exposition()
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return None


def test_two_replicas_only_the_leader_writes_and_a_lost_lease_stops_writes(world, cluster_api, proxy):
    clock = Clock()
    a, b = replica(world, cluster_api, clock, "pod-a"), replica(world, cluster_api, clock, "pod-b")
    a.daemon.run_once(), b.daemon.run_once()
    assert metric(a, "albsg_remediation_enabled") == 1 and metric(b, "albsg_remediation_enabled") == 0
    # Ingress names from Kubernetes fill the labels of ALBs whose tags do not name one (v2 ALBs).
    assert metric(a, "albsg_load_balancer_reachable", load_balancer=world.lb_name["checkout"],
                  ingress_namespace="checkout", ingress="storefront") == 1

    demo_world.revoke(world, "shop_v1")
    both = []
    for _ in range(8):
        tick(clock, (a, b))
        both += [(name, o) for name, parts in (("b", b), ("a", a)) for o in parts.daemon.run_once().remediations]
    done = [(name, o.label) for name, o in both if o.result is not None]
    assert done == [("a", "restored")]
    assert ("b", "not_leader") in {(name, o.decision.reason) for name, o in both}
    assert proxy.count(service="ec2", action="AuthorizeSecurityGroupIngress") == 1
    assert stored(cluster_api, "ConfigMap"), "the leader saved its state"

    # Events on the Ingress: the decision to wait, then the restore; only the leader posts them.
    events = [e for e in stored(cluster_api, "Event") if e["involvedObject"]["name"] == "frontend"]
    for event in events:
        kubernetes_validate.validate(event, SCHEMA_VERSION, strict=True)
    assert [(e["reason"], e["type"]) for e in events] == [("RestoreSuppressed", "Warning"), ("RuleRestored", "Normal")]
    assert all(e["metadata"]["namespace"] == "shop" and e["source"]["component"] == "alb-sg-monitor"
               and e["involvedObject"]["kind"] == "Ingress" for e in events)
    assert world.sg["shop_alb"] in events[1]["message"]

    # Someone else takes the Lease (and keeps renewing it): a stops writing at once.
    restored = next(o for _, o in both if o.result is not None).result.rule_id
    world.clients()["ec2"].revoke_security_group_ingress(GroupId=world.sg["cluster"], SecurityGroupRuleIds=[restored])
    before = snapshot(world)
    def intruder_renews() -> None:
        (lease,) = stored(cluster_api, "Lease")
        put(cluster_api, {**lease, "spec": {**lease["spec"], "holderIdentity": "pod-c",
                                            "renewTime": micro_time(clock.now)}})

    for _ in range(8):
        tick(clock, (a,), also=intruder_renews)
        summary = a.daemon.run_once()
        assert writes(summary) == []
    assert [o.decision.reason for o in summary.remediations] == ["not_leader"]
    assert snapshot(world) == before
    assert metric(a, "albsg_remediation_enabled") == 0
    assert proxy.count(service="ec2", action="AuthorizeSecurityGroupIngress") == 1


def test_an_unreachable_kubernetes_api_degrades_to_aws_only_and_stops_writes(world, cluster_api, proxy):
    clock = Clock()
    parts = replica(world, cluster_api, clock, "pod-a")
    assert parts.daemon.run_once().complete
    cluster_api.down = True
    parts.daemon.refresh_topology("scheduled")
    demo_world.revoke(world, "shop_v1")
    for _ in range(8):
        clock.now += INTERVAL
        summary = parts.daemon.run_once()
        assert writes(summary) == []
    codes = [f.code for f in summary.report.findings]
    assert "KUBERNETES_UNAVAILABLE" in codes and "ACCESS_REVOKED" in codes
    assert reachable(summary, world, "shop") is False  # the AWS check goes on
    assert metric(parts, "albsg_remediation_enabled") == 0  # no lease renewal, no writes
    assert proxy.count(service="ec2", action="AuthorizeSecurityGroupIngress") == 0


def test_a_path_only_an_address_range_covered_is_reported_and_left_to_a_human(world, cluster_api, proxy):
    from structlog.testing import capture_logs

    clock = Clock()
    ec2 = world.clients()["ec2"]
    node_sg = world.sg["cluster"]
    # The shop nodes admit the ALB's subnets by CIDR; the v1 rule from the ALB's SG goes first,
    # the path stays covered, then someone removes the CIDR rule too.
    subnets = demo_world._authorize(ec2, node_sg, "tcp", 30080, 30081, cidr="10.20.0.0/16")
    parts = replica(world, cluster_api, clock, "pod-a")
    parts.daemon.run_once()
    demo_world.revoke(world, "shop_v1")
    tick(clock, (parts,))
    assert reachable(parts.daemon.run_once(), world, "shop") is True
    ec2.revoke_security_group_ingress(GroupId=node_sg, SecurityGroupRuleIds=[subnets])
    before = snapshot(world)
    decisions = []
    with capture_logs() as logged:
        for _ in range(10):  # well past the grace
            tick(clock, (parts,))
            summary = parts.daemon.run_once()
            assert writes(summary) == []
            decisions += [(o.decision.action, o.decision.reason, o.decision.rule.text()) for o in summary.remediations]
    assert snapshot(world) == before
    assert proxy.count(service="ec2", action="AuthorizeSecurityGroupIngress") == 0
    assert ("suppressed", "cidr_not_restored", f"tcp 30080-30081 from 10.20.0.0/16 on {node_sg}") in decisions
    assert {d[2] for d in decisions} == {f"tcp 30080-30081 from 10.20.0.0/16 on {node_sg}"}
    assert "ACCESS_REVOKED" in {f.code for f in summary.report.findings}
    assert reachable(summary, world, "shop") is False
    # Announced once: counted, logged as a warning, and an Event on the Ingress.
    assert metric(parts, "albsg_remediations_total", result="suppressed") == 2  # grace, then left to a human
    (left,) = [e for e in logged if e["event"] == "remediation_decision" and e["reason"] == "cidr_not_restored"]
    assert left["log_level"] == "warning" and left["load_balancer"] == world.lb_name["shop"]
    events = [e for e in stored(cluster_api, "Event") if e["involvedObject"]["name"] == "frontend"]
    (event,) = [e for e in events if "address range" in e["message"]]
    assert event["type"] == "Warning" and "10.20.0.0/16" in event["message"]
