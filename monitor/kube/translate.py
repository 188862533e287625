"""Turns raw Kubernetes JSON objects into the frozen values of `monitor.core.cluster_model`."""

from __future__ import annotations

from datetime import datetime

from monitor.core.cluster_model import (
    INGRESS_CLASS_ANNOTATION,
    SOURCE_RANGES_ANNOTATION,
    ControllerDeployment,
    Ingress,
    IngressClass,
    KubeEvent,
    NetworkingPeer,
    NetworkingPort,
    NetworkingRule,
    Node,
    Service,
    ServicePort,
    TargetGroupBinding,
)

# Image repositories of the two controllers (v1: kubernetes-sigs/aws-alb-ingress-controller images on
# Docker Hub/ECR; v2: public.ecr.aws/eks/aws-load-balancer-controller and the regional EKS ECRs).
V1_IMAGE = "aws-alb-ingress-controller"
V2_IMAGE = "aws-load-balancer-controller"
# Only these annotations matter; last-applied-configuration and friends are not carried around.
_KEPT_ANNOTATION_PREFIXES = ("alb.ingress.kubernetes.io/", INGRESS_CLASS_ANNOTATION)


def _meta(obj: dict) -> dict:
    return obj.get("metadata") or {}


def ingress(obj: dict) -> Ingress:
    meta, spec = _meta(obj), obj.get("spec") or {}
    annotations = meta.get("annotations") or {}
    kept = tuple(sorted((k, str(v)) for k, v in annotations.items() if k.startswith(_KEPT_ANNOTATION_PREFIXES)))
    status = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or ()
    return Ingress(
        namespace=meta.get("namespace", ""),
        name=meta.get("name", ""),
        ingress_class=spec.get("ingressClassName") or annotations.get(INGRESS_CLASS_ANNOTATION),
        annotations=kept,
        hostnames=tuple(entry["hostname"] for entry in status if entry.get("hostname")),
    )


def ingress_class(obj: dict) -> IngressClass:
    meta, spec = _meta(obj), obj.get("spec") or {}
    params = spec.get("parameters") or {}
    annotations = meta.get("annotations") or {}
    return IngressClass(
        name=meta.get("name", ""),
        controller=spec.get("controller", ""),
        parameters=f"{params.get('kind', '')}/{params.get('name', '')}" if params else None,
        is_default=annotations.get("ingressclass.kubernetes.io/is-default-class") == "true",
    )


def service(obj: dict) -> Service:
    meta, spec = _meta(obj), obj.get("spec") or {}
    return Service(
        namespace=meta.get("namespace", ""),
        name=meta.get("name", ""),
        service_type=spec.get("type", "ClusterIP"),
        ports=tuple(
            ServicePort(port=int(p.get("port", 0)), node_port=p.get("nodePort"), protocol=p.get("protocol", "TCP"),
                        target_port=str(p.get("targetPort", "")))
            for p in spec.get("ports") or ()
        ),
        source_ranges=_source_ranges(spec, meta.get("annotations") or {}),
    )


def _source_ranges(spec: dict, annotations: dict) -> tuple[str, ...]:
    """The field wins over the annotation, as in Kubernetes (service.Spec.LoadBalancerSourceRanges)."""
    ranges = spec.get("loadBalancerSourceRanges") or []
    if not ranges:
        ranges = (annotations.get(SOURCE_RANGES_ANNOTATION) or "").split(",")
    return tuple(r.strip() for r in ranges if r and r.strip())


def binding(obj: dict) -> TargetGroupBinding:
    meta, spec = _meta(obj), obj.get("spec") or {}
    networking = spec.get("networking")
    rules = None
    if networking is not None:
        rules = tuple(
            NetworkingRule(
                peers=tuple(_peer(peer) for peer in rule.get("from") or ()),
                ports=tuple(NetworkingPort(protocol=p.get("protocol") or "TCP", port=p.get("port"))
                            for p in rule.get("ports") or ()),
            )
            for rule in networking.get("ingress") or ()
        )
    return TargetGroupBinding(
        namespace=meta.get("namespace", ""),
        name=meta.get("name", ""),
        target_group_arn=spec.get("targetGroupARN", ""),
        target_type=spec.get("targetType"),
        networking=rules,
        service_name=(spec.get("serviceRef") or {}).get("name", ""),
    )


def _peer(peer: dict) -> NetworkingPeer:
    return NetworkingPeer(
        security_group=(peer.get("securityGroup") or {}).get("groupID"),
        cidr=(peer.get("ipBlock") or {}).get("cidr"),
    )


def node(obj: dict) -> Node:
    return Node(name=_meta(obj).get("name", ""), provider_id=(obj.get("spec") or {}).get("providerID", ""))


def controller(obj: dict) -> ControllerDeployment | None:
    """The controller a Deployment runs, recognised by its container image; None for anything else."""
    meta, spec = _meta(obj), obj.get("spec") or {}
    pod = (spec.get("template") or {}).get("spec") or {}
    for container in pod.get("containers") or ():
        image = container.get("image", "")
        repository = _repository(image)
        if repository.endswith(V1_IMAGE):
            generation = "v1"
        elif repository.endswith(V2_IMAGE):
            generation = "v2"
        else:
            continue
        status = obj.get("status") or {}
        return ControllerDeployment(
            namespace=meta.get("namespace", ""),
            name=meta.get("name", ""),
            generation=generation,
            image=image,
            desired_replicas=int(spec.get("replicas", 1)),
            ready_replicas=int(status.get("readyReplicas") or 0),
            args=tuple(str(a) for a in (*(container.get("command") or ()), *(container.get("args") or ()))),
            service_account=pod.get("serviceAccountName") or pod.get("serviceAccount") or "default",
            container=container.get("name", ""),
        )
    return None


def _repository(image: str) -> str:
    """registry/path/name of an image reference, without its :tag or @digest."""
    image = image.split("@", 1)[0]
    head, _, last = image.rpartition("/")
    name = last.split(":", 1)[0]
    return f"{head}/{name}" if head else name


def event(obj: dict) -> KubeEvent:
    involved = obj.get("involvedObject") or {}
    stamp = obj.get("lastTimestamp") or obj.get("eventTime") or _meta(obj).get("creationTimestamp")
    return KubeEvent(
        namespace=involved.get("namespace") or _meta(obj).get("namespace", ""),
        kind=involved.get("kind", ""),
        name=involved.get("name", ""),
        reason=obj.get("reason", ""),
        message=obj.get("message", ""),
        event_type=obj.get("type", ""),
        count=int(obj.get("count") or 1),
        last_seen=_time(stamp),
    )


def _time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
