"""Which ENI a target's traffic arrives on, and that ENI's security groups.

An instance target: the instance's primary ENI. An ip target: the ENI that owns the address, as a
primary or secondary private address (VPC CNI), a branch ENI's address (security groups for pods),
an IPv6 address of the ENI, or inside an IPv4 or IPv6 prefix delegated to the ENI (VPC CNI prefix
mode, and every IPv6 cluster), which no address filter matches.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import NamedTuple

from monitor.aws.calls import EC2_FILTER_VALUES, EC2_PAGE, attempt, chunks, confirm_absent, paginate, scope_of
from monitor.aws.session import AwsClients
from monitor.core.model import ReadFailure



class Owner(NamedTuple):
    """The ENI a target's traffic arrives on: its security groups, and its subnet and VPC (whose
    network ACL filters that traffic)."""

    eni_id: str | None
    groups: tuple[str, ...]
    subnet_id: str | None = None
    vpc_id: str | None = None


GONE = "gone"  # an instance target whose instance no longer exists


def instance_enis(clients: AwsClients, instance_ids: list[str], failures: list[ReadFailure],
                  addresses: dict[str, str] | None = None) -> dict[str, Owner | str]:
    """Each instance's primary ENI (or GONE); `addresses` receives each one's primary private
    IPv4 address, where a load balancer sends its traffic."""
    found: dict[str, Owner | str] = {}
    for batch in chunks(instance_ids, EC2_FILTER_VALUES):
        reservations = attempt(
            failures, "ec2", "DescribeInstances",
            lambda: paginate(clients.ec2, "describe_instances", "Reservations", EC2_PAGE,
                             Filters=[{"Name": "instance-id", "Values": batch}]),
            scope_of(batch))
        if reservations == []:
            # Every instance of the batch gone, while its targets are in service: asked again by id,
            # where AWS names an instance that does not exist (NotFound).
            reservations = confirm_absent(
                failures, "ec2", "DescribeInstances",
                lambda: clients.ec2.describe_instances(InstanceIds=batch)["Reservations"], scope_of(batch))
        if reservations is None:
            continue
        for reservation in reservations:
            for instance in reservation.get("Instances", ()):
                found[instance["InstanceId"]] = primary_eni(instance)
                if addresses is not None and instance.get("PrivateIpAddress"):
                    addresses[instance["InstanceId"]] = instance["PrivateIpAddress"]
        for instance_id in batch:
            found.setdefault(instance_id, GONE)
    return found


def primary_eni(instance: dict) -> Owner:
    for eni in instance.get("NetworkInterfaces", ()):
        if eni.get("Attachment", {}).get("DeviceIndex") == 0:
            return _owner(eni)
    return Owner(None, tuple(g["GroupId"] for g in instance.get("SecurityGroups", ())),
                 instance.get("SubnetId"), instance.get("VpcId"))


def _owner(eni: dict) -> Owner:
    return Owner(eni["NetworkInterfaceId"], tuple(g["GroupId"] for g in eni.get("Groups", ())),
                 eni.get("SubnetId"), eni.get("VpcId"))


def ip_enis(clients: AwsClients, vpc_id: str, ips: list[str], failures: list[ReadFailure]) -> dict[str, Owner]:
    found: dict[str, Owner] = {}
    # The address filter matches IPv4 addresses only; IPv6 ones are looked up by subnet below.
    ipv4 = [ip for ip in ips if ip_version(ip) == 4]
    unread: set[str] = set()
    for batch in chunks(ipv4, EC2_FILTER_VALUES):
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
        found.update(_by_subnet(clients, vpc_id, missing, failures))
    return found


def _by_subnet(clients: AwsClients, vpc_id: str, ips: list[str], failures: list[ReadFailure]) -> dict[str, Owner]:
    """Addresses no address filter matched (inside a delegated IPv4 prefix, or IPv6 addresses, whose
    own filter not every EC2 endpoint serves): look through the ENIs of the subnets they fall in.
    Costs two listings, and only when such addresses exist."""
    subnets = attempt(failures, "ec2", "DescribeSubnets",
                      lambda: paginate(clients.ec2, "describe_subnets", "Subnets", EC2_PAGE,
                                       Filters=[{"Name": "vpc-id", "Values": [vpc_id]}]), vpc_id)
    if subnets is None:
        return {}
    wanted = sorted({s["SubnetId"] for s in subnets for ip in ips if inside(ip, subnet_cidrs(s))})
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


def subnet_cidrs(subnet: dict) -> list[str]:
    """A DescribeSubnets item's IPv4 CIDR and its associated IPv6 CIDRs."""
    return [c for c in (subnet.get("CidrBlock", ""), *ipv6_cidrs(subnet)) if c]


# Association states of a subnet's IPv6 block that mean no address in it is in use (EC2 API,
# SubnetCidrBlockState); "associating" and "associated" blocks count.
_RETIRED = frozenset({"disassociating", "disassociated", "failing", "failed"})


def ipv6_cidrs(subnet: dict) -> tuple[str, ...]:
    """A DescribeSubnets item's IPv6 CIDRs, but for those being or already taken off the subnet."""
    return tuple(sorted(a["Ipv6CidrBlock"] for a in subnet.get("Ipv6CidrBlockAssociationSet", ())
                        if a.get("Ipv6CidrBlock") and a.get("Ipv6CidrBlockState", {}).get("State") not in _RETIRED))


def owners(enis: Iterable[dict], ips: Iterable[str]) -> dict[str, Owner]:
    """Pure: which of `enis` (DescribeNetworkInterfaces items) owns each of `ips`, by address
    (IPv4 or IPv6, however the address is written) or by a delegated IPv4 or IPv6 prefix."""
    wanted: dict[object, str] = {}
    for ip in ips:
        try:
            wanted[ipaddress.ip_address(ip)] = ip
        except ValueError:
            continue
    found: dict[str, Owner] = {}
    for eni in enis:
        owner = _owner(eni)
        addresses = [a.get("PrivateIpAddress", "") for a in eni.get("PrivateIpAddresses", ())]
        addresses += [a.get("Ipv6Address", "") for a in eni.get("Ipv6Addresses", ())]
        for address in addresses:
            try:
                parsed = ipaddress.ip_address(address)
            except ValueError:
                continue
            if parsed in wanted:
                found[wanted[parsed]] = owner
        prefixes = [p.get("Ipv4Prefix", "") for p in eni.get("Ipv4Prefixes", ())]
        prefixes += [p.get("Ipv6Prefix", "") for p in eni.get("Ipv6Prefixes", ())]
        if prefixes:
            for ip in set(wanted.values()) - found.keys():
                if inside(ip, prefixes):
                    found[ip] = owner
    return found


def ip_version(ip: str) -> int | None:
    """4 or 6, or None for text that is no address."""
    try:
        return ipaddress.ip_address(ip).version
    except ValueError:
        return None


def inside(ip: str, networks: Iterable[str]) -> bool:
    """Whether the address lies in one of the networks (unparsable ones are skipped)."""
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
