"""Network ACLs over moto: `check` names the ACL entry that stops an ALB's traffic or its replies,
says nothing of ACLs that pass it, stays unknown when they cannot be read, and enforce mode never
writes for a path only an ACL cuts.

The small world: one VPC, subnets a (10.0.1.0/24, the node) and b (10.0.2.0/24), the ALB in both
(cross-zone: b's traffic crosses both subnets' ACLs, a's stays inside its subnet)."""

from __future__ import annotations

import pytest

from monitor.core.settings import Settings
from monitor.surface.main import assemble_daemon
from tests.support.awsproxy import THROTTLE, AwsProxy
from tests.support.fixtures import tiny_aws_env, tiny_moto  # noqa: F401 (fixtures)
from tests.support.helpers import codes, lb_by_name, run_check
from tests.support.tinyworld import CLUSTER, NODE_PORT, World, build_world

ALLOW_ALL = ((100, False, "-1", "allow", "0.0.0.0/0", None), (100, True, "-1", "allow", "0.0.0.0/0", None))


@pytest.fixture
def web(tiny_aws_env) -> World:
    return build_world(tiny_aws_env, ("web",))


def acl_on(world: World, subnet: str, *entries) -> str:
    """A custom network ACL with `entries` (number, egress, protocol, action, cidr, ports), put on
    `subnet` in place of the ACL it had."""
    ec2 = world.client("ec2")
    acl = ec2.create_network_acl(VpcId=world.vpc_id)["NetworkAcl"]["NetworkAclId"]
    for number, egress, protocol, action, cidr, ports in entries:
        extra = {"PortRange": {"From": ports[0], "To": ports[1]}} if ports else {}
        ec2.create_network_acl_entry(NetworkAclId=acl, RuleNumber=number, Protocol=protocol, RuleAction=action,
                                     Egress=egress, CidrBlock=cidr, **extra)
    (current,) = ec2.describe_network_acls(
        Filters=[{"Name": "association.subnet-id", "Values": [subnet]}])["NetworkAcls"]
    (association,) = [a["NetworkAclAssociationId"] for a in current["Associations"] if a["SubnetId"] == subnet]
    ec2.replace_network_acl_association(AssociationId=association, NetworkAclId=acl)
    return acl


def nacl_findings(report: dict) -> list[dict]:
    return [f for f in report["findings"] if f["code"] == "NACL_BLOCKED"]


def test_untouched_default_acls_pass_the_path(web, capsys):
    code, report = run_check(capsys, CLUSTER)
    (path,) = lb_by_name(report, web.albs["web"].name)["paths"]
    assert code == 0 and path["nacl_allowed"] is True and path["nacl_blocked"] == []


def test_a_deny_of_the_node_port_from_the_alb_subnets_is_an_outage_naming_the_entry(web, capsys):
    node_subnet = web.subnets[0]
    acl = acl_on(web, node_subnet, (90, False, "6", "deny", "10.0.0.0/16", (30000, 32767)), *ALLOW_ALL)
    code, report = run_check(capsys, CLUSTER)
    lb = lb_by_name(report, web.albs["web"].name)
    (path,) = lb["paths"]
    assert code == 1 and lb["reachable"] is False
    assert path["covered"] is True and path["egress_allowed"] is True and path["nacl_allowed"] is False
    assert path["nacl_blocked"] == [{"network_acl": acl, "rule": "90", "direction": "inbound", "subnet": node_subnet,
                                     "protocol": "tcp", "from_port": NODE_PORT, "to_port": NODE_PORT,
                                     "peer": "10.0.2.0/24", "reply": False}]
    (finding,) = nacl_findings(report)
    assert finding["severity"] == "critical" and finding["load_balancer"] == web.albs["web"].name
    for words in (acl, "rule 90", "inbound", node_subnet, f"tcp {NODE_PORT} from 10.0.2.0/24",
                  f"aws ec2 create-network-acl-entry --network-acl-id {acl} --ingress",
                  "--rule-number <a free number below 90>", "--cidr-block 10.0.2.0/24 --rule-action allow"):
        assert words in finding["message"], words
    assert "ACCESS_REVOKED" not in codes(report)


def test_a_deny_of_the_replies_is_an_outage_too(web, capsys):
    acl = acl_on(web, web.subnets[0], (80, True, "6", "deny", "10.0.2.0/24", (1024, 65535)), *ALLOW_ALL)
    code, report = run_check(capsys, CLUSTER)
    assert code == 1
    (finding,) = nacl_findings(report)
    assert acl in finding["message"] and "rule 80" in finding["message"] and "outbound" in finding["message"]
    assert "the replies on tcp 1024-65535 to 10.0.2.0/24" in finding["message"]
    assert "--egress" in finding["message"]


def test_an_allow_numbered_before_the_deny_lets_the_traffic_through(web, capsys):
    acl_on(web, web.subnets[0], (80, False, "6", "allow", "10.0.2.0/24", (NODE_PORT, NODE_PORT)),
           (90, False, "6", "deny", "10.0.0.0/16", (30000, 32767)), *ALLOW_ALL)
    code, report = run_check(capsys, CLUSTER)
    assert code == 0 and not nacl_findings(report)
    assert lb_by_name(report, web.albs["web"].name)["reachable"] is True


def test_traffic_inside_the_node_subnet_is_not_filtered(web, capsys):
    # Everything but subnet b's traffic denied: the ALB's node in subnet a reaches the target
    # without crossing an ACL, so only b's traffic is judged, and it is allowed.
    acl_on(web, web.subnets[0], (100, False, "-1", "allow", "10.0.2.0/24", None),
           (100, True, "-1", "allow", "10.0.2.0/24", None))
    code, report = run_check(capsys, CLUSTER)
    assert code == 0 and not nacl_findings(report), [f["message"] for f in report["findings"]]


def test_an_unreadable_acl_listing_leaves_the_paths_unknown_never_blocked(web, capsys, monkeypatch):
    acl_on(web, web.subnets[0], (90, False, "-1", "deny", "10.0.0.0/16", None), *ALLOW_ALL)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with AwsProxy(web.endpoint) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        proxy.fail(["DescribeNetworkAcls"], kind=THROTTLE, service="ec2")
        code, report = run_check(capsys, CLUSTER)
        assert proxy.injected[("ec2", "DescribeNetworkAcls")]
    lb = lb_by_name(report, web.albs["web"].name)
    assert code == 3 and report["complete"] is False and lb["reachable"] is None
    assert lb["paths"][0]["nacl_allowed"] is None and lb["paths"][0]["covered"] is True
    assert "NACL_BLOCKED" not in codes(report) and "OBSERVATION_INCOMPLETE" in codes(report)
    (incomplete,) = [f for f in report["findings"] if f["code"] == "OBSERVATION_INCOMPLETE"]
    assert "DescribeNetworkAcls" in incomplete["message"]


def test_enforce_mode_writes_nothing_for_a_path_only_an_acl_cuts(web, tmp_path, monkeypatch):
    """The security-group verdict stays covered: there is no lost rule to restore, and a rule the
    monitor wrote would not pass the ACL anyway."""
    clock = [1_700_000_000.0]
    with AwsProxy(web.endpoint) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        settings = Settings(cluster_name=CLUSTER, mode="enforce", interval=15.0, grace=60.0, listen="127.0.0.1:0",
                            kubernetes="off", state_file=str(tmp_path / "state.json"))
        parts = assemble_daemon(settings, wall=lambda: clock[0], monotonic=lambda: clock[0])
        try:
            assert parts.daemon.run_once().report.load_balancers[0].reachable is True  # remembered healthy
            acl_on(web, web.subnets[0], (90, False, "6", "deny", "10.0.0.0/16", (30000, 32767)), *ALLOW_ALL)
            proxy.reset_counts()
            summaries = []
            for _ in range(8):  # two minutes: twice the grace
                clock[0] += 15.0
                summaries.append(parts.daemon.run_once())
        finally:
            parts.server.stop()
    last = summaries[-1]
    assert last.ok and last.report.complete and last.report.load_balancers[0].reachable is False
    assert "NACL_BLOCKED" in {f.code for f in last.report.findings}
    assert not [o for s in summaries for o in s.remediations], [o for s in summaries for o in s.remediations]
    written = {k: n for k, n in proxy.requests.items() if n and not k[1].startswith(("Describe", "Get", "List"))}
    assert not written
