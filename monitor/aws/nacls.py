"""The network ACLs of the load balancers' and targets' VPCs, read with the rules each check.

One paginated DescribeNetworkAcls per 200 VPCs (one request for a cluster's VPC), filtered by
vpc-id: an ACL's associations name the subnets it filters, and a subnet named by none is filtered by
its VPC's default ACL. A failed read, or a subnet whose ACL the answer does not determine, is a
ReadFailure: the paths through it are unknown.
"""

from __future__ import annotations

from monitor.aws.calls import EC2_FILTER_VALUES, EC2_PAGE, attempt, chunks, contradiction, paginate, scope_of
from monitor.aws.session import AwsClients
from monitor.core.model import NaclEntry, NetworkAcl, ReadFailure, Topology


def read_network_acls(clients: AwsClients, topology: Topology,
                      failures: list[ReadFailure]) -> tuple[tuple[NetworkAcl, ...], bool]:
    """The ACLs, and whether they were read (False: what they filter is unknown)."""
    subnets = _subnets(topology)  # subnet id -> its VPC
    vpcs = sorted({vpc for vpc in subnets.values() if vpc})
    if not vpcs:
        return (), True
    raw: list[dict] = []
    for batch in chunks(vpcs, EC2_FILTER_VALUES):
        found = attempt(failures, "ec2", "DescribeNetworkAcls",
                        lambda: paginate(clients.ec2, "describe_network_acls", "NetworkAcls", EC2_PAGE,
                                         Filters=[{"Name": "vpc-id", "Values": batch}]),
                        scope_of(batch))
        if found is None:
            return (), False
        raw.extend(found)
    acls = tuple(to_network_acl(item) for item in raw)
    associated = {s for acl in acls for s in acl.subnet_ids}
    defaults = {acl.vpc_id for acl in acls if acl.is_default}
    undetermined = sorted(s for s, vpc in subnets.items() if s not in associated and vpc not in defaults)
    if undetermined:
        # Every VPC has a default ACL, which filters every subnet associated with no other one.
        contradiction(failures, "ec2", "DescribeNetworkAcls",
                      "no network ACL listed for subnets, nor a default one for their VPC", scope_of(undetermined))
    return acls, True


def _subnets(topology: Topology) -> dict[str, str]:
    subnets: dict[str, str] = {}
    for lb in topology.load_balancers:
        for subnet in lb.subnets:
            subnets[subnet.subnet_id] = lb.vpc_id
    for tg in topology.target_groups:
        for target in tg.targets or ():
            if target.subnet_id:
                subnets[target.subnet_id] = target.vpc_id or tg.vpc_id
    return subnets


def to_network_acl(raw: dict) -> NetworkAcl:
    """One DescribeNetworkAcls item."""
    return NetworkAcl(
        acl_id=raw["NetworkAclId"],
        vpc_id=raw.get("VpcId", ""),
        is_default=bool(raw.get("IsDefault")),
        subnet_ids=tuple(sorted({a["SubnetId"] for a in raw.get("Associations", ()) if a.get("SubnetId")})),
        entries=tuple(_entry(e) for e in raw.get("Entries", ()) if e.get("CidrBlock") or e.get("Ipv6CidrBlock")),
    )


def _entry(raw: dict) -> NaclEntry:
    ports = raw.get("PortRange") or {}
    return NaclEntry(
        rule_number=int(raw["RuleNumber"]),
        egress=bool(raw.get("Egress")),
        protocol=str(raw.get("Protocol", "-1")),
        allow=raw.get("RuleAction") == "allow",
        cidr=raw.get("CidrBlock") or raw["Ipv6CidrBlock"],
        from_port=ports.get("From"),
        to_port=ports.get("To"),
    )
