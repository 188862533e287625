"""The test proxy counts what boto3 sends and fails it the way AWS does, so botocore reacts as
it would to real throttling and outages."""

from __future__ import annotations

import time

import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError
from botocore.parsers import ResponseParserError

from tests.support.awsproxy import EMPTY, MALFORMED, THROTTLE, UNAVAILABLE, AwsProxy
from tests.support.fixtures import tiny_moto  # noqa: F401 (fixture)
from tests.support.tinyworld import REGION


@pytest.fixture
def proxy(tiny_moto):  # noqa: F811
    with AwsProxy(tiny_moto) as running:
        yield running


def client(proxy: AwsProxy, service: str, attempts: int = 1):
    config = botocore.config.Config(retries={"mode": "standard", "total_max_attempts": attempts})
    return boto3.client(service, region_name=REGION, endpoint_url=proxy.url, config=config,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def error_code(call) -> tuple[str, int]:
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value.response["Error"]["Code"], caught.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_forwards_and_counts_per_service_and_action(proxy):
    ec2, elbv2, iam = client(proxy, "ec2"), client(proxy, "elbv2"), client(proxy, "iam")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    assert any(v["VpcId"] == vpc for v in ec2.describe_vpcs()["Vpcs"])
    ec2.describe_vpcs()
    elbv2.describe_load_balancers()
    iam.list_roles()
    assert proxy.count("ec2", "DescribeVpcs") == 2
    assert proxy.count("ec2", "CreateVpc") == 1
    assert proxy.count("elbv2", "DescribeLoadBalancers") == 1
    assert proxy.count("iam", "ListRoles") == 1
    assert proxy.count() == 5


def test_throttles_chosen_actions_as_each_service_does_then_heals(proxy):
    ec2, elbv2 = client(proxy, "ec2"), client(proxy, "elbv2")
    proxy.fail(["DescribeSecurityGroups", "DescribeLoadBalancers"], kind=THROTTLE)
    assert error_code(ec2.describe_security_groups) == ("RequestLimitExceeded", 400)
    assert error_code(elbv2.describe_load_balancers) == ("Throttling", 400)
    ec2.describe_vpcs()  # not chosen: forwarded
    proxy.heal()
    assert "SecurityGroups" in ec2.describe_security_groups()
    assert proxy.injected[("ec2", "DescribeSecurityGroups")] == 1


def test_unavailable_fails_every_action_with_503(proxy):
    proxy.fail(kind=UNAVAILABLE)
    assert error_code(client(proxy, "ec2").describe_vpcs) == ("Unavailable", 503)
    assert error_code(client(proxy, "elbv2").describe_target_groups) == ("ServiceUnavailable", 503)


def test_botocore_retries_the_injected_throttling_as_throttling(proxy):
    proxy.fail(["DescribeVpcs"], service="ec2")
    assert error_code(client(proxy, "ec2", attempts=2).describe_vpcs)[0] == "RequestLimitExceeded"
    assert proxy.count("ec2", "DescribeVpcs") == 2  # one retry: botocore took it for a transient error
    client(proxy, "elbv2").describe_load_balancers()  # another service is not affected


def test_delays_chosen_actions_until_healed(proxy):
    ec2 = client(proxy, "ec2")
    proxy.delay(["DescribeVpcs"], seconds=1.0)
    began = time.monotonic()
    ec2.describe_vpcs()
    assert time.monotonic() - began >= 1.0
    began = time.monotonic()
    ec2.describe_security_groups()  # not chosen: at once
    assert time.monotonic() - began < 1.0
    with pytest.raises(ValueError):
        proxy.delay(seconds=3600)


def test_drop_resets_the_connection_for_that_action_only(proxy):
    from botocore.exceptions import ConnectionClosedError, EndpointConnectionError

    from tests.support.awsproxy import DROP

    ec2 = client(proxy, "ec2")
    proxy.fail(["DescribeSubnets"], kind=DROP)
    with pytest.raises((ConnectionClosedError, EndpointConnectionError)):
        ec2.describe_subnets()
    ec2.describe_vpcs()  # a new connection for the next request: nothing else is affected
    assert proxy.injected[("ec2", "DescribeSubnets")] == 1


def test_json_protocol_actions_are_counted_and_failed_in_json(proxy):
    """SQS speaks the JSON protocol (the action is in X-Amz-Target): counted and failed per action too."""
    sqs = client(proxy, "sqs")
    url = sqs.create_queue(QueueName="proxy-json")["QueueUrl"]
    sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0)
    assert proxy.count("sqs", "CreateQueue") == 1 and proxy.count("sqs", "ReceiveMessage") == 1
    proxy.fail(["ReceiveMessage"], kind=THROTTLE, service="sqs")
    assert error_code(lambda: sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0)) == ("Throttling", 400)
    assert sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]  # not chosen
    assert proxy.injected[("sqs", "ReceiveMessage")] == 1


def test_a_malformed_answer_is_http_200_the_sdk_cannot_parse(proxy):
    ec2 = client(proxy, "ec2")
    ec2.create_vpc(CidrBlock="10.9.0.0/16")
    proxy.fail("DescribeVpcs", kind=MALFORMED, service="ec2")
    with pytest.raises(ResponseParserError):
        ec2.describe_vpcs()
    proxy.heal()
    assert ec2.describe_vpcs()["Vpcs"]


def test_an_empty_answer_lists_nothing_and_has_no_page_token(proxy):
    ec2, iam = client(proxy, "ec2"), client(proxy, "iam")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.0.0/24")
    iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")
    iam.put_role_policy(RoleName="r", PolicyName="p", PolicyDocument=(
        '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ec2:DescribeVpcs", "Resource": "*"}]}'))
    proxy.paginate("DescribeSubnets", "subnetSet", 1)
    proxy.fail(["DescribeSubnets", "ListRolePolicies"], kind=EMPTY)
    answer = ec2.describe_subnets(MaxResults=5)
    assert answer["Subnets"] == [] and "NextToken" not in answer
    assert iam.list_role_policies(RoleName="r")["PolicyNames"] == []
    with pytest.raises(ValueError):
        proxy.fail("DescribeRouteTables", kind=EMPTY)  # not a listing the proxy knows how to empty
    proxy.heal()
    assert iam.list_role_policies(RoleName="r")["PolicyNames"] == ["p"]
