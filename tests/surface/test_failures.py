"""Failed reads said by class (connection, throttling, access denied, other), each with fitting advice,
once per distinct failure; and `check` against a closed port says it could not list anything."""

from __future__ import annotations

import socket

import pytest
import structlog.testing

from monitor.cli import main
from monitor.core import failures
from monitor.core.model import ReadFailure, Report
from monitor.surface.render import to_table


@pytest.mark.parametrize("code, kind", [
    ("EndpointConnectionError", failures.CONNECTION),
    ("ConnectTimeoutError", failures.CONNECTION),
    ("ReadTimeoutError", failures.CONNECTION),
    ("ConnectionClosedError", failures.CONNECTION),
    ("RequestLimitExceeded", failures.THROTTLING),
    ("Throttling", failures.THROTTLING),
    ("ThrottlingException", failures.THROTTLING),
    ("UnauthorizedOperation", failures.ACCESS_DENIED),
    ("AccessDenied", failures.ACCESS_DENIED),
    ("AuthFailure", failures.ACCESS_DENIED),
    ("ExpiredToken", failures.ACCESS_DENIED),
    ("InternalError", failures.OTHER),
    ("ServiceUnavailable", failures.OTHER),
    ("Unavailable", failures.OTHER),
    ("NoMatchingInterface", failures.OTHER),
    ("PaginationLoop", failures.OTHER),  # a listing ended by the monitor: not retried within the cycle
    ("PaginationPageLimit", failures.OTHER),
])
def test_classify(code, kind):
    assert failures.classify(code) == kind


def message(code: str, service: str = "ec2", operation: str = "DescribeSecurityGroupRules") -> str:
    (finding,) = failures.incomplete_findings([ReadFailure(service, operation, code, "the AWS message", "sg-1")])
    assert finding.code == "OBSERVATION_INCOMPLETE" and finding.severity.value == "warning"
    return finding.message


def test_advice_fits_the_class():
    connection = message("EndpointConnectionError")
    assert "could not be reached" in connection and "AWS_ENDPOINT_URL" in connection
    assert "IAM" not in connection and "throttl" not in connection.lower() and "allow " not in connection
    throttled = message("RequestLimitExceeded")
    assert "throttled" in throttled and "allow " not in throttled and "endpoint" not in throttled
    denied = message("UnauthorizedOperation", "elbv2", "DescribeTargetHealth")
    assert "refused" in denied and "allow elasticloadbalancing:DescribeTargetHealth" in denied
    assert "throttl" not in denied.lower() and "endpoint" not in denied
    other = message("InternalError")
    assert "AWS answered InternalError: the AWS message" in other and "allow " not in other
    endless = message("PaginationLoop")
    assert "listing would never end (PaginationLoop: the AWS message)" in endless and "AWS answered" not in endless
    assert "stopped paging" in endless and "allow " not in endless and "throttl" not in endless.lower()


def test_identical_failures_are_said_once():
    same = [ReadFailure("elbv2", "DescribeLoadBalancers", "EndpointConnectionError", "x"),
            ReadFailure("elbv2", "DescribeLoadBalancers", "EndpointConnectionError", "x")]
    assert len(failures.incomplete_findings(same)) == 1
    batches = [ReadFailure("ec2", "DescribeSecurityGroups", "Throttling", "x", f"sg-{i}") for i in range(3)]
    (finding,) = failures.incomplete_findings(batches)
    assert "for sg-0 and 2 other request(s)" in finding.message
    two_codes = [*batches, ReadFailure("ec2", "DescribeSecurityGroups", "AccessDenied", "x", "sg-9")]
    assert len(failures.incomplete_findings(two_codes)) == 2


def test_the_table_says_the_listing_failed_rather_than_that_nothing_was_found():
    failed = (ReadFailure("elbv2", "DescribeLoadBalancers", "ConnectTimeoutError", "timed out"),)
    table = to_table(Report("c", "r", complete=False, load_balancers=(), findings=(), failures=failed))
    assert "(could not list load balancers: AWS could not be reached (ConnectTimeoutError))" in table
    assert "no load balancers of this cluster found" not in table
    assert "no load balancers of this cluster found" in to_table(Report("c", "r", True, (), ()))


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_check_against_a_closed_port_says_so_once_and_exits_3(aws_env, monkeypatch, capsys):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed_port()}")
    code = main(["check", "--cluster-name", "prod-eks"])
    out = capsys.readouterr().out
    assert code == 3
    assert "could not list load balancers: AWS could not be reached (EndpointConnectionError)" in out
    assert "no load balancers of this cluster found" not in out
    lines = [line for line in out.splitlines() if "OBSERVATION_INCOMPLETE" in line]
    assert len(lines) == 1 and "AWS_ENDPOINT_URL" in lines[0]
    assert "IAM" not in out and "throttl" not in out.lower()


def failed_reads(events: list[dict]) -> list[tuple]:
    return [(e["log_level"], e["job"], e["operation"], e["code"], e["error_class"], e["calls"])
            for e in events if e["event"] == "aws_read_failed"]


def test_the_daemon_logs_a_dead_endpoint_as_a_warning_once_per_cycle(aws_env, monkeypatch):
    from monitor import aws
    from monitor.daemon.loop import Daemon
    from monitor.surface.metrics import Metrics

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    daemon = Daemon(aws.connect(None), "prod-eks", Metrics(), interval=15.0, topology_interval=300.0)
    with structlog.testing.capture_logs() as events:
        summary = daemon.run_once()
    assert summary.ok and not summary.complete
    assert failed_reads(events) == [
        ("warning", "topology", "DescribeLoadBalancers", "EndpointConnectionError", "connection", 1),
        ("warning", "check", "DescribeLoadBalancers", "EndpointConnectionError", "connection", 1),
    ]


def test_the_daemon_logs_one_event_for_a_read_that_failed_for_every_target_group(world, proxy, monkeypatch):
    from monitor import aws
    from monitor.daemon.loop import Daemon
    from monitor.surface.metrics import Metrics

    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    proxy.fail(["DescribeTargetHealth"], kind="error", code="AccessDenied", status=403)
    daemon = Daemon(aws.connect(None), world.cluster, Metrics(), interval=15.0, topology_interval=300.0)
    with structlog.testing.capture_logs() as events:
        daemon.run_once()
    assert failed_reads(events) == [
        ("warning", "topology", "DescribeTargetHealth", "AccessDenied", "access_denied", len(world.tg))]


def test_the_table_never_counts_an_unknown_path_as_covered():
    from monitor.core.model import LoadBalancerResult, PathResult

    def path(target, covered):
        return PathResult("arn:lb", "arn:tg", target, (8080,), ("sg-1",), covered)

    lb = LoadBalancerResult("k8s-shop-web-0123456789", "arn:lb", "v2", ("sg-2",), None,
                            (path("10.0.0.1", True), path("10.0.0.2", None), path("10.0.0.3", None)))
    table = to_table(Report("c", "r", complete=False, load_balancers=(lb,), findings=()))
    row = next(line for line in table.splitlines() if line.startswith("k8s-shop-web"))
    assert row.split()[3:] == ["1/3", "(2", "unknown)", "unknown"]


def test_a_target_address_no_eni_owns_is_advised_as_a_target_to_look_at_not_an_aws_outage():
    gone = ReadFailure("ec2", "DescribeNetworkInterfaces", "NoMatchingInterface",
                       "no ENI in the VPC owns these target addresses", "10.20.10.250")
    (finding,) = failures.incomplete_findings([gone])
    assert "Health Dashboard" not in finding.message
    assert "describe-target-health" in finding.message
    assert "AvailabilityZone=all" in finding.message


def test_an_answer_that_contradicts_what_is_known_is_said_so_with_its_reason():
    (finding,) = failures.incomplete_findings([ReadFailure(
        "ec2", "DescribeSecurityGroupRules", failures.EMPTY_ANSWER,
        "no rule listed for any of 2 groups, yet DescribeSecurityGroups shows rules on sg-1", "sg-1, sg-2")])
    assert finding.message.startswith(
        "ec2 DescribeSecurityGroupRules for sg-1, sg-2 failed, its answer contradicts what is known (EmptyAnswer: "
        "no rule listed for any of 2 groups, yet DescribeSecurityGroups shows rules on sg-1): what depends on it "
        "is unknown; the read is retried at the next cycle")
    (garbled,) = failures.incomplete_findings([ReadFailure("elbv2", "DescribeTags", failures.UNPARSABLE, "x")])
    assert "its answer could not be parsed (ResponseParserError)" in garbled.message
