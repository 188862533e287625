"""Which ENI a target's traffic arrives on, and that ENI's security groups.

An instance target: the instance's primary ENI. An ip target: the ENI that owns the address, as a
primary or secondary private address (VPC CNI), a branch ENI's address (security groups for pods),
or inside an IPv4 prefix delegated to the ENI (VPC CNI prefix mode), which no address filter matches.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from monitor.aws.calls import EC2_FILTER_VALUES, EC2_PAGE, attempt, chunks, paginate, scope_of
from monitor.aws.session import AwsClients
from monitor.model import ReadFailure

Owner = tuple[str | None, tuple[str, ...]]  # (ENI id, its security groups)
GONE = "gone"  # an instance target whose instance no longer exists


def instance_enis(clients: AwsClients, instance_ids: list[str], failures: list[ReadFailure]) -> dict[str, Owner | str]:
    found: dict[str, Owner | str] = {}
    for batch in chunks(instance_ids, EC2_FILTER_VALUES):
        reservations = attempt(
            failures, "ec2", "DescribeInstances",
            lambda: paginate(clients.ec2, "describe_instances", "Reservations", EC2_PAGE,
                             Filters=[{"Name": "instance-id", "Values": batch}]),
            scope_of(batch))
        if reservations is None:
            continue
        for reservation in reservations:
            for instance in reservation.get("Instances", ()):
                found[instance["InstanceId"]] = primary_eni(instance)
        for instance_id in batch:
            found.setdefault(instance_id, GONE)
    return found


def primary_eni(instance: dict) -> Owner:
    for eni in instance.get("NetworkInterfaces", ()):
        if eni.get("Attachment", {}).get("DeviceIndex") == 0:
            return eni["NetworkInterfaceId"], tuple(g["GroupId"] for g in eni.get("Groups", ()))
    return None, tuple(g["GroupId"] for g in instance.get("SecurityGroups", ()))


def ip_enis(clients: AwsClients, vpc_id: str, ips: list[str], failures: list[ReadFailure]) -> dict[str, Owner]:
    found: dict[str, Owner] = {}
    unread: set[str] = set()
    for batch in chunks(ips, EC2_FILTER_VALUES):
        answer = attempt(
            failures, "ec2", "DescribeNetworkInterfaces",
            lambda: paginate(clients.ec2, "describe_network_interfaces", "NetworkInterfaces", EC2_PAGE,
                             Filters=[{"Name": "vpc-id", "Values": [vpc_id]},
                                      {"Name": "addresses.private-ip-address", "Values": batch}]),
            scope_of(batch))
        if answer is not None:
            found.update(owners(answer, batch))
        else:
            unread.update(batch)  # unknown, not unowned: no prefix search can tell them apart
    missing = [ip for ip in ips if ip not in found and ip not in unread]
    if missing:
        found.update(_from_prefixes(clients, vpc_id, missing, failures))
    return found


def _from_prefixes(clients: AwsClients, vpc_id: str, ips: list[str], failures: list[ReadFailure]) -> dict[str, Owner]:
    """Addresses no address filter matched: look through the ENIs of the subnets they fall in for
    a delegated prefix that holds them. Costs two listings, and only when such addresses exist."""
    subnets = attempt(failures, "ec2", "DescribeSubnets",
                      lambda: paginate(clients.ec2, "describe_subnets", "Subnets", EC2_PAGE,
                                       Filters=[{"Name": "vpc-id", "Values": [vpc_id]}]), vpc_id)
    if subnets is None:
        return {}
    wanted = sorted({s["SubnetId"] for s in subnets for ip in ips if _inside(ip, [s.get("CidrBlock", "")])})
    found: dict[str, Owner] = {}
    complete = True
    for batch in chunks(wanted, EC2_FILTER_VALUES):
        answer = attempt(failures, "ec2", "DescribeNetworkInterfaces",
                         lambda: paginate(clients.ec2, "describe_network_interfaces", "NetworkInterfaces", EC2_PAGE,
                                          Filters=[{"Name": "subnet-id", "Values": batch}]),
                         scope_of(batch))
        if answer is not None:
            found.update(owners(answer, ips))
        else:
            complete = False
    still = [ip for ip in ips if ip not in found]
    if still and complete:
        # Say so rather than guess which ENI it is on: those paths stay unknown.
        failures.append(ReadFailure("ec2", "DescribeNetworkInterfaces", "NoMatchingInterface",
                                    "no ENI in the VPC owns these target addresses", scope_of(still)))
    return found


def owners(enis: Iterable[dict], ips: Iterable[str]) -> dict[str, Owner]:
    """Pure: which of `enis` (DescribeNetworkInterfaces items) owns each of `ips`, by address or prefix."""
    wanted = set(ips)
    found: dict[str, Owner] = {}
    for eni in enis:
        owner = (eni["NetworkInterfaceId"], tuple(g["GroupId"] for g in eni.get("Groups", ())))
        for address in eni.get("PrivateIpAddresses", ()):
            if address.get("PrivateIpAddress") in wanted:
                found[address["PrivateIpAddress"]] = owner
        prefixes = [p.get("Ipv4Prefix", "") for p in eni.get("Ipv4Prefixes", ())]
        if prefixes:
            for ip in wanted - found.keys():
                if _inside(ip, prefixes):
                    found[ip] = owner
    return found


def _inside(ip: str, networks: Iterable[str]) -> bool:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    for network in networks:
        try:
            if address in ipaddress.ip_network(network, strict=False):
                return True
        except ValueError:
            continue
    return False
