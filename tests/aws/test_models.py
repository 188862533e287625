"""The monitor's EC2 and IAM clients load a model of only the operations it sends: every such call in
the code is in those lists, and the clients answer them over moto as before."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from monitor import aws
from monitor.aws.models import EC2_OPERATIONS, IAM_OPERATIONS
from tests.support.fixtures import tiny_aws_env, tiny_moto, tiny_world  # noqa: F401 (fixtures)

ROOT = Path(__file__).resolve().parents[2] / "monitor"


def _pascal(snake: str) -> str:
    return "".join(part.title() for part in snake.split("_"))


@pytest.mark.parametrize("service, kept", [("ec2", EC2_OPERATIONS), ("iam", IAM_OPERATIONS)])
def test_every_call_of_the_monitor_is_in_the_trimmed_model(service, kept):
    # Calls on a client: `ec2.describe_subnets(`, or a listing by name: `paginate(clients.ec2, "describe_vpcs"`.
    call = re.compile(rf"\b{service}\.([a-z_]+)\(|\b{service},\s*\"([a-z_]+)\"")
    called = set()
    for path in ROOT.rglob("*.py"):
        if "demo" in path.parts:  # the demo seeds its account with a client of its own
            continue
        for direct, listed in call.findall(path.read_text()):
            called.add(_pascal(direct or listed))
    called.discard("Meta")
    assert called, f"no {service} call found: the pattern no longer matches the code"
    assert called <= kept, sorted(called - kept)


def test_the_monitor_s_ec2_client_knows_only_those_operations_and_still_answers(tiny_world):
    clients = aws.connect(None)
    operations = set(clients.ec2.meta.service_model.operation_names)
    assert operations == EC2_OPERATIONS
    assert not hasattr(clients.ec2, "run_instances")
    groups = clients.ec2.describe_security_groups(GroupIds=[tiny_world.node_sg])["SecurityGroups"]
    assert groups[0]["GroupId"] == tiny_world.node_sg


def test_a_listed_load_balancer_carries_what_discovery_reads_and_no_more(tiny_world):
    from monitor.aws.discover import _LB_KEYS
    from monitor.aws.models import MEMBERS

    assert set(MEMBERS["elbv2"]["LoadBalancer"]) == {*_LB_KEYS, "AvailabilityZones"}
    item = aws.connect(None).elbv2.describe_load_balancers(LoadBalancerArns=[tiny_world.albs["web"].arn])
    (lb,) = item["LoadBalancers"]
    assert set(lb) <= set(MEMBERS["elbv2"]["LoadBalancer"]) and "CreatedTime" not in lb
    assert lb["SecurityGroups"] == [tiny_world.albs["web"].security_group]
    assert all(set(zone) == {"SubnetId"} for zone in lb["AvailabilityZones"]) and lb["AvailabilityZones"]
