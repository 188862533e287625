"""What a failed AWS read means to a user: its class, the advice that fits that class, and one
OBSERVATION_INCOMPLETE finding per distinct failure instead of one per call.

Pure: ReadFailure values in, words and Findings out. The codes are what botocore reports: the AWS
error code of a ClientError, the class name of a BotoCoreError raised before any answer came, or
ResponseParserError for an answer that could not be parsed; and EmptyAnswer for an answer listing
nothing where what is known says otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from monitor.core.model import Finding, ReadFailure, Severity

CONNECTION = "connection"
THROTTLING = "throttling"
ACCESS_DENIED = "access_denied"
OTHER = "other"

# botocore exceptions raised when no AWS answer arrived at all (closed port, DNS, proxy, TLS, timeouts).
_CONNECTION = frozenset({
    "EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ConnectionClosedError",
    "ProxyConnectionError", "SSLError", "HTTPClientError", "ConnectionError", "IncompleteReadError",
    "ResponseStreamingError",
})
# The throttling codes botocore's standard retry mode treats as throttling, plus EC2's own.
_THROTTLING = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
    "TooManyRequestsException", "RequestLimitExceeded", "RequestThrottled", "SlowDown",
    "BandwidthLimitExceeded", "PriorRequestNotComplete", "EC2ThrottledException", "LimitExceededException",
})
# Refusals: a missing permission (IAM, SCP, boundary) or credentials AWS does not accept.
_ACCESS_DENIED = frozenset({
    "AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedAccess", "AuthFailure",
    "Forbidden", "InvalidClientTokenId", "UnrecognizedClientException", "ExpiredToken", "ExpiredTokenException",
    "SignatureDoesNotMatch", "IncompleteSignature", "InvalidAccessKeyId", "MissingAuthenticationToken",
    "NoCredentialsError", "OptInRequired",
})
_IAM_PREFIX = {"ec2": "ec2", "elbv2": "elasticloadbalancing", "iam": "iam"}
# Not AWS error codes: answers that arrived but cannot be right, so a failed read, never a fact. A
# glitch must not erase what the monitor knows.
EMPTY_ANSWER = "EmptyAnswer"  # lists nothing (or less than asked) where what is known says there is something
NOT_LISTED = "NotListed"  # a load balancer the monitor knows was absent from the listing: read by ARN next
# botocore's name for an answer it could not parse (cut short, not XML or JSON).
UNPARSABLE = "ResponseParserError"
# A listing the monitor ended itself (monitor/aws/calls.py): every page was answered, but a next
# token came again (A, B, A, ...) or the pages passed the cap, so it would never have ended. Class
# "other": not retried within the cycle, read again at the next one.
PAGINATION_LOOP = "PaginationLoop"
PAGE_LIMIT = "PaginationPageLimit"
_ENDLESS_LISTING = frozenset({PAGINATION_LOOP, PAGE_LIMIT})


def classify(code: str) -> str:
    """connection, throttling, access_denied or other, from an AWS error code or botocore error name."""
    if code in _CONNECTION:
        return CONNECTION
    if code in _THROTTLING:
        return THROTTLING
    if code in _ACCESS_DENIED:
        return ACCESS_DENIED
    return OTHER


def cause(failure: ReadFailure) -> str:
    """What happened, in a few words a human reads before the code: e.g. 'AWS could not be reached'."""
    kind = classify(failure.code)
    if kind == CONNECTION:
        return f"AWS could not be reached ({failure.code})"
    if kind == THROTTLING:
        return f"AWS throttled the request ({failure.code})"
    if kind == ACCESS_DENIED:
        return f"AWS refused it ({failure.code})"
    if failure.code == NOT_LISTED:
        return f"{failure.message.strip()[:200]} ({failure.code})"
    if failure.code == EMPTY_ANSWER:
        return f"its answer contradicts what is known ({EMPTY_ANSWER}: {failure.message.strip()[:200]})"
    if failure.code == UNPARSABLE:
        return f"its answer could not be parsed ({UNPARSABLE})"
    detail = f": {failure.message.strip()[:160]}" if failure.message.strip() else ""
    if failure.code in _ENDLESS_LISTING:
        return f"its listing would never end ({failure.code}{detail})"
    return f"AWS answered {failure.code}{detail}"


def advice(failure: ReadFailure) -> str:
    """The next step that fits the failure's class."""
    kind = classify(failure.code)
    if kind == CONNECTION:
        return ("check the AWS endpoint the monitor uses (AWS_ENDPOINT_URL, the region, a proxy or VPC "
                "endpoint) and the network path from the monitor to it")
    if kind == THROTTLING:
        return ("the account's API rate is shared with the load balancer controllers and the VPC CNI; the read is "
                "retried at the next cycle, and if this persists lengthen --interval or find the busiest caller "
                "in CloudTrail")
    if kind == ACCESS_DENIED:
        action = f"{_IAM_PREFIX.get(failure.service, failure.service)}:{failure.operation}"
        return (f"allow {action} to the monitor's role (deploy/iam/read-only.json) and check that the monitor "
                "runs with the credentials meant for it (IRSA or EKS Pod Identity)")
    if failure.code == NOT_LISTED:
        return ("the monitor reads each such load balancer by its ARN before it forgets anything about it; deleted, "
                "it leaves the report once AWS says so, else it is judged again; a one-shot check that meets a "
                "deletion while it runs says so and exits 3: run it again")
    if failure.code == "NoMatchingInterface":
        # Not an AWS fault: the target itself has no network interface behind it any more.
        return ("a registered target has no network interface: usually a pod or node that is gone while its "
                "target drains (it clears when deregistration ends), else an address outside the VPC "
                "registered without AvailabilityZone=all; see `aws elbv2 describe-target-health` for the "
                "target group")
    if failure.code in _ENDLESS_LISTING:
        return ("the monitor stopped paging rather than page forever and reads it again at the next cycle; "
                "pages answered over and over come from the endpoint (AWS, or a proxy or VPC endpoint between "
                "the monitor and AWS): if this persists, check that path and the AWS Health Dashboard for the region")
    if failure.code in (EMPTY_ANSWER, UNPARSABLE):
        return ("the read is retried at the next cycle and nothing is forgotten on it; if this persists, look for a "
                "proxy or VPC endpoint between the monitor and AWS that cuts or rewrites answers")
    return "the read is retried at the next cycle; if this persists, check the AWS Health Dashboard for the region"


@dataclass(frozen=True)
class Distinct:
    """All failures of one (service, operation, code): said once, however many calls failed."""

    service: str
    operation: str
    code: str
    kind: str
    count: int
    scopes: tuple[str, ...]
    first: ReadFailure


def distinct(failures: Iterable[ReadFailure]) -> tuple[Distinct, ...]:
    """Failures grouped by (service, operation, code), in the order first seen."""
    groups: dict[tuple[str, str, str], list[ReadFailure]] = {}
    for failure in failures:
        groups.setdefault((failure.service, failure.operation, failure.code), []).append(failure)
    out = []
    for (service, operation, code), items in groups.items():
        scopes = tuple(dict.fromkeys(f.scope for f in items if f.scope))
        out.append(Distinct(service, operation, code, classify(code), len(items), scopes, items[0]))
    return tuple(out)


def incomplete_findings(failures: Iterable[ReadFailure]) -> tuple[Finding, ...]:
    """One OBSERVATION_INCOMPLETE warning per distinct failure, saying its class and what to do."""
    return tuple(_finding(d) for d in distinct(failures))


def _finding(d: Distinct) -> Finding:
    if not d.scopes:
        about = ""
    elif len(d.scopes) == 1:
        about = f" for {d.scopes[0]}"
    else:
        about = f" for {d.scopes[0]} and {len(d.scopes) - 1} other request(s)"
    return Finding(
        code="OBSERVATION_INCOMPLETE",
        severity=Severity.WARNING,
        message=(f"{d.service} {d.operation}{about} failed, {cause(d.first)}: what depends on it is unknown; "
                 f"{advice(d.first)}."),
    )


def listing_failure(failures: Iterable[ReadFailure], listed: bool) -> str | None:
    """Why the cluster's load balancers could not all be listed or told apart, when that is so;
    `listed` says whether some of them were found all the same."""
    failures = tuple(failures)
    listing = next((f for f in failures if f.service == "elbv2" and f.operation == "DescribeLoadBalancers"), None)
    if listing is not None and not listed:
        return f"could not list load balancers: {cause(listing)}"
    tags = next((f for f in failures if f.service == "elbv2" and f.operation == "DescribeTags"), None)
    if tags is not None:
        some = "some load balancers' tags" if listed else "load balancer tags"
        return f"could not read {some}, so which belong to this cluster is unknown: {cause(tags)}"
    return None
