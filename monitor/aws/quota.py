"""The rules-per-security-group quota, read from Service Quotas once per process."""

from __future__ import annotations

from monitor.aws.calls import attempt
from monitor.aws.session import AwsClients
from monitor.core.model import ReadFailure, RuleQuota
from monitor.core.quota import DEFAULT_QUOTA, QUOTA_CODE

SERVICE_CODE = "vpc"


def read_rule_quota(clients: AwsClients) -> RuleQuota:
    """The account's applied quota (GetServiceQuota); where none is applied, or it cannot be read,
    AWS's default for the account (GetAWSDefaultServiceQuota); when neither answers (denied,
    throttled, not served), DEFAULT_QUOTA, marked as not read. A failure here is no failed read of
    the check: only the RULE_QUOTA_NEAR message depends on it, and it says so."""
    client = clients.servicequotas
    if client is None:
        return RuleQuota(DEFAULT_QUOTA, read=False)
    failures: list[ReadFailure] = []
    for answer in (
        lambda: attempt(failures, "service-quotas", "GetServiceQuota",
                        lambda: client.get_service_quota(ServiceCode=SERVICE_CODE, QuotaCode=QUOTA_CODE)),
        lambda: attempt(failures, "service-quotas", "GetAWSDefaultServiceQuota",
                        lambda: client.get_aws_default_service_quota(ServiceCode=SERVICE_CODE, QuotaCode=QUOTA_CODE)),
    ):
        value = _value(answer())
        if value is not None:
            return RuleQuota(value, read=True)
    return RuleQuota(DEFAULT_QUOTA, read=False)


def _value(answer: dict | None) -> int | None:
    """The quota's value, a positive whole number, or None (no answer, or one without it)."""
    try:
        value = int((answer or {}).get("Quota", {}).get("Value"))
    except (TypeError, ValueError):
        return None
    return value if value > 0 else None
