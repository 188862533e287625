"""Which ENI owns a target address, on answers shaped as DescribeNetworkInterfaces returns them.

Prefix delegation (VPC CNI prefix mode) is not in moto, so the matching is held here on literal
AWS-shaped answers; the lookup calls themselves run against moto in tests/surface/test_check.py."""

from monitor.aws.enis import GONE, instance_enis, ipv6_cidrs, owners, primary_eni, subnet_cidrs
from tests.support.stubbed import stubbed

NODE_ENI = {
    "NetworkInterfaceId": "eni-node", "Groups": [{"GroupId": "sg-node", "GroupName": "eks-cluster-sg"}],
    "SubnetId": "subnet-1", "VpcId": "vpc-1",
    "PrivateIpAddresses": [{"PrivateIpAddress": "10.0.1.10", "Primary": True},
                           {"PrivateIpAddress": "10.0.1.11", "Primary": False}],
    "Ipv4Prefixes": [{"Ipv4Prefix": "10.0.1.32/28"}],
}
BRANCH_ENI = {
    "NetworkInterfaceId": "eni-branch", "Groups": [{"GroupId": "sg-pods"}],
    "PrivateIpAddresses": [{"PrivateIpAddress": "10.0.1.200", "Primary": True}],
}


def test_primary_secondary_prefix_and_branch_addresses():
    found = owners([NODE_ENI, BRANCH_ENI], ["10.0.1.10", "10.0.1.11", "10.0.1.40", "10.0.1.200", "10.0.1.99"])
    node = ("eni-node", ("sg-node",), "subnet-1", "vpc-1")  # the subnet whose network ACL filters it
    assert found == {
        "10.0.1.10": node,
        "10.0.1.11": node,  # a secondary address (VPC CNI)
        "10.0.1.40": node,  # inside the delegated /28
        "10.0.1.200": ("eni-branch", ("sg-pods",), None, None),  # security groups for pods
    }
    assert "10.0.1.99" not in found  # nobody's: left unknown, never guessed


def test_primary_eni_of_an_instance_is_device_index_0():
    instance = {"InstanceId": "i-1", "SecurityGroups": [{"GroupId": "sg-x"}], "NetworkInterfaces": [
        {"NetworkInterfaceId": "eni-2", "Attachment": {"DeviceIndex": 1}, "Groups": [{"GroupId": "sg-b"}]},
        {"NetworkInterfaceId": "eni-1", "Attachment": {"DeviceIndex": 0}, "Groups": [{"GroupId": "sg-a"}],
         "SubnetId": "subnet-1", "VpcId": "vpc-1"}]}
    assert primary_eni(instance) == ("eni-1", ("sg-a",), "subnet-1", "vpc-1")


# IPv6 clusters: the VPC CNI hands pods addresses from an IPv6 prefix (/80) delegated to the node ENI;
# a branch ENI (security groups for pods) carries its pod's address itself.
NODE_ENI6 = {
    "NetworkInterfaceId": "eni-node6", "Groups": [{"GroupId": "sg-node"}],
    "PrivateIpAddresses": [{"PrivateIpAddress": "10.0.2.10", "Primary": True}],
    "Ipv6Addresses": [{"Ipv6Address": "2600:1f14:abc:100::10", "IsPrimaryIpv6": True}],
    "Ipv6Prefixes": [{"Ipv6Prefix": "2600:1f14:abc:100:1234::/80"}],
}
BRANCH_ENI6 = {
    "NetworkInterfaceId": "eni-branch6", "Groups": [{"GroupId": "sg-pods"}],
    "PrivateIpAddresses": [{"PrivateIpAddress": "10.0.2.77", "Primary": True}],
    "Ipv6Addresses": [{"Ipv6Address": "2600:1f14:abc:100::5d"}],
}


def test_ipv6_addresses_and_delegated_ipv6_prefixes():
    found = owners([NODE_ENI6, BRANCH_ENI6], ["2600:1f14:abc:100::10", "2600:1f14:abc:100:1234::7",
                                             "2600:1f14:0abc:0100:0000:0000:0000:005d", "2600:1f14:abc:100::99"])
    assert found == {
        "2600:1f14:abc:100::10": ("eni-node6", ("sg-node",), None, None),
        "2600:1f14:abc:100:1234::7": ("eni-node6", ("sg-node",), None, None),  # a pod inside the delegated /80
        "2600:1f14:0abc:0100:0000:0000:0000:005d": ("eni-branch6", ("sg-pods",), None, None),  # written out in full
    }


def test_subnet_cidrs_leave_out_ipv6_blocks_taken_off_the_subnet():
    subnet = {"SubnetId": "subnet-1", "CidrBlock": "10.0.2.0/24", "Ipv6CidrBlockAssociationSet": [
        {"Ipv6CidrBlock": "2600:1f14:abc:100::/64", "Ipv6CidrBlockState": {"State": "associated"}},
        {"Ipv6CidrBlock": "2600:1f14:abc:1ff::/64", "Ipv6CidrBlockState": {"State": "disassociated"}}]}
    assert subnet_cidrs(subnet) == ["10.0.2.0/24", "2600:1f14:abc:100::/64"]
    assert ipv6_cidrs(subnet) == ("2600:1f14:abc:100::/64",)


# --- an instance listing that names none of the instances asked ----------------------------------

INSTANCE = {"InstanceId": "i-0123456789abcdef0", "PrivateIpAddress": "10.0.1.10",
            "NetworkInterfaces": [{"NetworkInterfaceId": "eni-node", "Attachment": {"DeviceIndex": 0},
                                   "Groups": [{"GroupId": "sg-node", "GroupName": "nodes"}]}]}


def test_an_instance_listing_answering_nothing_is_asked_again_by_id_and_that_answer_is_taken():
    with stubbed() as (clients, stubs):
        stubs["ec2"].add_response("describe_instances", {"Reservations": []})
        stubs["ec2"].add_response("describe_instances", {"Reservations": [{"Instances": [INSTANCE]}]},
                                  {"InstanceIds": [INSTANCE["InstanceId"]]})
        failures: list = []
        found = instance_enis(clients, [INSTANCE["InstanceId"]], failures)
    assert found == {INSTANCE["InstanceId"]: ("eni-node", ("sg-node",), None, None)} and not failures


def test_instances_said_gone_only_when_aws_names_them_not_found():
    with stubbed() as (clients, stubs):
        stubs["ec2"].add_response("describe_instances", {"Reservations": []})
        stubs["ec2"].add_client_error("describe_instances", "InvalidInstanceID.NotFound",
                                      "The instance ID 'i-0123456789abcdef0' does not exist")
        failures: list = []
        found = instance_enis(clients, [INSTANCE["InstanceId"]], failures)
    assert found == {INSTANCE["InstanceId"]: GONE} and not failures


def test_an_instance_answered_nothing_twice_is_unknown_not_gone():
    with stubbed() as (clients, stubs):
        stubs["ec2"].add_response("describe_instances", {"Reservations": []})
        stubs["ec2"].add_response("describe_instances", {"Reservations": []})
        failures: list = []
        found = instance_enis(clients, [INSTANCE["InstanceId"]], failures)
    assert INSTANCE["InstanceId"] not in found  # unknown: its load balancer's paths are not judged
    assert [(f.operation, f.code) for f in failures] == [("DescribeInstances", "EmptyAnswer")]
