"""A small AWS world on a moto server, built over HTTP with boto3 as a user would build it:
one VPC, a node SG admitting each ALB's SG, one instance, and per Ingress an ALB tagged by the
v2 controller with a target group holding the instance behind a listener."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

import boto3
from moto.server import ThreadedMotoServer

REGION = "us-east-1"
CLUSTER = "shop"
NODE_PORT = 30080
V2_MANAGED_SG_DESCRIPTION = "[k8s] Managed SecurityGroup for LoadBalancer"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto() -> tuple[ThreadedMotoServer, str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return server, f"http://127.0.0.1:{port}"


def env_for(endpoint: str) -> dict[str, str]:
    """The environment a process needs to talk to this world: dummy credentials, region, endpoint."""
    return {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION, "AWS_ENDPOINT_URL": endpoint}


@dataclass
class Alb:
    ingress: str
    name: str
    arn: str
    security_group: str
    target_group_arn: str
    node_rule_id: str


@dataclass
class World:
    endpoint: str
    vpc_id: str
    subnets: list[str]
    node_sg: str
    instance_id: str
    albs: dict[str, Alb] = field(default_factory=dict)

    def client(self, service: str):
        return boto3.client(service, region_name=REGION, endpoint_url=self.endpoint,
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def revoke_node_rule(self, ingress: str) -> None:
        """What the v2 controller's garbage collection does to a node rule (by rule ID: moto
        matches that reliably)."""
        self.client("ec2").revoke_security_group_ingress(
            GroupId=self.node_sg, SecurityGroupRuleIds=[self.albs[ingress].node_rule_id])

    def restore_node_rule(self, ingress: str) -> None:
        alb = self.albs[ingress]
        alb.node_rule_id = _authorize(self.client("ec2"), self.node_sg, alb.security_group)

    def delete_alb(self, ingress: str) -> None:
        self.client("elbv2").delete_load_balancer(LoadBalancerArn=self.albs[ingress].arn)


def build_world(endpoint: str, ingresses: tuple[str, ...] = ("web",), namespace: str = "shop") -> World:
    ec2 = boto3.client("ec2", region_name=REGION, endpoint_url=endpoint,
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    vpc_id = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc_id, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"{REGION}{az}")
               ["Subnet"]["SubnetId"] for i, az in ((1, "a"), (2, "b"))]
    node_sg = ec2.create_security_group(
        GroupName=f"eks-cluster-sg-{CLUSTER}-1234567890", Description="EKS created security group",
        VpcId=vpc_id, TagSpecifications=[{"ResourceType": "security-group",
                                          "Tags": [{"Key": f"kubernetes.io/cluster/{CLUSTER}", "Value": "owned"}]}],
    )["GroupId"]
    instance_id = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, InstanceType="m5.large",
                                    SubnetId=subnets[0], SecurityGroupIds=[node_sg])["Instances"][0]["InstanceId"]
    world = World(endpoint=endpoint, vpc_id=vpc_id, subnets=subnets, node_sg=node_sg, instance_id=instance_id)
    for ingress in ingresses:
        world.albs[ingress] = add_alb(world, namespace, ingress)
    return world


def add_alb(world: World, namespace: str, ingress: str) -> Alb:
    ec2, elbv2 = world.client("ec2"), world.client("elbv2")
    name = f"k8s-{namespace[:8]}-{ingress[:8]}-0123456789"[:32]
    alb_sg = ec2.create_security_group(GroupName=name, Description=V2_MANAGED_SG_DESCRIPTION, VpcId=world.vpc_id,
                                       TagSpecifications=[{"ResourceType": "security-group", "Tags": [
                                           {"Key": "elbv2.k8s.aws/cluster", "Value": CLUSTER}]}])["GroupId"]
    rule_id = _authorize(ec2, world.node_sg, alb_sg)
    lb = elbv2.create_load_balancer(
        Name=name, Subnets=world.subnets, SecurityGroups=[alb_sg], Scheme="internet-facing", Type="application",
        Tags=[{"Key": "elbv2.k8s.aws/cluster", "Value": CLUSTER},
              {"Key": "ingress.k8s.aws/stack", "Value": f"{namespace}/{ingress}"},
              {"Key": "ingress.k8s.aws/resource", "Value": "LoadBalancer"}],
    )["LoadBalancers"][0]
    tg = elbv2.create_target_group(Name=f"k8s-{ingress[:8]}-tg", Protocol="HTTP", Port=NODE_PORT, VpcId=world.vpc_id,
                                   TargetType="instance", HealthCheckPort="traffic-port")["TargetGroups"][0]
    elbv2.register_targets(TargetGroupArn=tg["TargetGroupArn"], Targets=[{"Id": world.instance_id, "Port": NODE_PORT}])
    elbv2.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=80,
                          DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}])
    return Alb(ingress=ingress, name=name, arn=lb["LoadBalancerArn"], security_group=alb_sg,
               target_group_arn=tg["TargetGroupArn"], node_rule_id=rule_id)


def _authorize(ec2, node_sg: str, source_sg: str) -> str:
    """The node rule as v1 made it: all TCP from the ALB's SG."""
    answer = ec2.authorize_security_group_ingress(GroupId=node_sg, IpPermissions=[{
        "IpProtocol": "tcp", "FromPort": 0, "ToPort": 65535, "UserIdGroupPairs": [{"GroupId": source_sg}]}])
    return answer["SecurityGroupRules"][0]["SecurityGroupRuleId"]
