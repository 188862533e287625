"""Frozen values for what the Kubernetes API says about the cluster, usable without the kubernetes client.

Every collection in `ClusterState` is a tuple when it was read and None when it is unknown (the
read failed); a failed read is recorded in `failures`, never mistaken for "there is none".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from monitor.core.model import ReadFailure

# Ingress annotations the controllers act on (AWS Load Balancer Controller docs, guide/ingress/annotations).
SECURITY_GROUPS_ANNOTATION = "alb.ingress.kubernetes.io/security-groups"
MANAGE_BACKEND_SG_RULES_ANNOTATION = "alb.ingress.kubernetes.io/manage-backend-security-group-rules"
TARGET_TYPE_ANNOTATION = "alb.ingress.kubernetes.io/target-type"
GROUP_NAME_ANNOTATION = "alb.ingress.kubernetes.io/group.name"
INGRESS_CLASS_ANNOTATION = "kubernetes.io/ingress.class"
ALB_INGRESS_CLASS_CONTROLLER = "ingress.k8s.aws/alb"
IRSA_ROLE_ANNOTATION = "eks.amazonaws.com/role-arn"
SOURCE_RANGES_ANNOTATION = "service.beta.kubernetes.io/load-balancer-source-ranges"

_VERSION_RE = re.compile(r"v?(\d+)\.(\d+)(?:\.(\d+))?")


def _pairs_get(pairs: tuple[tuple[str, str], ...], key: str) -> str | None:
    return dict(pairs).get(key)


@dataclass(frozen=True)
class Ingress:
    namespace: str
    name: str
    ingress_class: str | None  # spec.ingressClassName, else the legacy kubernetes.io/ingress.class annotation
    annotations: tuple[tuple[str, str], ...] = ()
    hostnames: tuple[str, ...] = ()  # status.loadBalancer.ingress[].hostname (the ALB's DNS name)

    def annotation(self, key: str) -> str | None:
        return _pairs_get(self.annotations, key)

    @property
    def security_groups(self) -> tuple[str, ...]:
        """SGs named by the security-groups annotation (ids or Name tags); () when it is not set."""
        raw = self.annotation(SECURITY_GROUPS_ANNOTATION) or ""
        return tuple(part.strip() for part in raw.split(",") if part.strip())

    @property
    def manages_backend_rules(self) -> bool:
        return (self.annotation(MANAGE_BACKEND_SG_RULES_ANNOTATION) or "").strip().lower() == "true"

    @property
    def target_type(self) -> str:
        return (self.annotation(TARGET_TYPE_ANNOTATION) or "instance").strip()

    @property
    def group_name(self) -> str | None:
        return self.annotation(GROUP_NAME_ANNOTATION)


@dataclass(frozen=True)
class IngressClass:
    name: str
    controller: str
    parameters: str | None = None  # "<kind>/<name>" of spec.parameters (IngressClassParams for ALB)
    is_default: bool = False

    @property
    def is_alb(self) -> bool:
        return self.controller == ALB_INGRESS_CLASS_CONTROLLER


@dataclass(frozen=True)
class ServicePort:
    port: int
    node_port: int | None
    protocol: str = "TCP"
    target_port: str = ""


@dataclass(frozen=True)
class Service:
    namespace: str
    name: str
    service_type: str
    ports: tuple[ServicePort, ...] = ()
    # spec.loadBalancerSourceRanges, else the load-balancer-source-ranges annotation: the only clients
    # its load balancer lets in (() when it names none).
    source_ranges: tuple[str, ...] = ()

    @property
    def node_ports(self) -> tuple[int, ...]:
        return tuple(p.node_port for p in self.ports if p.node_port)


@dataclass(frozen=True)
class NetworkingPeer:
    """One `from` entry of a TargetGroupBinding ingress rule: a security group or a CIDR."""

    security_group: str | None = None
    cidr: str | None = None


@dataclass(frozen=True)
class NetworkingPort:
    protocol: str = "TCP"  # TCP or UDP; absent in the spec means TCP
    port: int | str | None = None  # None: all ports; str: a named port (resolved from pods by v2)


@dataclass(frozen=True)
class NetworkingRule:
    peers: tuple[NetworkingPeer, ...]
    ports: tuple[NetworkingPort, ...]  # () means every TCP port


@dataclass(frozen=True)
class TargetGroupBinding:
    namespace: str
    name: str
    target_group_arn: str
    target_type: str | None
    networking: tuple[NetworkingRule, ...] | None  # None: spec.networking absent
    service_name: str = ""


@dataclass(frozen=True)
class Node:
    name: str
    provider_id: str

    @property
    def instance_id(self) -> str | None:
        """i-… from a provider ID such as aws:///us-east-1a/i-0abc."""
        tail = self.provider_id.rstrip("/").rsplit("/", 1)[-1]
        return tail if tail.startswith("i-") else None


@dataclass(frozen=True)
class ControllerDeployment:
    """A Deployment running the v1 ALB Ingress Controller or the v2 AWS Load Balancer Controller."""

    namespace: str
    name: str
    generation: str  # "v1" or "v2"
    image: str
    desired_replicas: int
    ready_replicas: int
    args: tuple[str, ...] = ()
    service_account: str = "default"
    container: str = ""  # name of the controller's container in the pod template
    role_arn: str | None = None  # the ServiceAccount's IRSA annotation; None when absent or unread

    @property
    def version(self) -> str:
        """The image tag without registry, repository or digest ('' when untagged)."""
        image = self.image.split("@", 1)[0]
        last = image.rsplit("/", 1)[-1]
        return last.split(":", 1)[1] if ":" in last else ""

    @property
    def version_tuple(self) -> tuple[int, int, int] | None:
        match = _VERSION_RE.match(self.version)
        if not match:
            return None
        return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)

    @property
    def running(self) -> bool:
        return self.desired_replicas > 0 and self.ready_replicas > 0

    def arg(self, flag: str) -> str | None:
        """The value of --flag (as --flag=value or --flag value); 'true' for a bare boolean flag."""
        for i, arg in enumerate(self.args):
            if arg == flag:
                following = self.args[i + 1] if i + 1 < len(self.args) else ""
                return following if following and not following.startswith("-") else "true"
            if arg.startswith(flag + "="):
                return arg.split("=", 1)[1]
        return None

    @property
    def cluster_name(self) -> str | None:
        return self.arg("--cluster-name")

    @property
    def restricted_sg_rules(self) -> bool:
        """False when --disable-restricted-sg-rules is set: v2 then keeps one rule per port."""
        return (self.arg("--disable-restricted-sg-rules") or "false").lower() != "true"


@dataclass(frozen=True)
class KubeEvent:
    namespace: str
    kind: str  # involvedObject.kind
    name: str  # involvedObject.name
    reason: str
    message: str
    event_type: str = "Warning"
    count: int = 1
    last_seen: datetime | None = None


@dataclass(frozen=True)
class ClusterState:
    """One read of the Kubernetes API. None for a collection means it could not be read."""

    ingresses: tuple[Ingress, ...] | None = None
    ingress_classes: tuple[IngressClass, ...] | None = None
    services: tuple[Service, ...] | None = None
    bindings: tuple[TargetGroupBinding, ...] | None = None
    nodes: tuple[Node, ...] | None = None
    controllers: tuple[ControllerDeployment, ...] | None = None
    events: tuple[KubeEvent, ...] | None = None
    failures: tuple[ReadFailure, ...] = ()

    @property
    def complete(self) -> bool:
        return not self.failures

    def controllers_of(self, generation: str) -> tuple[ControllerDeployment, ...]:
        return tuple(c for c in self.controllers or () if c.generation == generation)
