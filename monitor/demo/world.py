"""Seeds a moto server with a realistic EKS cluster halfway through the v1 -> v2 migration.

Tags, names and descriptions follow docs/controllers.md exactly, so the monitor sees what it would see in a
real account: two v1 ALBs, an adopted one, a v2 one with the shared backend SG, an Ingress with a
user-made SG, ip targets behind pod security groups, and a node group with two SGs. This module is
a simulator, not part of the monitor: it uses boto3 directly to build the world.
"""

from __future__ import annotations

import hashlib
import logging
import zlib
from dataclasses import dataclass, field
from typing import Any

import boto3

from monitor.core import controllers

ACCOUNT = "123456789012"
AMI = "ami-12c6146b"  # an image moto knows


@dataclass
class World:
    """Handles on what was built, for stories and tests (all ids are moto's)."""

    endpoint: str
    region: str
    cluster: str
    vpc_id: str = ""
    subnets: dict[str, str] = field(default_factory=dict)
    sg: dict[str, str] = field(default_factory=dict)
    lb: dict[str, str] = field(default_factory=dict)  # key -> ARN
    lb_name: dict[str, str] = field(default_factory=dict)
    lb_dns: dict[str, str] = field(default_factory=dict)
    tg: dict[str, str] = field(default_factory=dict)
    rule: dict[str, str] = field(default_factory=dict)  # key -> security group rule id
    revoked: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> the rule as it was, for restore()
    instances: dict[str, list[str]] = field(default_factory=dict)

    def clients(self) -> dict[str, Any]:
        return aws_clients(self.endpoint, self.region)


def aws_clients(endpoint: str, region: str) -> dict[str, Any]:
    return {name: boto3.client(name, region_name=region, endpoint_url=endpoint,
                               aws_access_key_id="demo", aws_secret_access_key="demo")
            for name in ("ec2", "elbv2", "iam")}


def start_moto(port: int = 0) -> tuple[Any, str]:
    """A moto server on a loopback port (0: a free one); returns (server, endpoint URL)."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}"


def v1_name(cluster: str, namespace: str, ingress: str) -> str:
    """The v1 ALB name: crc32(cluster) prefix, namespace and name, alnum, cut to 26, 4 hex of md5."""
    prefix = f"{zlib.crc32(cluster.encode()):08x}"
    alnum = lambda s: "".join(c for c in s if c.isalnum())  # noqa: E731
    digest = hashlib.md5((namespace + ingress).encode()).hexdigest()[:4]
    return f"{prefix}-{alnum(namespace)}-{alnum(ingress)}"[:26] + "-" + digest


def v2_name(cluster: str, namespace: str, name: str, salt: str = "") -> str:
    """The v2 name: k8s-<ns8>-<name8>-<10 hex of a hash that covers the cluster and the stack>."""
    digest = hashlib.sha256(f"{cluster}:{namespace}/{name}{salt}".encode()).hexdigest()[:10]
    return f"k8s-{namespace[:8]}-{name[:8]}-{digest}"


def seed(endpoint: str, region: str = "ap-northeast-1", cluster: str = "demo-eks", extra_albs: int = 0) -> World:
    """Build the world; `extra_albs` adds that many v2 ALBs sharing the backend SG (for scale)."""
    world = World(endpoint=endpoint, region=region, cluster=cluster)
    c = world.clients()
    ec2, elbv2 = c["ec2"], c["elbv2"]
    _network(world, ec2)
    _node_groups(world, ec2)
    _shop_v1(world, ec2, elbv2)
    _blog_v1(world, ec2, elbv2)
    _payments_adopted(world, ec2, elbv2)
    _checkout_v2(world, ec2, elbv2)
    _marketing_user_sg(world, ec2, elbv2)
    _other_cluster(world, ec2, elbv2)
    for i in range(extra_albs):
        _extra_v2(world, ec2, elbv2, i)
    _backend_rule(world, ec2)
    return world


# --- mutations the stories and tests apply, each as the controller or a person would -----------

def revoke(world: World, rule_key: str) -> None:
    """Revoke a node rule by its id, as the v2 controller does."""
    ec2 = world.clients()["ec2"]
    rule = ec2.describe_security_group_rules(SecurityGroupRuleIds=[world.rule[rule_key]])["SecurityGroupRules"][0]
    world.revoked[rule_key] = rule
    ec2.revoke_security_group_ingress(GroupId=rule["GroupId"], SecurityGroupRuleIds=[world.rule[rule_key]])


def restore(world: World, rule_key: str) -> None:
    """Authorize a revoked rule's tuple again, as a person repairing it by hand does (same group,
    protocol, ports, source and description; AWS gives it a new rule id, kept in world.rule)."""
    rule = world.revoked.pop(rule_key)
    ec2 = world.clients()["ec2"]
    world.rule[rule_key] = _authorize(ec2, rule["GroupId"], rule["IpProtocol"], rule["FromPort"], rule["ToPort"],
                                      source=rule.get("ReferencedGroupInfo", {}).get("GroupId"),
                                      cidr=rule.get("CidrIpv4"), description=rule.get("Description") or None)


def describe_rule(world: World, rule_key: str, description: str) -> None:
    """Set a rule's description the way the migration guide's CLI recipe does."""
    ec2 = world.clients()["ec2"]
    _set_description(ec2, _rule_group(ec2, world.rule[rule_key]), world.rule[rule_key], description)


def label_with_shared(world: World, rule_key: str) -> None:
    describe_rule(world, rule_key, f"{controllers.SHARED_LABEL_KEY}={controllers.SHARED_LABEL_VALUE}")


# --- building blocks ---------------------------------------------------------------------------

def harden_network_acl(world: World, subnet_key: str, rule_number: int, ports: tuple[int, int]) -> str:
    """Put a subnet behind a new network ACL, as a network team tightening it would: allow all, but
    rule `rule_number` denies tcp `ports` from the whole VPC. Returns the ACL's id."""
    ec2 = world.clients()["ec2"]
    acl = ec2.create_network_acl(VpcId=world.vpc_id)["NetworkAcl"]["NetworkAclId"]
    ec2.create_network_acl_entry(NetworkAclId=acl, RuleNumber=rule_number, Protocol="6", RuleAction="deny",
                                 Egress=False, CidrBlock="10.20.0.0/16", PortRange={"From": ports[0], "To": ports[1]})
    for egress in (False, True):
        ec2.create_network_acl_entry(NetworkAclId=acl, RuleNumber=100, Protocol="-1", RuleAction="allow",
                                     Egress=egress, CidrBlock="0.0.0.0/0")
    subnet = world.subnets[subnet_key]
    (current,) = ec2.describe_network_acls(
        Filters=[{"Name": "association.subnet-id", "Values": [subnet]}])["NetworkAcls"]
    association = next(a["NetworkAclAssociationId"] for a in current["Associations"] if a["SubnetId"] == subnet)
    ec2.replace_network_acl_association(AssociationId=association, NetworkAclId=acl)
    return acl


def _network(world: World, ec2: Any) -> None:
    world.vpc_id = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    layout = {"public-a": ("10.20.0.0/24", "a"), "public-c": ("10.20.1.0/24", "c"),
              "private-a": ("10.20.10.0/24", "a"), "private-c": ("10.20.11.0/24", "c")}
    for key, (cidr, zone) in layout.items():
        world.subnets[key] = ec2.create_subnet(VpcId=world.vpc_id, CidrBlock=cidr,
                                               AvailabilityZone=f"{world.region}{zone}")["Subnet"]["SubnetId"]
    cluster = world.cluster
    _group(world, ec2, "cluster", f"eks-cluster-sg-{cluster}-1234567890",
           "EKS created security group applied to ENI that is attached to EKS Control Plane master nodes, "
           "as well as any managed workloads.",
           {controllers.cluster_tag(cluster): "owned", "Name": f"eks-cluster-sg-{cluster}-1234567890"})
    _group(world, ec2, "legacy_extra", f"{cluster}-ng-legacy-remote-access",
           "Remote access to the legacy node group", {"Name": f"{cluster}-ng-legacy-remote-access"})
    _group(world, ec2, "backend", f"k8s-traffic-{cluster}-4f1d9c2b7a",
           controllers.V2_BACKEND_SG_DESCRIPTION,
           {controllers.V2_CLUSTER_TAG: cluster, controllers.V2_RESOURCE_TAG: "backend-sg"})
    _group(world, ec2, "payments_pods", "payments-ledger-pods", "Pods of payments/ledger (security groups for pods)",
           {"team": "payments"})


def _node_groups(world: World, ec2: Any) -> None:
    world.instances["general"] = _run(ec2, world.subnets["private-a"], [world.sg["cluster"]], 2, "general")
    world.instances["general"] += _run(ec2, world.subnets["private-c"], [world.sg["cluster"]], 1, "general")
    world.instances["legacy"] = _run(ec2, world.subnets["private-a"],
                                     [world.sg["cluster"], world.sg["legacy_extra"]], 2, "legacy")


def _run(ec2: Any, subnet: str, groups: list[str], count: int, nodegroup: str) -> list[str]:
    answer = ec2.run_instances(ImageId=AMI, MinCount=count, MaxCount=count, SubnetId=subnet,
                               SecurityGroupIds=groups, InstanceType="m5.large",
                               TagSpecifications=[{"ResourceType": "instance", "Tags": [
                                   {"Key": "eks:nodegroup-name", "Value": nodegroup}]}])
    return [i["InstanceId"] for i in answer["Instances"]]


def _v1_tags(world: World, namespace: str, ingress: str) -> dict[str, str]:
    return {controllers.cluster_tag(world.cluster): "owned", controllers.V1_NAMESPACE_TAG: namespace,
            controllers.V1_INGRESS_NAME_TAG: ingress, controllers.V1_CLUSTER_TAG: world.cluster,
            controllers.V1_STACK_TAG: f"{namespace}/{ingress}", controllers.V1_RESOURCE_TAG: "LoadBalancer"}


def _v2_tags(world: World, namespace: str, ingress: str) -> dict[str, str]:
    return {controllers.V2_CLUSTER_TAG: world.cluster, controllers.V1_STACK_TAG: f"{namespace}/{ingress}",
            controllers.V1_RESOURCE_TAG: "LoadBalancer"}


def _v1_managed_sg(world: World, ec2: Any, key: str, name: str, namespace: str, ingress: str) -> str:
    group = _group(world, ec2, key, name, controllers.V1_MANAGED_SG_DESCRIPTION, {
        controllers.V1_SG_CLUSTER_TAG: world.cluster, controllers.V1_RESOURCE_TAG: "ManagedLBSecurityGroup",
        controllers.V1_CLUSTER_TAG: world.cluster, controllers.V1_STACK_TAG: f"{namespace}/{ingress}"})
    _authorize(ec2, group, "tcp", 80, 80, cidr="0.0.0.0/0")
    _authorize(ec2, group, "tcp", 443, 443, cidr="0.0.0.0/0")
    return group


def _shop_v1(world: World, ec2: Any, elbv2: Any) -> None:
    """v1 ALB, instance targets on the general nodes, health checks on their own NodePort."""
    name = v1_name(world.cluster, "shop", "frontend")
    sg = _v1_managed_sg(world, ec2, "shop_alb", name, "shop", "frontend")
    _alb(world, elbv2, "shop", name, [sg], _v1_tags(world, "shop", "frontend"))
    _target_group(world, elbv2, "shop", "shop", f"{name[:8]}-7e1c04a9b2f3d5e60c1", "instance",
                  [(i, 30080) for i in world.instances["general"]], health_port="30081")
    # v1's node rule: all TCP from the managed ALB SG, no description (docs/controllers.md).
    world.rule["shop_v1"] = _authorize(ec2, world.sg["cluster"], "tcp", 0, 65535, source=sg)


def _blog_v1(world: World, ec2: Any, elbv2: Any) -> None:
    """v1 ALB whose targets are the legacy nodes with two SGs (only the cluster SG is tagged)."""
    name = v1_name(world.cluster, "blog", "web")
    sg = _v1_managed_sg(world, ec2, "blog_alb", name, "blog", "web")
    _alb(world, elbv2, "blog", name, [sg], _v1_tags(world, "blog", "web"))
    _target_group(world, elbv2, "blog", "blog", f"{name[:8]}-3b9a61f07d2ce4851aa", "instance",
                  [(i, 31000) for i in world.instances["legacy"]])
    world.rule["blog_v1"] = _authorize(ec2, world.sg["cluster"], "tcp", 0, 65535, source=sg)


def _payments_adopted(world: World, ec2: Any, elbv2: Any) -> None:
    """A v1 ALB adopted by v2: both tag sets, v1's managed SG plus the backend SG; ip targets on
    branch ENIs with their own pod SG (security groups for pods)."""
    name = v1_name(world.cluster, "payments", "api")
    sg = _v1_managed_sg(world, ec2, "payments_alb", name, "payments", "api")
    ec2.create_tags(Resources=[sg], Tags=[{"Key": controllers.V2_CLUSTER_TAG, "Value": world.cluster}])
    tags = {**_v1_tags(world, "payments", "api"), controllers.V2_CLUSTER_TAG: world.cluster}
    _alb(world, elbv2, "payments", name, [sg, world.sg["backend"]], tags)
    pods = _pod_enis(world, ec2, ("10.20.10.101", "10.20.11.102"), world.sg["payments_pods"], 8443,
                     "aws-k8s-branch-eni")
    _target_group(world, elbv2, "payments", "payments", v2_name(world.cluster, "payments", "api-ledger", "tg")[:32], "ip", pods)
    # v1's rule on the pod SG, labelled by the team as the migration guide says (correctly: its
    # source is the v1-managed SG), and v2's own labelled rule from the backend SG.
    world.rule["payments_v1"] = _authorize(ec2, world.sg["payments_pods"], "tcp", 0, 65535, source=sg,
                                           description=_label())
    world.rule["payments_v2"] = _authorize(ec2, world.sg["payments_pods"], "tcp", 8443, 8443,
                                           source=world.sg["backend"], description=_label())


def _checkout_v2(world: World, ec2: Any, elbv2: Any) -> None:
    """A v2 ALB: managed SG plus the backend SG, ip targets on pod addresses in the node SG."""
    name = v2_name(world.cluster, "checkout", "storefront")
    sg = _group(world, ec2, "checkout_alb", name, controllers.V2_MANAGED_SG_DESCRIPTION, {
        controllers.V2_CLUSTER_TAG: world.cluster, controllers.V1_STACK_TAG: "checkout/storefront",
        controllers.V1_RESOURCE_TAG: "ManagedLBSecurityGroup"})
    _authorize(ec2, sg, "tcp", 443, 443, cidr="0.0.0.0/0")
    _alb(world, elbv2, "checkout", name, [sg, world.sg["backend"]], _v2_tags(world, "checkout", "storefront"))
    # Pod addresses on VPC CNI ENIs carry the node's SG.
    pods = _pod_enis(world, ec2, ("10.20.10.201", "10.20.11.202"), world.sg["cluster"], 8080, "aws-K8S-i-node")
    _target_group(world, elbv2, "checkout", "checkout", v2_name(world.cluster, "checkout", "storefront", "tg")[:32], "ip", pods,
                  health_port="8081")


def _pod_enis(world: World, ec2: Any, ips: tuple[str, ...], group: str, port: int,
              description: str) -> list[tuple[str, int]]:
    """One ENI per pod address, alternating the two private subnets; returns (ip, port) targets.
    (moto matches only primary addresses in the address filter, so each pod address is an ENI's
    primary here; AWS also matches secondary ones.)"""
    for index, ip in enumerate(ips):
        subnet = world.subnets["private-a" if index % 2 == 0 else "private-c"]
        ec2.create_network_interface(SubnetId=subnet, Groups=[group], PrivateIpAddress=ip, Description=description)
    return [(ip, port) for ip in ips]


def _marketing_user_sg(world: World, ec2: Any, elbv2: Any) -> None:
    """An Ingress with alb.ingress.kubernetes.io/security-groups: the team made the ALB SG and the
    node rule themselves; no controller manages that rule (docs/controllers.md, "User-made security groups")."""
    sg = _group(world, ec2, "marketing_alb", "marketing-landing-alb",
                "ALB for the marketing landing pages (web team)", {"team": "web"})
    _authorize(ec2, sg, "tcp", 443, 443, cidr="0.0.0.0/0")
    name = v2_name(world.cluster, "marketing", "landing")
    _alb(world, elbv2, "marketing", name, [sg], _v2_tags(world, "marketing", "landing"))
    _target_group(world, elbv2, "marketing", "marketing", v2_name(world.cluster, "marketing", "landing", "tg")[:32], "instance",
                  [(i, 30900) for i in world.instances["general"]])
    world.rule["marketing_user"] = _authorize(ec2, world.sg["cluster"], "tcp", 0, 65535, source=sg,
                                              description="marketing ALB to nodes")


def _other_cluster(world: World, ec2: Any, elbv2: Any) -> None:
    """Another cluster's ALB in the same account and region: never ours to report."""
    name = v2_name(f"{world.cluster}-staging", "default", "staging")
    sg = _group(world, ec2, "other_alb", name, controllers.V2_MANAGED_SG_DESCRIPTION,
                {controllers.V2_CLUSTER_TAG: "staging-eks"})
    _alb(world, elbv2, "other", name, [sg],
         {controllers.V2_CLUSTER_TAG: "staging-eks", controllers.V1_STACK_TAG: "default/staging"})


def _extra_v2(world: World, ec2: Any, elbv2: Any, index: int) -> None:
    namespace, ingress = f"team{index:03d}", "web"
    name = v2_name(world.cluster, namespace, ingress)
    sg = _group(world, ec2, f"extra{index}_alb", name, controllers.V2_MANAGED_SG_DESCRIPTION,
                {controllers.V2_CLUSTER_TAG: world.cluster, controllers.V1_STACK_TAG: f"{namespace}/{ingress}"})
    _alb(world, elbv2, f"extra{index}", name, [sg, world.sg["backend"]], _v2_tags(world, namespace, ingress))
    _target_group(world, elbv2, f"extra{index}", f"extra{index}", v2_name(world.cluster, namespace, ingress, "tg")[:32],
                  "instance", [(i, 32000 + index) for i in world.instances["general"]])


def _backend_rule(world: World, ec2: Any) -> None:
    """v2's one merged rule from the backend SG on the node SG: min-max of every port it needs."""
    ports = [8080, 8081] + [32000 + int(k[5:-4]) for k in world.sg if k.startswith("extra")]
    world.rule["backend_nodes"] = _authorize(ec2, world.sg["cluster"], "tcp", min(ports), max(ports),
                                             source=world.sg["backend"], description=_label())


def _label() -> str:
    return f"{controllers.SHARED_LABEL_KEY}={controllers.SHARED_LABEL_VALUE}"


def _group(world: World, ec2: Any, key: str, name: str, description: str, tags: dict[str, str]) -> str:
    group = ec2.create_security_group(GroupName=name, Description=description, VpcId=world.vpc_id,
                                      TagSpecifications=[{"ResourceType": "security-group",
                                                          "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}])
    world.sg[key] = group["GroupId"]
    return group["GroupId"]


def _authorize(ec2: Any, group: str, protocol: str, from_port: int, to_port: int, *, source: str | None = None,
               cidr: str | None = None, description: str | None = None) -> str:
    permission: dict[str, Any] = {"IpProtocol": protocol, "FromPort": from_port, "ToPort": to_port}
    if source:
        permission["UserIdGroupPairs"] = [{"GroupId": source, **({"Description": description} if description else {})}]
    else:
        permission["IpRanges"] = [{"CidrIp": cidr, **({"Description": description} if description else {})}]
    answer = ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[permission])
    rule_id = answer["SecurityGroupRules"][0]["SecurityGroupRuleId"]
    if description:
        # moto keeps a description given at authorize time out of DescribeSecurityGroupRules;
        # setting it again through the rule makes both views agree, as they do on AWS.
        _set_description(ec2, group, rule_id, description)
    return rule_id


def _set_description(ec2: Any, group: str, rule_id: str, description: str) -> None:
    rule = ec2.describe_security_group_rules(SecurityGroupRuleIds=[rule_id])["SecurityGroupRules"][0]
    spec: dict[str, Any] = {"IpProtocol": rule["IpProtocol"], "FromPort": rule["FromPort"],
                            "ToPort": rule["ToPort"], "Description": description}
    if rule.get("ReferencedGroupInfo", {}).get("GroupId"):
        spec["ReferencedGroupId"] = rule["ReferencedGroupInfo"]["GroupId"]
    else:
        spec["CidrIpv4"] = rule["CidrIpv4"]
    ec2.modify_security_group_rules(GroupId=group, SecurityGroupRules=[
        {"SecurityGroupRuleId": rule_id, "SecurityGroupRule": spec}])


def _rule_group(ec2: Any, rule_id: str) -> str:
    return ec2.describe_security_group_rules(SecurityGroupRuleIds=[rule_id])["SecurityGroupRules"][0]["GroupId"]


def _alb(world: World, elbv2: Any, key: str, name: str, groups: list[str], tags: dict[str, str]) -> None:
    lb = elbv2.create_load_balancer(Name=name, Subnets=[world.subnets["public-a"], world.subnets["public-c"]],
                                    SecurityGroups=groups, Scheme="internet-facing", Type="application",
                                    Tags=[{"Key": k, "Value": v} for k, v in tags.items()])["LoadBalancers"][0]
    world.lb[key] = lb["LoadBalancerArn"]
    world.lb_name[key] = name
    world.lb_dns[key] = lb["DNSName"]


def _target_group(world: World, elbv2: Any, key: str, lb_key: str, name: str, target_type: str,
                  targets: list[tuple[str, int]], health_port: str = "traffic-port") -> None:
    # Health checks as frequent as AWS allows (5 s apart, 2 failures, 2 s timeout: a 12 s window), so
    # that the ELB's word on a cut comes within the story's 40 seconds.
    tg = elbv2.create_target_group(Name=name, Protocol="HTTP", Port=targets[0][1] if targets else 80,
                                   VpcId=world.vpc_id, TargetType=target_type, HealthCheckPort=health_port,
                                   HealthCheckIntervalSeconds=5, HealthCheckTimeoutSeconds=2,
                                   UnhealthyThresholdCount=2)["TargetGroups"][0]
    world.tg[key] = tg["TargetGroupArn"]
    elbv2.create_listener(LoadBalancerArn=world.lb[lb_key], Protocol="HTTP", Port=80,
                          DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}])
    if targets:
        elbv2.register_targets(TargetGroupArn=tg["TargetGroupArn"],
                               Targets=[{"Id": target, "Port": port} for target, port in targets])
