"""The Terraform module's IAM policy documents are the JSON policies the code is tested against.

tests/deploy/test_iam_policies.py holds deploy/iam/*.json to the AWS calls the code makes; this file holds
deploy/terraform/ to those JSON files, statement by statement (actions, resources, conditions), so
that hold carries over to what Terraform creates. The HCL is parsed with python-hcl2, and the few
interpolations it uses are resolved the way the JSON spells them (partition `aws`, the cluster
name placeholder CLUSTER_NAME). No provider can be installed here, so `terraform validate` does not
run; `terraform fmt -check` runs where the binary is.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "deploy" / "terraform"
IAM = ROOT / "deploy" / "iam"
# How the module writes what the JSON files spell literally.
INTERPOLATIONS = {"${local.partition}": "aws", "${var.cluster_name}": "CLUSTER_NAME"}


def _raw(value: str) -> str:
    """An HCL string as python-hcl2 gives it, without its quotes (a bare reference is `${...}`)."""
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def _text(value: str) -> str:
    """An HCL string with the module's interpolations resolved as the JSON files spell them."""
    value = _raw(value)
    for reference, literal in INTERPOLATIONS.items():
        value = value.replace(reference, literal)
    assert "${" not in value, f"an interpolation the test does not know: {value}"
    return value


@cache
def module() -> dict[str, Any]:
    merged: dict[str, list[Any]] = {}
    for path in sorted(MODULE.glob("*.tf")):
        with path.open() as handle:
            for kind, blocks in hcl2.load(handle).items():
                merged.setdefault(kind, []).extend(blocks)
    return merged


def blocks(kind: str, type_: str) -> dict[str, Any]:
    """Every `kind "type_" "name" {...}` block of the module, by name."""
    found = {}
    for block in module().get(kind, []):
        for block_type, named in block.items():
            if _raw(block_type) == type_:
                found.update({_raw(name): body for name, body in named.items() if not name.startswith("__")})
    return found


def _as_set(value: str | list[str]) -> frozenset[str]:
    return frozenset([value] if isinstance(value, str) else value)


def from_json(path: Path) -> list[dict[str, Any]]:
    """The statements of a policy file, normalised: single strings become sets."""
    return [{"Sid": s["Sid"], "Effect": s["Effect"], "Action": _as_set(s["Action"]),
             "Resource": _as_set(s["Resource"]),
             "Condition": {test: {key: _as_set(values) for key, values in keys.items()}
                           for test, keys in s.get("Condition", {}).items()}}
            for s in json.loads(path.read_text())["Statement"]]


def from_hcl(document: str) -> list[dict[str, Any]]:
    """The statements of an aws_iam_policy_document, as the provider renders them to JSON."""
    statements = []
    for s in blocks("data", "aws_iam_policy_document")[document]["statement"]:
        condition: dict[str, dict[str, frozenset[str]]] = {}
        for c in s.get("condition", []):
            keys = condition.setdefault(_text(c["test"]), {})
            variable = _text(c["variable"])
            assert variable not in keys, f"{document}: {variable} tested twice with one operator"
            keys[variable] = frozenset(_text(v) for v in c["values"])
        assert not {"not_actions", "not_resources", "principals"} & s.keys(), s
        statements.append({"Sid": _text(s["sid"]), "Effect": _text(s.get("effect", '"Allow"')),
                           "Action": frozenset(_text(a) for a in s["actions"]),
                           "Resource": frozenset(_text(r) for r in s["resources"]),
                           "Condition": condition})
    return statements


@pytest.mark.parametrize("document, path", [("read_only", IAM / "read-only.json"),
                                            ("remediation", IAM / "remediation.json")])
def test_each_policy_document_is_the_json_policy_statement_by_statement(document, path):
    hcl, expected = from_hcl(document), from_json(path)
    assert [s["Sid"] for s in hcl] == [s["Sid"] for s in expected]
    for got, want in zip(hcl, expected):
        assert got == want, f"{document} statement {want['Sid']} differs from {path.name}"


def test_the_comparison_sees_a_changed_action():
    """The comparison is not vacuous: a JSON policy with one more action no longer matches."""
    changed = from_json(IAM / "read-only.json")
    changed[0]["Action"] |= {"ec2:DescribeRouteTables"}
    assert from_hcl("read_only") != changed


def test_remediation_is_attached_only_when_enabled():
    for kind, type_, name in (("resource", "aws_iam_policy", "remediation"),
                              ("resource", "aws_iam_role_policy_attachment", "remediation")):
        assert blocks(kind, type_)[name]["count"] == "${var.enable_remediation ? 1 : 0}"
    attachment = blocks("resource", "aws_iam_role_policy_attachment")["read_only"]
    assert "count" not in attachment  # the reads are always needed
    variable = next(v for b in module()["variable"] for name, v in b.items() if _raw(name) == "enable_remediation")
    assert variable["default"] is False


def test_the_role_trusts_irsa_for_the_service_account_and_pod_identity_as_an_option():
    trust = blocks("data", "aws_iam_policy_document")["trust"]["dynamic"]
    statements = {_raw(body["content"][0]["sid"]): (_raw(body["for_each"]), body["content"][0])
                  for dynamic in trust for body in dynamic.values()}
    (irsa_if, irsa), (pod_if, pod_identity) = (statements["ServiceAccountThroughIRSA"],
                                               statements["ServiceAccountThroughPodIdentity"])
    assert irsa_if == "${local.use_irsa ? [1] : []}" and pod_if == "${var.enable_pod_identity ? [1] : []}"
    assert [_raw(a) for a in irsa["actions"]] == ["sts:AssumeRoleWithWebIdentity"]
    assert [_raw(i) for p in irsa["principals"] for i in p["identifiers"]] == ["${var.oidc_provider_arn}"]
    assert {_raw(c["variable"]): [_raw(v) for v in c["values"]] for c in irsa["condition"]} == {
        "${local.oidc_issuer}:sub": ["${local.service_account}"],
        "${local.oidc_issuer}:aud": ["sts.amazonaws.com"]}
    assert sorted(_raw(a) for a in pod_identity["actions"]) == ["sts:AssumeRole", "sts:TagSession"]
    assert [_raw(i) for p in pod_identity["principals"] for i in p["identifiers"]] == ["pods.eks.amazonaws.com"]
    association = blocks("resource", "aws_eks_pod_identity_association")["monitor"]
    assert association["count"] == "${var.enable_pod_identity ? 1 : 0}"
    assert _raw(association["role_arn"]) == "${aws_iam_role.monitor.arn}"
    assert "role_arn" in {_raw(name) for block in module()["output"] for name in block}


def test_terraform_fmt_check():
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip("terraform is not on PATH: `terraform fmt -check` needs the binary (no provider is needed)")
    result = subprocess.run([terraform, "fmt", "-check", "-recursive", "-diff", str(MODULE)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"run `terraform fmt -recursive deploy/terraform`:\n{result.stdout}"
