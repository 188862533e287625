"""How the monitor marks the rules it restores, so it can recognise (and only ever revoke) its own.

A restored rule carries our tags and our description. The description never parses as the v2
label (`elbv2.k8s.aws/targetGroupBinding=shared`): v2 then sees its wanted tuple as present and
never revokes our copy, because it only revokes labelled rules (docs/controllers.md).
"""

from __future__ import annotations

import calendar
import re
import time

from monitor.core import controllers
from monitor.core.model import Rule

OWNER_TAG = "alb-sg-monitor/owner"  # value: the cluster name
RESTORED_FOR_TAG = "alb-sg-monitor/restored-for"  # value: the load balancer name
RESTORED_AT_TAG = "alb-sg-monitor/restored-at"  # value: UTC time, ISO 8601
DESCRIPTION_PREFIX = "alb-sg-monitor restored"

# EC2 allows a-zA-Z0-9, spaces and ._-:/()#,@[]+=&;{}!$* in rule descriptions (255 characters).
# '=' and ',' are dropped too, so no part of our description can form a key=value label.
_UNSAFE = re.compile(r"[^A-Za-z0-9 ._\-:/()#@\[\]+&;{}!$*]")
_MAX_DESCRIPTION = 255


def description(lb_name: str, now: float) -> str:
    """E.g. 'alb-sg-monitor restored 2025-01-31 for k8s-shop-web-0a1b2c3d4e'."""
    date = time.strftime("%Y-%m-%d", time.gmtime(now))
    text = f"{DESCRIPTION_PREFIX} {date} for {_UNSAFE.sub('', lb_name) or 'unknown'}"[:_MAX_DESCRIPTION]
    if controllers.has_shared_label(text):  # impossible without '='; kept as a tripwire
        raise AssertionError(f"our description {text!r} parses as the v2 label")
    return text


def rule_tags(cluster: str, lb_name: str, now: float) -> tuple[tuple[str, str], ...]:
    """The tags a restored rule is created with (TagSpecifications, security-group-rule)."""
    return (
        (OWNER_TAG, cluster),
        (RESTORED_AT_TAG, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))),
        (RESTORED_FOR_TAG, lb_name),
    )


def is_ours(rule: Rule, cluster: str) -> bool:
    """Only a rule tagged as created by this monitor for this cluster is ever ours to revoke."""
    return bool(cluster) and dict(rule.tags).get(OWNER_TAG) == cluster


def is_ours_tags(tags: tuple[tuple[str, str], ...]) -> bool:
    return bool(dict(tags).get(OWNER_TAG))


def restored_for(rule: Rule) -> str | None:
    return dict(rule.tags).get(RESTORED_FOR_TAG)


def restored_at(rule: Rule) -> float | None:
    """When the rule was restored, from its tag (whole seconds, UTC); None when absent or unreadable."""
    text = dict(rule.tags).get(RESTORED_AT_TAG)
    try:
        return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))) if text else None
    except ValueError:
        return None
