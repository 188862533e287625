"""Builders of realistic Kubernetes objects of a cluster mid-migration, as the API server returns them
(used by the demo's Kubernetes API and by the tests)."""

from __future__ import annotations

V1_IMAGE = "docker.io/amazon/aws-alb-ingress-controller:{version}"
V2_IMAGE = "602401143452.dkr.ecr.ap-northeast-1.amazonaws.com/amazon/aws-load-balancer-controller:{version}"


def _meta(name, namespace=None, annotations=None, labels=None):
    meta = {"name": name, "uid": f"uid-{namespace}-{name}", "resourceVersion": "1",
            "creationTimestamp": "2024-05-01T00:00:00Z"}
    if namespace:
        meta["namespace"] = namespace
    if annotations:
        meta["annotations"] = annotations
    if labels:
        meta["labels"] = labels
    return meta


def ingress(namespace, name, service, port=80, class_name="alb", annotations=None, hostname=None, legacy_class=False):
    annotations = dict(annotations or {})
    spec = {"rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {
        "service": {"name": service, "port": {"number": port}}}}]}}]}
    if legacy_class:
        annotations["kubernetes.io/ingress.class"] = class_name
    else:
        spec["ingressClassName"] = class_name
    obj = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
           "metadata": _meta(name, namespace, annotations), "spec": spec, "status": {"loadBalancer": {}}}
    if hostname:
        obj["status"]["loadBalancer"]["ingress"] = [{"hostname": hostname}]
    return obj


def ingress_class(name="alb", params=None):
    spec = {"controller": "ingress.k8s.aws/alb"}
    if params:
        spec["parameters"] = {"apiGroup": "elbv2.k8s.aws", "kind": "IngressClassParams", "name": params}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": _meta(name), "spec": spec}


def service(namespace, name, node_port=None, port=80, target_port=8080):
    port_spec = {"name": "http", "port": port, "protocol": "TCP", "targetPort": target_port}
    spec = {"type": "NodePort" if node_port else "ClusterIP", "selector": {"app": name}, "ports": [port_spec]}
    if node_port:
        port_spec["nodePort"] = node_port
    return {"apiVersion": "v1", "kind": "Service", "metadata": _meta(name, namespace), "spec": spec}


def binding(namespace, name, tg_arn, service, port=80, target_type="instance", sources=(), ports=(), cidrs=()):
    spec = {"targetGroupARN": tg_arn, "targetType": target_type, "serviceRef": {"name": service, "port": port}}
    peers = [{"securityGroup": {"groupID": sg}} for sg in sources] + [{"ipBlock": {"cidr": c}} for c in cidrs]
    if peers:
        spec["networking"] = {"ingress": [{"from": peers, "ports": [{"protocol": "TCP", "port": p} for p in ports]}]}
    return {"apiVersion": "elbv2.k8s.aws/v1beta1", "kind": "TargetGroupBinding",
            "metadata": _meta(name, namespace, labels={"ingress.k8s.aws/stack-name": name}), "spec": spec}


def node(name, instance_id, zone="ap-northeast-1a"):
    return {"apiVersion": "v1", "kind": "Node", "metadata": _meta(name),
            "spec": {"providerID": f"aws:///{zone}/{instance_id}"}}


def deployment(namespace, name, image, args, replicas=1, ready=1, service_account=None, container=None):
    pod = {"containers": [{"name": container or name, "image": image, "args": list(args)}]}
    if service_account:
        pod["serviceAccountName"] = service_account
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(name, namespace),
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": pod}},
            "status": {"replicas": replicas, "readyReplicas": ready, "availableReplicas": ready}}


def v1_controller(version="v1.1.9", replicas=1, ready=1, cluster="prod-eks"):
    return deployment("kube-system", "alb-ingress-controller", V1_IMAGE.format(version=version),
                      ["--ingress-class=alb", f"--cluster-name={cluster}"], replicas, ready,
                      service_account="alb-ingress-controller", container="alb-ingress-controller")


def v2_controller(version="v2.7.1", replicas=2, ready=2, cluster="prod-eks", extra_args=()):
    return deployment("kube-system", "aws-load-balancer-controller", V2_IMAGE.format(version=version),
                      [f"--cluster-name={cluster}", "--ingress-class=alb", *extra_args], replicas, ready,
                      service_account="aws-load-balancer-controller", container="controller")


def service_account(namespace, name, role_arn=None):
    annotations = {"eks.amazonaws.com/role-arn": role_arn} if role_arn else None
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(name, namespace, annotations)}


def event(namespace, kind, name, reason, message, api_version="networking.k8s.io/v1"):
    return {"apiVersion": "v1", "kind": "Event",
            "metadata": _meta(f"{name}.{abs(hash((reason, message))) % 10**8:08x}", namespace),
            "involvedObject": {"apiVersion": api_version, "kind": kind, "name": name, "namespace": namespace},
            "reason": reason, "message": message, "type": "Warning", "count": 3,
            "firstTimestamp": "2024-05-01T00:00:00Z", "lastTimestamp": "2024-05-01T00:05:00Z",
            "source": {"component": "ingress"}}


# The v2 controller's base IAM policy only lets it tag what already carries elbv2.k8s.aws/cluster; the
# migration's additional policy lets it tag and delete what v1 tagged with ingress.k8s.aws/cluster.
# (The statements that matter for adoption, in the shape of the controller's docs/install/ files.)
V2_BASE_POLICY = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["ec2:CreateTags", "ec2:DeleteTags"], "Resource": "arn:aws:ec2:*:*:security-group/*",
     "Condition": {"Null": {"aws:RequestTag/elbv2.k8s.aws/cluster": "true",
                            "aws:ResourceTag/elbv2.k8s.aws/cluster": "false"}}},
    {"Effect": "Allow", "Action": ["elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags"],
     "Resource": ["arn:aws:elasticloadbalancing:*:*:targetgroup/*/*", "arn:aws:elasticloadbalancing:*:*:loadbalancer/app/*/*"],
     "Condition": {"Null": {"aws:RequestTag/elbv2.k8s.aws/cluster": "true",
                            "aws:ResourceTag/elbv2.k8s.aws/cluster": "false"}}},
    {"Effect": "Allow", "Action": ["elasticloadbalancing:DeleteTargetGroup"], "Resource": "*",
     "Condition": {"Null": {"aws:ResourceTag/elbv2.k8s.aws/cluster": "false"}}},
]}
V1_TO_V2_ADDITIONAL_POLICY = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["ec2:CreateTags", "ec2:DeleteTags"], "Resource": "arn:aws:ec2:*:*:security-group/*",
     "Condition": {"Null": {"aws:ResourceTag/ingress.k8s.aws/cluster": "false"}}},
    {"Effect": "Allow", "Action": ["elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags",
                                   "elasticloadbalancing:DeleteTargetGroup"],
     "Resource": ["arn:aws:elasticloadbalancing:*:*:loadbalancer/*", "arn:aws:elasticloadbalancing:*:*:targetgroup/*"],
     "Condition": {"Null": {"aws:ResourceTag/ingress.k8s.aws/cluster": "false"}}},
]}
