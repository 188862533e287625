"""Which ENIs own the addresses of ip targets registered outside their target group's VPC
(`AvailabilityZone=all`: a peered VPC, on premises), looked up in every VPC of the account and region.

Addresses are unique only within a VPC, so an address may be owned in several VPCs at once; the
caller decides what that means. An address whose lookup failed is unread, never unowned.
"""

from __future__ import annotations

from collections import defaultdict

from monitor.aws import enis
from monitor.aws.calls import EC2_FILTER_VALUES, EC2_PAGE, attempt, chunks, paginate, scope_of
from monitor.aws.session import AwsClients
from monitor.core.model import ReadFailure

Owned = tuple[str, enis.Owner]  # (the ENI's VPC, the ENI and its security groups)


def owners_anywhere(clients: AwsClients, ips: list[str], failures: list[ReadFailure]
                    ) -> tuple[dict[str, list[Owned]], set[str]]:
    """Every ENI owning each address in the account and region, and the addresses whose lookup
    failed. An address absent from both is owned by no ENI the account can read."""
    found: dict[str, list[Owned]] = defaultdict(list)
    unread: set[str] = set()
    ipv4 = [ip for ip in ips if enis.ip_version(ip) == 4]
    for batch in chunks(ipv4, EC2_FILTER_VALUES):
        answer = attempt(
            failures, "ec2", "DescribeNetworkInterfaces",
            lambda: paginate(clients.ec2, "describe_network_interfaces", "NetworkInterfaces", EC2_PAGE,
                             Filters=[{"Name": "addresses.private-ip-address", "Values": batch}]),
            scope_of(batch))
        if answer is None:
            unread.update(batch)
        else:
            _collect(answer, batch, found)
    missing = [ip for ip in ips if ip not in found and ip not in unread]
    if missing:
        unread.update(_by_subnet(clients, missing, failures, found))
    return dict(found), unread


def _by_subnet(clients: AwsClients, ips: list[str], failures: list[ReadFailure],
               found: dict[str, list[Owned]]) -> set[str]:
    """Addresses no address filter matched (inside a delegated prefix, or IPv6): the ENIs of the
    account's subnets they fall in. An on-premises address falls in none, and costs one listing."""
    subnets = attempt(failures, "ec2", "DescribeSubnets",
                      lambda: paginate(clients.ec2, "describe_subnets", "Subnets", EC2_PAGE), "the account's subnets")
    if subnets is None:
        return set(ips)
    inside: dict[str, set[str]] = defaultdict(set)  # subnet id -> the addresses it holds
    for subnet in subnets:
        for ip in ips:
            if enis.inside(ip, enis.subnet_cidrs(subnet)):
                inside[subnet["SubnetId"]].add(ip)
    unread: set[str] = set()
    for batch in chunks(sorted(inside), EC2_FILTER_VALUES):
        answer = attempt(failures, "ec2", "DescribeNetworkInterfaces",
                         lambda: paginate(clients.ec2, "describe_network_interfaces", "NetworkInterfaces", EC2_PAGE,
                                          Filters=[{"Name": "subnet-id", "Values": batch}]),
                         scope_of(batch))
        held = sorted({ip for subnet in batch for ip in inside[subnet]})
        if answer is None:
            unread.update(held)
        else:
            _collect(answer, held, found)
    return unread


def _collect(answer: list[dict], ips: list[str], found: dict[str, list[Owned]]) -> None:
    for eni in answer:
        for ip, owner in enis.owners([eni], ips).items():
            if (eni.get("VpcId", ""), owner) not in found[ip]:
                found[ip].append((eni.get("VpcId", ""), owner))

