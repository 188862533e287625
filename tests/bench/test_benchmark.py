"""The benchmark keeps working and measures honestly: the per-ALB checker it compares the monitor with
reaches the same verdicts as `alb-sg-monitor check` (healthy, revoked, narrowed, covered by a second
rule), and a tiny run of the whole bench writes a table with every figure and every budget."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from bench import mix, naive, report
from bench.benchmark import start_moto, stop
from monitor.demo import world as demo_world
from tests.support.helpers import run_check

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def own_moto(aws_env, monkeypatch):
    """A moto server of this test's own, in its own process: the per-ALB checker lists every load
    balancer of the region, and the session's server holds every other test's worlds."""
    server, endpoint = start_moto()
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    yield endpoint
    stop(server)


def monitor_verdicts(capsys, cluster: str) -> dict[str, bool | None]:
    _, answer = run_check(capsys, cluster)
    return {lb["name"]: lb["reachable"] for lb in answer["load_balancers"]}


def checker_verdicts(world: demo_world.World) -> dict[str, bool]:
    clients = world.clients()
    return {v.name: v.reachable for v in naive.check_all(clients["ec2"], clients["elbv2"], world.cluster)}


def test_the_per_alb_checker_agrees_with_the_monitor_healthy_and_after_revocations(own_moto, capsys):
    world = mix.seed(own_moto, "bench-test", 12)
    healthy = checker_verdicts(world)
    assert len(healthy) == 12 and all(healthy.values())
    assert monitor_verdicts(capsys, world.cluster) == healthy

    ec2 = world.clients()["ec2"]
    demo_world.revoke(world, "mix0_v1")  # a v1 ALB's own rule on its node group
    demo_world.revoke(world, "backend_nodeports")  # v2's rule over the NodePorts: cuts v2/adopted instance ALBs
    demo_world.revoke(world, "payments_v2")  # payments stays reachable through its v1 rule
    demo_world.revoke(world, "backend_nodes")  # narrowed to 8080 only: checkout's 8081 health port is cut
    world.rule["backend_8080"] = demo_world._authorize(ec2, world.sg["cluster"], "tcp", 8080, 8080,
                                                       source=world.sg["backend"])
    after = checker_verdicts(world)
    expected_down = {world.lb_name[k] for k in ("mix0", "mix1", "mix3", "mix4", "mix6", "checkout")}
    assert {name for name, ok in after.items() if not ok} == expected_down
    assert after[world.lb_name["payments"]] is True and after[world.lb_name["mix2"]] is True  # ip targets on 8080
    assert monitor_verdicts(capsys, world.cluster) == after
    lb = world.lb["mix0"]
    assert naive.check_arn(ec2, world.clients()["elbv2"], lb).reachable is False


def row_of(lines: list[str], columns) -> dict[str, str]:
    """The first row of the table with these columns, by heading; every column has a cell."""
    index = lines.index("| " + " | ".join(h for h, _ in columns) + " |")
    cells = [c.strip() for c in lines[index + 2].strip("|").split("|")]
    assert len(cells) == len(columns)
    return dict(zip([h for h, _ in columns], cells))


def test_a_tiny_bench_run_writes_every_figure_and_budget(tmp_path):
    output = tmp_path / "results.md"
    result = subprocess.run([sys.executable, "-m", "bench.benchmark", "--albs", "10", "--cycles", "2",
                             "--interval", "1", "--output", str(output)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    text = output.read_text()
    assert text in result.stdout
    assert "CPUs" in text and "UTC" in text  # the machine and the date
    lines = text.splitlines()
    cost, latency = row_of(lines, report.COST_COLUMNS), row_of(lines, report.LATENCY_COLUMNS)
    assert cost["ALBs"] == latency["ALBs"] == "10"
    # the steady check: a listing or two and the network ACLs, not per ALB
    assert 0 < float(cost["steady cycle: requests"]) <= 3
    assert int(cost["per-ALB checker: requests"].replace(",", "")) > 10 * 5  # several requests per ALB
    assert latency["verdicts agree with the checker"] == "10/10; after a revocation: yes"
    assert latency["enforce: revoked → rule back"].endswith(" s")
    assert latency["new ALB → in /metrics"].endswith(" s")
    reads = row_of(lines, report.READS_COLUMNS)
    assert "DescribeSecurityGroupRules" in reads["steady cycle: requests by operation"]
    assert "DescribeTargetHealth" not in reads["steady cycle: requests by operation"]  # the health job's, apart
    assert reads["target health: reads/s while steady (health job)"].endswith(" s")
    elb = next(line for line in lines if line.startswith("| 10 | ELB |"))  # the per-second histogram
    seconds = [int(c.strip().removesuffix(" s")) for c in elb.strip("|").split("|")[2:]]
    assert len(seconds) == len(report.RATE_BUCKETS) and sum(seconds[1:]) > 0  # some seconds carried requests
    queued = row_of(lines, report.QUEUE_COLUMNS)  # a daemon reading the events queue
    assert queued["steady cycles that listed"] == "0 of 2"  # no load balancer event, the ceiling an hour away
    assert float(queued["steady cycle: requests"]) < float(cost["steady cycle: requests"])
    assert queued["new ALB (CreateLoadBalancer event) → in /metrics"].endswith(" s")
    budgets = [line for line in lines if line.startswith("| ") and ("ALBs:" in line or "burst" in line)]
    assert len(budgets) == 6
    sized = [line for line in budgets if "burst" not in line]
    assert all("| not measured |" in line for line in sized)  # 10 ALBs measure no budget's size
    burst = next(line for line in budgets if "burst" in line)
    assert "| held |" in burst  # discovery paced at its default rate, counted at the proxy


AWS_ID = re.compile(r"\b(sg|sgr|eni|i|subnet|vpc|r)-[0-9a-f]{8,17}\b")
ELB_ID = re.compile(r"/[0-9a-f]{16}\b")  # the end of a load balancer's or target group's ARN
TIME = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?(\+00:00|Z)")
REQUEST_ID = re.compile(r"<(RequestId|requestId)>[^<]*</")


def raw_answer(endpoint: str, service: str, query: str) -> str:
    """One answer's XML as moto writes it (moto reads the service from the credential's scope and
    checks no signature)."""
    request = urllib.request.Request(endpoint, data=query.encode(), headers={
        "Content-Type": "application/x-www-form-urlencoded",
        "Authorization": f"AWS4-HMAC-SHA256 Credential=bench/20260101/ap-northeast-1/{service}/aws4_request, "
                         "SignedHeaders=host, Signature=0"})
    with urllib.request.urlopen(request, timeout=60) as answer:
        return REQUEST_ID.sub(r"<\1>REQUEST</", answer.read().decode())


def answers(endpoint: str, world: demo_world.World) -> str:
    """What the monitor and the checker read where bench.fastmoto changed moto's lookups (tags of
    rules, groups and instances; a group-id filter) and its writing of answers (the names it tries
    for a value, the transformers it applies, timestamps): AWS ids numbered in order of appearance
    and times reduced to their form, the same for two worlds seeded alike."""
    clients = demo_world.aws_clients(endpoint, "ap-northeast-1")
    ec2, elbv2 = clients["ec2"], clients["elbv2"]
    node_groups = [world.sg["cluster"], world.sg["v1nodes0"]]
    target_groups = elbv2.describe_target_groups()["TargetGroups"]
    load_balancers = elbv2.describe_load_balancers()["LoadBalancers"]
    read = {
        "rules": ec2.describe_security_group_rules()["SecurityGroupRules"],
        "node rules": ec2.describe_security_group_rules(
            Filters=[{"Name": "group-id", "Values": node_groups}])["SecurityGroupRules"],
        "groups": ec2.describe_security_groups()["SecurityGroups"],
        "instance tags": [sorted((t["Key"], t["Value"]) for t in i.get("Tags", ()))
                          for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]],
        "load balancers": load_balancers,
        "load balancer tags": elbv2.describe_tags(
            ResourceArns=[lb["LoadBalancerArn"] for lb in load_balancers][:20])["TagDescriptions"],
        "target groups": target_groups,
        "target health": [elbv2.describe_target_health(TargetGroupArn=tg["TargetGroupArn"])["TargetHealthDescriptions"]
                          for tg in target_groups],
        # The XML itself, as the two listings of every check read it.
        "listing XML": raw_answer(endpoint, "elasticloadbalancing",
                                  "Action=DescribeLoadBalancers&Version=2015-12-01&PageSize=400"),
        "rules XML": raw_answer(endpoint, "ec2", "Action=DescribeSecurityGroupRules&Version=2016-11-15&MaxResults=1000"),
    }
    text = TIME.sub(lambda m: re.sub(r"\d", "0", m.group(0)), json.dumps(read, default=str))
    numbers: dict[str, str] = {}
    text = AWS_ID.sub(lambda m: numbers.setdefault(m.group(0), f"{m.group(1)}-{len(numbers)}"), text)
    return ELB_ID.sub(lambda m: numbers.setdefault(m.group(0), f"/{len(numbers)}"), text)


def test_the_benchs_indexed_moto_answers_as_moto_does(aws_env):
    worlds = {}
    for module in ("moto.server", "bench.fastmoto"):
        server, endpoint = start_moto(module)
        try:
            worlds[module] = answers(endpoint, mix.seed(endpoint, "bench-same", 12))
        finally:
            stop(server)
    assert '"node rules": [{' in worlds["moto.server"] and '"Tags": [{' in worlds["moto.server"]
    assert '"CreatedTime": "0000-00-00 00:00:00.000000+00:00"' in worlds["moto.server"]
    assert "<SecurityGroups><member>sg-" in worlds["moto.server"] and "<isEgress>true" in worlds["moto.server"]
    assert worlds["bench.fastmoto"] == worlds["moto.server"]


def test_the_benchs_moto_pages_the_rule_listing_as_aws_does(aws_env):
    server, endpoint = start_moto("bench.fastmoto")
    try:
        world = mix.seed(endpoint, "bench-pages", 8)
        ec2 = demo_world.aws_clients(endpoint, world.region)["ec2"]
        whole = ec2.describe_security_group_rules()["SecurityGroupRules"]
        pages = list(ec2.get_paginator("describe_security_group_rules").paginate(PaginationConfig={"PageSize": 7}))
    finally:
        stop(server)
    assert len(whole) > 14 and all(len(p["SecurityGroupRules"]) <= 7 for p in pages) and len(pages) > 2
    assert [r["SecurityGroupRuleId"] for p in pages for r in p["SecurityGroupRules"]] == \
        [r["SecurityGroupRuleId"] for r in whole]
