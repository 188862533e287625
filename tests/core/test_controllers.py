"""What the controllers' marks mean: the v2 label regex, adoption, ownership, the node SG choice."""

from __future__ import annotations

import pytest

from monitor.core import controllers
from monitor.core.model import SecurityGroup


@pytest.mark.parametrize("description, labelled", [
    ("elbv2.k8s.aws/targetGroupBinding=shared", True),
    ("team=web,elbv2.k8s.aws/targetGroupBinding=shared", True),
    ("elbv2.k8s.aws/targetGroupBinding=shared,team=web", True),
    ("elbv2.k8s.aws/targetGroupBinding=Shared", False),  # case-sensitive
    ("ELBV2.k8s.aws/targetGroupBinding=shared", False),
    ("elbv2.k8s.aws/targetGroupBinding=shared-ish", False),
    ("elbv2.k8s.aws/targetGroupBinding = shared", False),
    ("elbv2.k8s.aws/targetGroupBinding", False),
    ("", False),
    ("alb-sg-monitor restored rule for k8s-shop; not elbv2.k8s.aws/targetGroupBinding", False),
])
def test_shared_label(description, labelled):
    assert controllers.has_shared_label(description) is labelled


@pytest.mark.parametrize("tags, expected", [
    ({"ingress.k8s.aws/cluster": "c", "ingress.k8s.aws/stack": "ns/ing", "kubernetes.io/cluster/c": "owned"}, "v1"),
    ({"kubernetes.io/cluster/c": "owned", "kubernetes.io/ingress-name": "ing", "kubernetes.io/namespace": "ns"}, "v1"),
    ({"ingress.k8s.aws/cluster": "c", "elbv2.k8s.aws/cluster": "c", "ingress.k8s.aws/stack": "ns/ing"}, "adopted"),
    ({"elbv2.k8s.aws/cluster": "c", "ingress.k8s.aws/stack": "ns/ing"}, "v2"),
    ({"elbv2.k8s.aws/cluster": "c", "service.k8s.aws/stack": "ns/svc"}, "v2"),
    ({"kubernetes.io/cluster/c": "owned"}, "other"),
])
def test_adoption(tags, expected):
    assert controllers.adoption(tags, "c") == expected


def test_cluster_membership_ignores_other_clusters():
    assert controllers.belongs_to_cluster({"elbv2.k8s.aws/cluster": "c"}, "c")
    assert not controllers.belongs_to_cluster({"elbv2.k8s.aws/cluster": "other"}, "c")
    assert not controllers.belongs_to_cluster({"kubernetes.io/cluster/other": "owned"}, "c")


def _sg(group_id, description="", **tags):
    return SecurityGroup(group_id, group_id, description, "vpc-1", tuple(tags.items()))


@pytest.mark.parametrize("group, owned", [
    (_sg("sg-1", controllers.V1_MANAGED_SG_DESCRIPTION), True),
    (_sg("sg-2", controllers.V2_MANAGED_SG_DESCRIPTION), True),
    (_sg("sg-3", controllers.V2_BACKEND_SG_DESCRIPTION), True),
    (_sg("sg-4", "anything", **{"elbv2.k8s.aws/resource": "backend-sg"}), True),
    (_sg("sg-5", "ALB for marketing"), False),
])
def test_controller_owned_sources(group, owned):
    assert controllers.is_controller_owned(group) is owned


def test_node_security_group_choice():
    tag = {"kubernetes.io/cluster/c": "owned"}
    groups = {"sg-a": _sg("sg-a", **tag), "sg-b": _sg("sg-b"), "sg-c": _sg("sg-c", **tag)}
    assert controllers.node_security_group(["sg-b"], groups, "c") == "sg-b"
    assert controllers.node_security_group(["sg-a", "sg-b"], groups, "c") == "sg-a"
    assert controllers.node_security_group(["sg-a", "sg-c"], groups, "c") is None
    assert controllers.node_security_group(["sg-b", "sg-x"], groups, "c") is None
