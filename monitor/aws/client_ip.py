"""The reads that say where a network load balancer's clients come from, made at discovery: each
network target group's preserve_client_ip.enabled (one DescribeTargetGroupAttributes per target
group, the API takes one) and the CIDRs of the VPCs of internal NLBs (one DescribeVpcs per 200).
"""

from __future__ import annotations

from monitor.aws.calls import EC2_FILTER_VALUES, EC2_PAGE, attempt, chunks, contradiction, paginate, scope_of
from monitor.aws.session import AwsClients
from monitor.core.clients import NETWORK_PROTOCOLS, default_preserve
from monitor.core.model import ReadFailure

ATTRIBUTE = "preserve_client_ip.enabled"


def preserve_client_ip(clients: AwsClients, tg: dict, failures: list[ReadFailure]) -> bool | None:
    """The attribute for a network target group (AWS's default when the answer leaves it out),
    None when it could not be read. Other target groups are not asked (an ALB never preserves)."""
    if (tg.get("Protocol") or "").upper() not in NETWORK_PROTOCOLS:
        return None
    answer = attempt(failures, "elbv2", "DescribeTargetGroupAttributes",
                     lambda: clients.elbv2.describe_target_group_attributes(TargetGroupArn=tg["TargetGroupArn"]),
                     tg["TargetGroupArn"])
    if answer is None:
        return None
    attributes = {a.get("Key"): a.get("Value") for a in answer.get("Attributes", ())}
    value = attributes.get(ATTRIBUTE)
    if value is None:
        return default_preserve(tg.get("TargetType", ""), tg.get("Protocol", ""))
    return str(value).lower() == "true"


def vpc_cidrs(clients: AwsClients, vpc_ids: list[str], failures: list[ReadFailure]) -> dict[str, tuple[str, ...]]:
    """Each VPC's associated IPv4 and IPv6 CIDRs; a VPC missing from the answer was not read."""
    found: dict[str, tuple[str, ...]] = {}
    for batch in chunks(sorted(vpc_ids), EC2_FILTER_VALUES):
        raw = attempt(failures, "ec2", "DescribeVpcs",
                      lambda: paginate(clients.ec2, "describe_vpcs", "Vpcs", EC2_PAGE,
                                       Filters=[{"Name": "vpc-id", "Values": batch}]),
                      scope_of(batch))
        for vpc in raw or ():
            cidrs = {a["CidrBlock"] for a in vpc.get("CidrBlockAssociationSet", ())
                     if a.get("CidrBlock") and a.get("CidrBlockState", {}).get("State", "associated") == "associated"}
            cidrs.update(a["Ipv6CidrBlock"] for a in vpc.get("Ipv6CidrBlockAssociationSet", ())
                         if a.get("Ipv6CidrBlock")
                         and a.get("Ipv6CidrBlockState", {}).get("State", "associated") == "associated")
            if not cidrs and vpc.get("CidrBlock"):
                cidrs.add(vpc["CidrBlock"])
            found[vpc["VpcId"]] = tuple(sorted(cidrs))
        unlisted = [v for v in batch if v not in found]
        if raw is not None and unlisted:
            # A VPC cannot be deleted while a load balancer is in it.
            contradiction(failures, "ec2", "DescribeVpcs", "load balancers' VPCs not listed", scope_of(unlisted))
    return found
