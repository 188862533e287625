"""How the v1 and v2 controllers mark what they own: tags, descriptions and the rule label.

Every fact here comes from the controllers' source (docs/controllers.md says which); change it only with a cite.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from monitor.core.model import LoadBalancer, SecurityGroup

# v2 labels node rules it manages with this description; only such rules are ever revoked by it.
SHARED_LABEL_KEY = "elbv2.k8s.aws/targetGroupBinding"
SHARED_LABEL_VALUE = "shared"
# The controller parses a rule description as comma-separated key=value labels with this regex
# (pkg/networking, `parseDescriptionLabels`); case-sensitive.
_LABEL_RE = re.compile(r"([^\s,=]+)=([^\s,=]+)(?:,|$)")

V1_CLUSTER_TAG = "ingress.k8s.aws/cluster"
V1_STACK_TAG = "ingress.k8s.aws/stack"
V1_RESOURCE_TAG = "ingress.k8s.aws/resource"
V1_NAMESPACE_TAG = "kubernetes.io/namespace"
V1_INGRESS_NAME_TAG = "kubernetes.io/ingress-name"
V2_CLUSTER_TAG = "elbv2.k8s.aws/cluster"
V2_RESOURCE_TAG = "elbv2.k8s.aws/resource"
SERVICE_STACK_TAG = "service.k8s.aws/stack"
V1_SG_CLUSTER_TAG = "kubernetes.io/cluster-name"  # v1 tags its managed SG so, not cluster/<c>

V1_MANAGED_SG_DESCRIPTION = "managed LoadBalancer securityGroup by ALB Ingress Controller"
V2_MANAGED_SG_DESCRIPTION = "[k8s] Managed SecurityGroup for LoadBalancer"
V2_BACKEND_SG_DESCRIPTION = "[k8s] Shared Backend SecurityGroup for LoadBalancer"


def cluster_tag(cluster: str) -> str:
    return f"kubernetes.io/cluster/{cluster}"


def description_labels(description: str) -> dict[str, str]:
    return {m.group(1): m.group(2) for m in _LABEL_RE.finditer(description or "")}


def has_shared_label(description: str) -> bool:
    """True when v2 would treat a rule with this description as its own (and may revoke it)."""
    return description_labels(description).get(SHARED_LABEL_KEY) == SHARED_LABEL_VALUE


def belongs_to_cluster(tags: dict[str, str], cluster: str) -> bool:
    return (
        tags.get(V2_CLUSTER_TAG) == cluster
        or tags.get(V1_CLUSTER_TAG) == cluster
        or cluster_tag(cluster) in tags
    )


def adoption(tags: dict[str, str], cluster: str) -> str:
    """v1: legacy tags only (v2 has not adopted it, often a missing migration policy);
    adopted: v2 added its cluster tag to a v1 stack; v2: created by v2; other: cluster-tagged only."""
    # v1 >= 1.1.3 writes ingress.k8s.aws/cluster; older v1 only kubernetes.io/cluster/<c> and the
    # Ingress name tags (V1_CONTROLLER_TOO_OLD territory, still v1).
    legacy = tags.get(V1_CLUSTER_TAG) == cluster or (
        cluster_tag(cluster) in tags and V1_INGRESS_NAME_TAG in tags
    )
    v2 = tags.get(V2_CLUSTER_TAG) == cluster
    if v2 and legacy:
        return "adopted"
    if v2:
        return "v2"
    if legacy:
        return "v1"
    return "other"


def ingress_of(tags: dict[str, str]) -> tuple[str, str]:
    """(namespace, name) of the Ingress behind a load balancer, from its stack tags; ("", "")
    for an IngressGroup or Service stack that names no single Ingress."""
    if V1_NAMESPACE_TAG in tags and V1_INGRESS_NAME_TAG in tags:
        return tags[V1_NAMESPACE_TAG], tags[V1_INGRESS_NAME_TAG]
    stack = tags.get(V1_STACK_TAG, "")
    if "/" in stack:
        namespace, name = stack.split("/", 1)
        return namespace, name
    return "", ""


def is_controller_owned(group: SecurityGroup) -> bool:
    """A managed ALB SG (v1 or v2) or v2's shared backend SG: a source v2 may legitimately label."""
    if group.description in (V1_MANAGED_SG_DESCRIPTION, V2_MANAGED_SG_DESCRIPTION, V2_BACKEND_SG_DESCRIPTION):
        return True
    if group.tag(V2_RESOURCE_TAG) == "backend-sg":
        return True
    return group.tag(V1_RESOURCE_TAG) == "ManagedLBSecurityGroup"


def is_v1_managed(group: SecurityGroup) -> bool:
    return group.description == V1_MANAGED_SG_DESCRIPTION or group.tag(V1_RESOURCE_TAG) == "ManagedLBSecurityGroup"


def node_security_group(eni_groups: Iterable[str], groups: dict[str, SecurityGroup], cluster: str) -> str | None:
    """The SG the v2 controller would put node rules on for an ENI: its only SG, or the single
    one tagged kubernetes.io/cluster/<c>. None when that is ambiguous (v2 errors, #1594, #2902) or
    unknown: a group missing from `groups` was not read, and may be the tagged one."""
    eni_groups = tuple(eni_groups)
    if len(eni_groups) == 1:
        return eni_groups[0]
    if any(g not in groups for g in eni_groups):
        return None
    tagged = tagged_groups(eni_groups, groups, cluster)
    return tagged[0] if len(tagged) == 1 else None


def tagged_groups(eni_groups: Iterable[str], groups: dict[str, SecurityGroup], cluster: str) -> list[str]:
    """Those of an ENI's groups read (present in `groups`) and tagged kubernetes.io/cluster/<c>."""
    return [g for g in eni_groups if g in groups and cluster_tag(cluster) in dict(groups[g].tags)]


def lb_label(lb: LoadBalancer) -> str:
    """A short human name for an ALB in messages: the Ingress when known, else its name."""
    if lb.ingress:
        return f"{lb.name} (Ingress {lb.ingress_namespace}/{lb.ingress})"
    return lb.name
