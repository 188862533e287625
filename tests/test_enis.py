"""Which ENI owns a target address, on answers shaped as DescribeNetworkInterfaces returns them.

Prefix delegation (VPC CNI prefix mode) is not in moto, so the matching is held here on literal
AWS-shaped answers; the lookup calls themselves run against moto in tests/test_check.py."""

from monitor.aws.enis import owners, primary_eni

NODE_ENI = {
    "NetworkInterfaceId": "eni-node", "Groups": [{"GroupId": "sg-node", "GroupName": "eks-cluster-sg"}],
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
    assert found == {
        "10.0.1.10": ("eni-node", ("sg-node",)),
        "10.0.1.11": ("eni-node", ("sg-node",)),  # a secondary address (VPC CNI)
        "10.0.1.40": ("eni-node", ("sg-node",)),  # inside the delegated /28
        "10.0.1.200": ("eni-branch", ("sg-pods",)),  # security groups for pods
    }
    assert "10.0.1.99" not in found  # nobody's: left unknown, never guessed


def test_primary_eni_of_an_instance_is_device_index_0():
    instance = {"InstanceId": "i-1", "SecurityGroups": [{"GroupId": "sg-x"}], "NetworkInterfaces": [
        {"NetworkInterfaceId": "eni-2", "Attachment": {"DeviceIndex": 1}, "Groups": [{"GroupId": "sg-b"}]},
        {"NetworkInterfaceId": "eni-1", "Attachment": {"DeviceIndex": 0}, "Groups": [{"GroupId": "sg-a"}]}]}
    assert primary_eni(instance) == ("eni-1", ("sg-a",))
