"""The demo cluster's Kubernetes side and the v2 controller's IAM role, matching the AWS world."""

from __future__ import annotations

import json

from monitor.demo import kube_objects as k
from monitor.demo.world import ACCOUNT, World

SECURITY_GROUPS = "alb.ingress.kubernetes.io/security-groups"
TARGET_TYPE = "alb.ingress.kubernetes.io/target-type"


def controller_role_arn(world: World) -> str:
    return f"arn:aws:iam::{ACCOUNT}:role/{world.cluster}-aws-load-balancer-controller"


def create_controller_role(world: World, migration_policy: bool = False) -> str:
    """The v2 controller's IRSA role with its base policy and, optionally, the migration policy."""
    iam = world.clients()["iam"]
    name = controller_role_arn(world).rsplit("/", 1)[1]
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRoleWithWebIdentity",
             "Principal": {"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/oidc.eks.{world.region}.amazonaws.com/id/DEMO"}}]}
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
    iam.put_role_policy(RoleName=name, PolicyName="AWSLoadBalancerControllerIAMPolicy",
                        PolicyDocument=json.dumps(k.V2_BASE_POLICY))
    if migration_policy:
        attach_migration_policy(world)
    return controller_role_arn(world)


def attach_migration_policy(world: World) -> None:
    iam = world.clients()["iam"]
    iam.put_role_policy(RoleName=controller_role_arn(world).rsplit("/", 1)[1],
                        PolicyName="aws-lbc-v1-to-v2-migration", PolicyDocument=json.dumps(k.V1_TO_V2_ADDITIONAL_POLICY))


def objects(world: World, v1_running: bool = False) -> list[dict]:
    """Ingresses, Services, TargetGroupBindings, Nodes and both controllers' Deployments."""
    c = world.cluster
    out = [k.ingress_class("alb")]
    ingresses = {
        "shop": ("shop", "frontend", "frontend", {}, True),
        "blog": ("blog", "web", "web", {}, True),
        "payments": ("payments", "api", "ledger", {TARGET_TYPE: "ip"}, False),
        "checkout": ("checkout", "storefront", "storefront", {TARGET_TYPE: "ip"}, False),
        "marketing": ("marketing", "landing", "landing", {SECURITY_GROUPS: world.sg["marketing_alb"]}, False),
    }
    node_ports = {"shop": 30080, "blog": 31000, "marketing": 30900}
    for key, (namespace, name, service, annotations, legacy) in ingresses.items():
        out.append(k.ingress(namespace, name, service, annotations=annotations, hostname=world.lb_dns[key],
                             legacy_class=legacy))
        out.append(k.service(namespace, service, node_port=node_ports.get(key)))
    # v2 made bindings for what it manages: networking from the backend SG, none with the annotation.
    out.append(k.binding("payments", "k8s-payments-ledger-1a2b3c4d5e", world.tg["payments"], "ledger",
                         target_type="ip", sources=[world.sg["backend"]], ports=[8443]))
    out.append(k.binding("checkout", "k8s-checkout-storefro-6f7a8b9c0d", world.tg["checkout"], "storefront",
                         target_type="ip", sources=[world.sg["backend"]], ports=[8080, 8081]))
    out.append(k.binding("marketing", "k8s-marketin-landing-2e3f4a5b6c", world.tg["marketing"], "landing"))
    for group, instances in world.instances.items():
        zone = f"{world.region}a"
        out.extend(k.node(f"ip-10-20-{group}-{i}.{world.region}.compute.internal", instance, zone)
                   for i, instance in enumerate(instances))
    out.append(k.v1_controller("v1.1.9", replicas=1 if v1_running else 0, ready=1 if v1_running else 0, cluster=c))
    out.append(k.service_account("kube-system", "alb-ingress-controller"))
    out.append(k.v2_controller("v2.7.1", cluster=c))
    out.append(k.service_account("kube-system", "aws-load-balancer-controller", controller_role_arn(world)))
    return out


def denied_event(world: World, key: str = "shop") -> dict:
    """What v2 records on an Ingress it cannot adopt for lack of the migration policy."""
    namespace, name = {"shop": ("shop", "frontend"), "blog": ("blog", "web")}[key]
    return k.event(namespace, "Ingress", name, "FailedDeployModel",
                   "Failed deploy model due to UnauthorizedOperation: You are not authorized to perform this "
                   "operation. status code: 403")
