"""The Terraform module's optional events queue: the EventBridge rule uses the shipped event pattern,
the queue accepts messages only from that rule, everything exists only when asked for, and the queue
is one the read-only policy lets the monitor consume."""

from __future__ import annotations

import fnmatch
import json
import re

from tests.deploy.test_terraform import IAM, MODULE, ROOT, _raw, blocks, module

GATE = "${var.enable_events_queue ? 1 : 0}"


def test_the_rule_reads_the_shipped_event_pattern():
    rule = blocks("resource", "aws_cloudwatch_event_rule")["events"]
    match = re.fullmatch(r'\$\{file\("\$\{path\.module\}/(?P<path>[^"]+)"\)\}', _raw(rule["event_pattern"]))
    assert match, rule["event_pattern"]
    used = (MODULE / match["path"]).resolve()
    assert used == ROOT / "deploy" / "events" / "event-pattern.json"
    assert json.loads(used.read_text())["detail-type"] == ["AWS API Call via CloudTrail"]


def test_the_events_resources_exist_only_when_enabled():
    for type_ in ("aws_sqs_queue", "aws_cloudwatch_event_rule", "aws_cloudwatch_event_target", "aws_sqs_queue_policy"):
        assert blocks("resource", type_)["events"]["count"] == GATE, type_
    assert blocks("data", "aws_iam_policy_document")["events_queue"]["count"] == GATE
    variable = next(v for b in module()["variable"] for name, v in b.items() if _raw(name) == "enable_events_queue")
    assert variable["default"] is False


def test_the_rule_sends_to_the_queue_and_only_that_rule_may():
    target = blocks("resource", "aws_cloudwatch_event_target")["events"]
    assert _raw(target["arn"]) == "${aws_sqs_queue.events[0].arn}"
    assert _raw(target["rule"]) == "${aws_cloudwatch_event_rule.events[0].name}"
    deny, statement = blocks("data", "aws_iam_policy_document")["events_queue"]["statement"]
    # nobody else may send, whatever their own IAM policy says: a Deny of every SendMessage not
    # on behalf of the rule
    assert (_raw(deny["effect"]), [_raw(a) for a in deny["actions"]]) == ("Deny", ["sqs:SendMessage"])
    assert [(_raw(p["type"]), [_raw(i) for i in p["identifiers"]]) for p in deny["principals"]] == [("*", ["*"])]
    assert [(_raw(c["test"]), _raw(c["variable"]), [_raw(v) for v in c["values"]]) for c in deny["condition"]] == [
        ("ArnNotEquals", "aws:SourceArn", ["${aws_cloudwatch_event_rule.events[0].arn}"])]
    assert _raw(statement["effect"]) == "Allow"
    assert [_raw(a) for a in statement["actions"]] == ["sqs:SendMessage"]
    assert [_raw(i) for p in statement["principals"] for i in p["identifiers"]] == ["events.amazonaws.com"]
    assert [(_raw(c["test"]), _raw(c["variable"]), [_raw(v) for v in c["values"]]) for c in statement["condition"]] == [
        ("ArnEquals", "aws:SourceArn", ["${aws_cloudwatch_event_rule.events[0].arn}"])]
    policy = blocks("resource", "aws_sqs_queue_policy")["events"]
    assert _raw(policy["policy"]) == "${data.aws_iam_policy_document.events_queue[0].json}"


def test_the_queue_is_one_the_read_only_policy_lets_the_monitor_consume():
    name = next(body["events_queue_name"] for body in module()["locals"] if "events_queue_name" in body)
    assert _raw(name) == '${substr("alb-sg-monitor-events-${var.cluster_name}", 0, 80)}'
    queue_arn = "arn:aws:sqs:ap-northeast-1:111122223333:alb-sg-monitor-events-prod-eks"
    (statement,) = [s for s in json.loads((IAM / "read-only.json").read_text())["Statement"]
                    if any(a.startswith("sqs:") for a in s["Action"])]
    assert sorted(statement["Action"]) == ["sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"]
    assert fnmatch.fnmatchcase(queue_arn, statement["Resource"])
    assert not fnmatch.fnmatchcase("arn:aws:sqs:ap-northeast-1:111122223333:orders", statement["Resource"])


def test_the_queue_url_is_an_output():
    outputs = {_raw(name): body for block in module()["output"] for name, body in block.items()}
    assert _raw(outputs["events_queue_url"]["value"]) == "${var.enable_events_queue ? aws_sqs_queue.events[0].id : null}"
