"""Migration findings that need Kubernetes: what will cut traffic if the v1 -> v2 cutover goes on.

Pure: frozen values in (topology, rules, cluster state, the v2 role's policies), Findings out. Each
message is one sentence ending in the exact next step (docs/reference.md finding codes; docs/controllers.md for why).
"""

from __future__ import annotations

from collections.abc import Iterable

from monitor.core import controllers, iam_policy, v2_gc
from monitor.core.cluster_model import ClusterState, ControllerDeployment
from monitor.core.iam_policy import RolePolicies
from monitor.core.model import SEVERITY_RANK, Finding, LoadBalancer, PeerKind, ReadFailure, Rule, Severity, Topology

MIN_ADOPTABLE_V1 = (1, 1, 3)  # v2 adopts only what v1 >= 1.1.3 tagged with ingress.k8s.aws/* (migration guide)
MIGRATION_POLICY_FILE = "docs/install/iam_policy_v1_to_v2_additional.json"
_DENIAL_WORDS = ("UnauthorizedOperation", "AccessDenied")
# The order in which findings are listed, within a severity (issue 5): what cuts traffic first comes
# first (a fight or a pending revoke before a missing policy), then what will cut it, then what
# blinds the monitor. docs/reference.md's table of codes is in this order.
_CODE_ORDER = (
    "ACCESS_REVOKED", "EGRESS_BLOCKED", "CLIENTS_NOT_ADMITTED", "NACL_BLOCKED", "REMEDIATION_FIGHT",
    "CONTROLLERS_BOTH_RUNNING", "SHARED_LABEL_ON_FOREIGN_SOURCE", "MIGRATION_POLICY_MISSING",
    "AMBIGUOUS_NODE_SECURITY_GROUP", "V1_CONTROLLER_TOO_OLD",
    "UNHEALTHY_UNEXPLAINED", "REMEDIATION_FAILED", "UNCLAIMED_SHARED_LABEL", "RULE_QUOTA_NEAR", "VERDICT_DISPUTED",
    "FOREIGN_RESTORE", "MIGRATION_POLICY_UNVERIFIED", "OBSERVATION_INCOMPLETE", "KUBERNETES_UNAVAILABLE",
    "ATTRIBUTION_OFF",
    "UNADOPTED_LOAD_BALANCER", "UNLABELLED_V1_RULE",
)


def migration_findings(topology: Topology, rules: Iterable[Rule], state: ClusterState,
                       role: RolePolicies | None = None,
                       iam_failures: tuple[ReadFailure, ...] = ()) -> tuple[Finding, ...]:
    findings = [
        *kubernetes_unavailable(state),
        *controllers_both_running(state),
        *v1_too_old(state),
        *unclaimed_shared_labels(topology, tuple(rules), state),
        *migration_policy(topology, state, role, iam_failures),
    ]
    return tuple(sorted(findings, key=order_key))


def ranked_codes() -> tuple[str, ...]:
    """Every finding code, in the order findings of one severity are listed."""
    return _CODE_ORDER


def order_key(finding: Finding) -> tuple:
    rank = _CODE_ORDER.index(finding.code) if finding.code in _CODE_ORDER else len(_CODE_ORDER)
    return SEVERITY_RANK[finding.severity], rank, finding.load_balancer or "", finding.rule or ""


def wrong_cluster(topology: Topology, state: ClusterState, cluster: str) -> str | None:
    """Why the Kubernetes API read is not the cluster being checked (a kubeconfig on another
    context), or None. Evidence: the controllers' --cluster-name, and the Nodes behind instance targets."""
    names = {c.cluster_name for c in state.controllers or () if c.cluster_name}
    if names and cluster not in names:
        return f"its load balancer controllers run with --cluster-name {', '.join(sorted(names))}"
    instances = {t.target_id for tg in topology.target_groups if tg.target_type == "instance" for t in tg.targets or ()}
    nodes = {n.instance_id for n in state.nodes or () if n.instance_id}
    if instances and nodes and not instances & nodes:
        return f"none of its {len(nodes)} nodes is a target of {cluster}'s load balancers"
    return None


def kubernetes_unavailable(state: ClusterState) -> list[Finding]:
    if not state.failures:
        return []
    wrong = [f for f in state.failures if f.code == "WrongCluster"]
    if wrong:
        return [Finding("KUBERNETES_UNAVAILABLE", Severity.WARNING, (
            f"The Kubernetes API in use is not this cluster's ({wrong[0].message}), so it was ignored and only "
            "AWS was checked: switch the kubeconfig context to this cluster (kubectl config use-context) "
            "or run with --kubernetes off."))]
    down = [f for f in state.failures if f.code == "Unreachable"]
    if down:
        return [Finding("KUBERNETES_UNAVAILABLE", Severity.WARNING, (
            f"The Kubernetes API did not answer ({down[0].message}), so Ingress names, TargetGroupBindings, "
            "controllers and events are unknown and only AWS was checked: check the API server address in "
            "the kubeconfig or the pod's network path to it, or run with --kubernetes off."))]
    refused = sorted({f.operation for f in state.failures if f.code in ("Forbidden", "Unauthorized")})
    other = sorted({f"{f.operation} ({f.code})" for f in state.failures if f.code not in ("Forbidden", "Unauthorized")})
    findings = []
    if refused:
        findings.append(Finding("KUBERNETES_UNAVAILABLE", Severity.WARNING, (
            f"The Kubernetes API refused {', '.join(refused)} to the monitor's service account, so what depends "
            "on it is unknown and only AWS was checked there: grant these verbs in the monitor's ClusterRole "
            "(deploy/) and check the ClusterRoleBinding names the monitor's service account.")))
    if other:
        findings.append(Finding("KUBERNETES_UNAVAILABLE", Severity.WARNING, (
            f"Kubernetes reads failed: {', '.join(other)}; what depends on them is unknown: check the API "
            "server's health (kubectl get --raw /readyz) and retry.")))
    return findings


def controllers_both_running(state: ClusterState) -> list[Finding]:
    v1 = [c for c in state.controllers_of("v1") if c.running]
    v2 = [c for c in state.controllers_of("v2") if c.running]
    if not v1 or not v2:
        return []
    return [Finding("CONTROLLERS_BOTH_RUNNING", Severity.CRITICAL, (
        f"Both the v1 controller ({_names(v1)}) and the v2 controller ({_names(v2)}) are running and each "
        "sets every ALB's security groups to its own list, so they fight over ALBs and node rules: scale v1 "
        f"down now with `kubectl -n {v1[0].namespace} scale deployment/{v1[0].name} --replicas=0`."))]


def v1_too_old(state: ClusterState) -> list[Finding]:
    findings = []
    for c in state.controllers_of("v1"):
        version = c.version_tuple
        if version is None or version >= MIN_ADOPTABLE_V1:
            continue
        findings.append(Finding("V1_CONTROLLER_TOO_OLD", Severity.CRITICAL, (
            f"The v1 controller {c.namespace}/{c.name} runs {c.image}, older than v1.1.3, so its ALBs lack the "
            "ingress.k8s.aws/* tags and v2 will create new ALBs instead of adopting them: upgrade it first with "
            f"`kubectl -n {c.namespace} set image deployment/{c.name} "
            f"{_container_hint(c)}=docker.io/amazon/aws-alb-ingress-controller:v1.1.9` and let it reconcile.")))
    return findings


def unclaimed_shared_labels(topology: Topology, rules: tuple[Rule, ...], state: ClusterState) -> list[Finding]:
    if state.bindings is None:
        return []  # bindings unknown: KUBERNETES_UNAVAILABLE says so; guessing would cry wolf
    v2 = state.controllers_of("v2")
    restricted = v2[0].restricted_sg_rules if v2 else True
    plan = v2_gc.simulate(rules, state.bindings, topology, restricted=restricted)
    owner = {sg: lb.name for lb in topology.load_balancers for sg in lb.security_groups}
    why = ("no TargetGroupBinding has spec.networking (every Ingress uses the security-groups annotation), so "
           "v2's garbage collection revokes every labelled rule" if plan.no_networking else
           "no TargetGroupBinding's spec.networking wants that exact protocol, port range and source, so v2 "
           "revokes it at its next reconcile")
    return [
        Finding("UNCLAIMED_SHARED_LABEL", Severity.WARNING, load_balancer=owner.get(rule.peer),
                security_group=rule.group_id, rule=rule.rule_id, message=(
                    f"Rule {rule.rule_id or '?'} on {rule.group_id} ({rule.ports_text()} from {rule.peer}) is "
                    f"labelled {controllers.SHARED_LABEL_KEY}={controllers.SHARED_LABEL_VALUE} but {why}: if "
                    f"traffic still depends on it, take the label off with {relabel_command(rule)}."))
        for rule in plan.revoked
    ]


def relabel_command(rule: Rule, description: str = "kept-by-hand-not-managed-by-v2") -> str:
    """The AWS CLI call that replaces a rule's description (keeping its tuple), as a copyable string.
    The description has no commas, spaces or "=" so the CLI shorthand and v2's label parser both read it whole."""
    peer = {PeerKind.SECURITY_GROUP: "ReferencedGroupId", PeerKind.CIDR: "CidrIpv4", PeerKind.CIDR6: "CidrIpv6",
            PeerKind.PREFIX_LIST: "PrefixListId"}[rule.peer_kind]
    ports = "" if rule.from_port is None else f",FromPort={rule.from_port},ToPort={rule.to_port}"
    return (f"`aws ec2 modify-security-group-rules --group-id {rule.group_id} --security-group-rules "
            f"'SecurityGroupRuleId={rule.rule_id},SecurityGroupRule={{IpProtocol={rule.protocol}{ports},"
            f"{peer}={rule.peer},Description={description}}}'`")


def migration_policy(topology: Topology, state: ClusterState, role: RolePolicies | None,
                     iam_failures: tuple[ReadFailure, ...] = ()) -> list[Finding]:
    unadopted = [lb for lb in topology.load_balancers if lb.adoption == "v1"]
    if not unadopted:
        return []
    lbs = _lb_names(unadopted)
    denials = [e for e in state.events or () if e.reason == "FailedDeployModel" and e.kind == "Ingress"
               and any(word in e.message for word in _DENIAL_WORDS)]
    evidence = (f"; {len(denials)} FailedDeployModel event(s) already show AccessDenied/UnauthorizedOperation "
                f"(e.g. Ingress {denials[0].namespace}/{denials[0].name})") if denials else ""
    fix = (f"attach the controller's {MIGRATION_POLICY_FILE} to the v2 role with `aws iam put-role-policy "
           "--role-name {role} --policy-name aws-lbc-v1-to-v2-migration --policy-document "
           "file://iam_policy_v1_to_v2_additional.json`")
    v2 = state.controllers_of("v2")
    role_arn = next((c.role_arn for c in v2 if c.role_arn), None)
    if role is None or role_arn is None:
        if state.controllers is None:
            reason = "the controllers' Deployments could not be read"
        elif not v2:
            reason = "no v2 controller is installed yet"
        elif role_arn is None:
            reason = (f"the v2 controller's service account {v2[0].namespace}/{v2[0].service_account} has no "
                      "eks.amazonaws.com/role-arn annotation (EKS Pod Identity or node role), so its role is unknown")
        else:
            codes = ", ".join(sorted({f"{f.operation} {f.code}" for f in iam_failures})) or "not read"
            reason = f"the policies of {role_arn} could not be read ({codes})"
        severity = Severity.CRITICAL if denials else Severity.WARNING
        code = "MIGRATION_POLICY_MISSING" if denials else "MIGRATION_POLICY_UNVERIFIED"
        return [Finding(code, severity, (
            f"{len(unadopted)} v1 ALB(s) ({lbs}) are not yet adopted by v2 and whether v2's role allows the "
            f"migration actions cannot be verified because {reason}{evidence}: before v2 reconciles them, "
            + fix.format(role=iam_policy.role_name_from_arn(role_arn) if role_arn else "<v2-role-name>") + "."))]
    verdicts = _verdicts(topology, unadopted, role)
    missing = sorted({f"{v.action} on {v.resource.split(':')[5].split('/')[0]}" for v in verdicts if v.allowed is False})
    unsure = [v for v in verdicts if v.allowed is None]
    role_name = iam_policy.role_name_from_arn(role.role_arn)
    if missing:
        denied = sorted({v.denied_by for v in verdicts if v.denied_by and v.allowed is False})
        deny_note = f" (a Deny in {', '.join(denied)} blocks some)" if denied else ""
        return [Finding("MIGRATION_POLICY_MISSING", Severity.CRITICAL, (
            f"The v2 controller's role {role_name} does not allow {', '.join(missing)}{deny_note} on resources tagged "
            f"ingress.k8s.aws/cluster, so v2 cannot adopt the {len(unadopted)} v1 ALB(s) ({lbs}) and their node "
            f"rules are at risk{evidence}: " + fix.format(role=role_name) + " before v2 reconciles them."))]
    if unsure:
        where = sorted({v.denied_by or v.allowed_by for v in unsure if v.denied_by or v.allowed_by})
        groups = {g.group_id for g in topology.security_groups}
        unread = sorted({sg for lb in unadopted for sg in lb.security_groups if sg not in groups})
        # Denials in the events make an undecidable policy critical, unless what is undecided is the
        # tags of a group that was not read: a critical finding never rests on what was not read.
        severity = Severity.CRITICAL if denials and not unread else Severity.WARNING
        code = "MIGRATION_POLICY_MISSING" if severity is Severity.CRITICAL else "MIGRATION_POLICY_UNVERIFIED"
        unread_note = f" (the tags of {', '.join(unread)} could not be read)" if unread else ""
        return [Finding(code, severity, (
            f"Whether the v2 role {role_name} allows {', '.join(sorted({v.action for v in unsure}))} on the "
            f"{len(unadopted)} unadopted v1 ALB(s) ({lbs}) depends on conditions the monitor cannot evaluate "
            f"in {', '.join(where) or 'its policies'}{unread_note}{evidence}: check them, or "
            + fix.format(role=role_name) + "."))]
    if denials:
        return [Finding("MIGRATION_POLICY_UNVERIFIED", Severity.WARNING, (
            f"The v2 role {role_name}'s policies allow the migration actions, yet{evidence[1:]}: look for a "
            "permission boundary or SCP on the role with `aws iam get-role --role-name "
            f"{role_name} --query Role.PermissionsBoundary`."))]
    return []


def _verdicts(topology: Topology, unadopted: list[LoadBalancer], role: RolePolicies) -> list[iam_policy.Verdict]:
    groups = {g.group_id: g for g in topology.security_groups}
    verdicts = []
    for lb in unadopted:
        region, account = lb.arn.split(":")[3], lb.arn.split(":")[4]
        resources = {"loadbalancer": [(lb.arn, lb.tags)], "targetgroup": [], "security-group": []}
        for tg in topology.target_groups:
            if lb.arn in tg.load_balancer_arns:
                resources["targetgroup"].append((tg.arn, tg.tags or lb.tags))
        for sg in lb.security_groups:
            group = groups.get(sg)
            if group is None:  # not read: a condition on its tags is undecided, never guessed from the ALB's
                resources["security-group"].append((f"arn:aws:ec2:{region}:{account}:security-group/{sg}", None))
            elif controllers.is_v1_managed(group):
                resources["security-group"].append((f"arn:aws:ec2:{region}:{account}:security-group/{sg}", group.tags))
        if not resources["targetgroup"]:  # still check the policy shape with a representative ARN
            resources["targetgroup"].append((f"arn:aws:elasticloadbalancing:{region}:{account}:targetgroup/"
                                             f"{lb.name[:20]}/0000000000000000", lb.tags))
        if not resources["security-group"]:
            resources["security-group"].append((f"arn:aws:ec2:{region}:{account}:security-group/sg-00000000",
                                                lb.tags))
        for action, kind in iam_policy.MIGRATION_ACTIONS:
            for arn, tags in resources[kind]:
                context = iam_policy.context_for(action, arn, tags, topology.cluster)
                verdicts.append(iam_policy.evaluate(role, context))
    return verdicts


def _lb_names(lbs: list[LoadBalancer], limit: int = 3) -> str:
    shown = ", ".join(controllers.lb_label(lb) for lb in lbs[:limit])
    return shown if len(lbs) <= limit else f"{shown} and {len(lbs) - limit} more"


def _names(deployments: list[ControllerDeployment]) -> str:
    return ", ".join(f"{d.namespace}/{d.name} {d.version or d.image}" for d in deployments)


def _container_hint(c: ControllerDeployment) -> str:
    return c.container or c.name
