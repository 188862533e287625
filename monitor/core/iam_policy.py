"""Pure IAM policy evaluation: does a role's set of documents allow an action on a resource with given tags?

A small, conservative subset of the IAM evaluation logic: Allow/Deny, Action/NotAction and
Resource/NotResource with wildcards, and the String*/Null condition operators with ForAnyValue/
ForAllValues/IfExists over resource and request tags. Anything it cannot evaluate (another condition
key, a policy variable, an unknown operator) makes the answer unknown (None), never "allowed".
Permission boundaries, SCPs and session policies are out of its sight.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

# The actions v2 needs to adopt v1 resources, from the controller's
# docs/install/iam_policy_v1_to_v2_additional.json: tagging the v1 SGs, load balancers and target
# groups (which carry ingress.k8s.aws/cluster but not yet elbv2.k8s.aws/cluster) and deleting v1
# target groups.
MIGRATION_ACTIONS: tuple[tuple[str, str], ...] = (
    ("ec2:CreateTags", "security-group"),
    ("ec2:DeleteTags", "security-group"),
    ("elasticloadbalancing:AddTags", "loadbalancer"),
    ("elasticloadbalancing:AddTags", "targetgroup"),
    ("elasticloadbalancing:RemoveTags", "loadbalancer"),
    ("elasticloadbalancing:RemoveTags", "targetgroup"),
    ("elasticloadbalancing:DeleteTargetGroup", "targetgroup"),
)
# The inline policy name the migration finding tells users to put the migration policy under.
MIGRATION_POLICY_NAME = "aws-lbc-v1-to-v2-migration"
_ADDING = {"ec2:createtags", "elasticloadbalancing:addtags"}
_REMOVING = {"ec2:deletetags", "elasticloadbalancing:removetags"}


def role_name_from_arn(role_arn: str) -> str:
    """arn:aws:iam::123456789012:role/some/path/name -> name."""
    return role_arn.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class PolicyDocument:
    name: str
    kind: str  # "inline" | "managed"
    arn: str | None
    document: Mapping = field(hash=False)

    @property
    def label(self) -> str:
        return f"inline policy {self.name}" if self.kind == "inline" else f"managed policy {self.arn}"


@dataclass(frozen=True)
class RolePolicies:
    role_arn: str
    documents: tuple[PolicyDocument, ...]


@dataclass(frozen=True)
class RequestContext:
    """What IAM would see for one call: the action, the resource ARN and the condition keys we model."""

    action: str
    resource: str
    resource_tags: tuple[tuple[str, str], ...] | None = ()  # None: the resource's tags were not read
    request_tags: tuple[tuple[str, str], ...] = ()
    tag_keys: tuple[str, ...] | None = None  # None: unknown which keys the call names

    def value(self, key: str) -> list[str] | None | _Unknown:
        lowered = key.lower()
        for prefix in ("aws:resourcetag/", "ec2:resourcetag/", "elasticloadbalancing:resourcetag/"):
            if lowered.startswith(prefix):
                if self.resource_tags is None:
                    return UNKNOWN
                found = [v for k, v in self.resource_tags if k == key[len(prefix):]]
                return found or None
        if lowered.startswith("aws:requesttag/"):
            found = [v for k, v in self.request_tags if k == key[len("aws:requesttag/"):]]
            return found or None
        if lowered == "aws:tagkeys":
            return UNKNOWN if self.tag_keys is None else (list(self.tag_keys) or None)
        if lowered in ("ec2:createaction", "elasticloadbalancing:createaction"):
            return None  # adoption tags existing resources; no create call is involved
        return UNKNOWN


class _Unknown:
    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN = _Unknown()


@dataclass(frozen=True)
class Verdict:
    action: str
    resource: str
    allowed: bool | None  # None: could not be decided from the documents
    allowed_by: str = ""  # the document that allows it
    denied_by: str = ""  # the document whose Deny blocks (or may block) it


def context_for(action: str, resource: str, resource_tags: Iterable[tuple[str, str]] | None,
                cluster: str) -> RequestContext:
    """The call v2 makes while adopting a v1 resource: it adds elbv2.k8s.aws/cluster=<cluster>."""
    lowered = action.lower()
    request: tuple[tuple[str, str], ...] = ()
    tag_keys: tuple[str, ...] | None = ()
    if lowered in _ADDING:
        request = (("elbv2.k8s.aws/cluster", cluster),)
        tag_keys = ("elbv2.k8s.aws/cluster",)
    elif lowered in _REMOVING:
        tag_keys = None
    tags = None if resource_tags is None else tuple(resource_tags)
    return RequestContext(action, resource, tags, request, tag_keys)


def evaluate(policies: RolePolicies, context: RequestContext) -> Verdict:
    allowed_by, maybe_allowed, denied_by, maybe_denied = "", "", "", ""
    for document in policies.documents:
        for statement in _statements(document.document):
            if not _applies(statement, context):
                continue
            result = _conditions(statement.get("Condition") or {}, context)
            deny = str(statement.get("Effect", "")).lower() == "deny"
            if deny and result is True:
                denied_by = denied_by or document.label
            elif deny and result is None:
                maybe_denied = maybe_denied or document.label
            elif not deny and result is True:
                allowed_by = allowed_by or document.label
            elif not deny and result is None:
                maybe_allowed = maybe_allowed or document.label
    if denied_by:
        return Verdict(context.action, context.resource, False, denied_by=denied_by)
    if allowed_by and not maybe_denied:
        return Verdict(context.action, context.resource, True, allowed_by=allowed_by)
    if allowed_by or maybe_allowed:
        return Verdict(context.action, context.resource, None, allowed_by=allowed_by or maybe_allowed,
                       denied_by=maybe_denied)
    return Verdict(context.action, context.resource, False)


def _statements(document: Mapping) -> list[dict]:
    statements = document.get("Statement") or []
    return [statements] if isinstance(statements, dict) else list(statements)


def _listed(value) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


def _applies(statement: dict, context: RequestContext) -> bool:
    if "Action" in statement:
        if not any(_wild(p, context.action, fold=True) for p in _listed(statement["Action"])):
            return False
    elif "NotAction" in statement:
        if any(_wild(p, context.action, fold=True) for p in _listed(statement["NotAction"])):
            return False
    else:
        return False
    if "Resource" in statement:
        return any(_wild(p, context.resource) for p in _listed(statement["Resource"]))
    if "NotResource" in statement:
        return not any(_wild(p, context.resource) for p in _listed(statement["NotResource"]))
    return False


_OPERATORS = {
    "stringequals": (False, lambda v, p: v == p),
    "stringnotequals": (True, lambda v, p: v == p),
    "stringequalsignorecase": (False, lambda v, p: v.lower() == p.lower()),
    "stringnotequalsignorecase": (True, lambda v, p: v.lower() == p.lower()),
    "stringlike": (False, lambda v, p: _wild(p, v)),
    "stringnotlike": (True, lambda v, p: _wild(p, v)),
}


def _conditions(block: Mapping, context: RequestContext) -> bool | None:
    """AND over every operator and key; None as soon as one part cannot be evaluated (unless another is False)."""
    unknown = False
    for operator, keys in block.items():
        for key, expected in (keys or {}).items():
            result = _condition(operator, key, _listed(expected), context)
            if result is False:
                return False
            unknown = unknown or result is None
    return None if unknown else True


def _condition(operator: str, key: str, expected: list[str], context: RequestContext) -> bool | None:
    name = operator.lower()
    quantifier = ""
    for prefix in ("forallvalues:", "foranyvalue:"):
        if name.startswith(prefix):
            quantifier, name = prefix[:-1], name[len(prefix):]
    if_exists = name.endswith("ifexists")
    name = name.removesuffix("ifexists")
    if any("${" in e for e in expected):
        return None  # policy variables depend on the principal; not modelled
    actual = context.value(key)
    if actual is UNKNOWN:
        return None
    if name == "null":
        want_absent = expected[0].lower() == "true" if expected else True
        return (actual is None) == want_absent
    if name not in _OPERATORS:
        return None
    negated, match = _OPERATORS[name]
    if actual is None:
        if quantifier == "forallvalues":
            return True
        if quantifier == "foranyvalue":
            return False
        return True if (negated or if_exists) else False
    hits = [any(match(v, p) for p in expected) for v in actual]
    if quantifier == "forallvalues":
        return all((not h) if negated else h for h in hits)
    if negated:
        return not any(hits) if quantifier != "foranyvalue" else any(not h for h in hits)
    return any(hits)


def _wild(pattern: str, value: str, fold: bool = False) -> bool:
    return _compiled(pattern, fold).fullmatch(value) is not None


@lru_cache(maxsize=512)
def _compiled(pattern: str, fold: bool) -> re.Pattern:
    parts = (".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return re.compile("".join(parts), re.IGNORECASE if fold else 0)
