# Optional (enable_events_queue): the EventBridge rule on the default bus that sends the CloudTrail
# events able to cut an ALB's path (deploy/events/event-pattern.json) to an SQS queue the monitor
# long-polls. CloudTrail must deliver management events to EventBridge: see README.md.

locals {
  # SQS queue names are at most 80 characters; the read-only policy allows the monitor only on
  # queues named alb-sg-monitor-*.
  events_queue_name = substr("alb-sg-monitor-events-${var.cluster_name}", 0, 80)
}

resource "aws_sqs_queue" "events" {
  count = var.enable_events_queue ? 1 : 0
  name  = local.events_queue_name
  # Events older than this are of no use for attribution, and a monitor that was down for longer
  # should not start on a backlog.
  message_retention_seconds = var.events_retention_seconds
  receive_wait_time_seconds = 20
  sqs_managed_sse_enabled   = true
  tags                      = var.tags
}

resource "aws_cloudwatch_event_rule" "events" {
  count         = var.enable_events_queue ? 1 : 0
  name          = local.events_queue_name
  description   = "alb-sg-monitor for ${var.cluster_name}: CloudTrail calls that can cut an ALB's path to its targets"
  event_pattern = file("${path.module}/../events/event-pattern.json")
  tags          = var.tags
}

resource "aws_cloudwatch_event_target" "events" {
  count     = var.enable_events_queue ? 1 : 0
  rule      = aws_cloudwatch_event_rule.events[0].name
  target_id = "alb-sg-monitor"
  arn       = aws_sqs_queue.events[0].arn
}

# EventBridge may send to the queue only on behalf of this rule, and nobody else may send at all:
# the Allow alone would not stop a principal of the account whose own IAM policy grants
# sqs:SendMessage (an administrator, a CI role with sqs:*), so the Deny refuses every SendMessage
# that does not come from this rule (a request without aws:SourceArn does not match ArnEquals, so
# ArnNotEquals denies it). A forged event cannot change a verdict (docs/daemon.md), but it can make
# the monitor check and read more: only the rule should write here.
data "aws_iam_policy_document" "events_queue" {
  count = var.enable_events_queue ? 1 : 0

  statement {
    sid       = "OnlyTheRuleSends"
    effect    = "Deny"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.events[0].arn]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "ArnNotEquals"
      variable = "aws:SourceArn"
      values   = [aws_cloudwatch_event_rule.events[0].arn]
    }
  }

  statement {
    sid       = "EventBridgeRuleSendsEvents"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.events[0].arn]

    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_cloudwatch_event_rule.events[0].arn]
    }
  }
}

resource "aws_sqs_queue_policy" "events" {
  count     = var.enable_events_queue ? 1 : 0
  queue_url = aws_sqs_queue.events[0].id
  policy    = data.aws_iam_policy_document.events_queue[0].json
}
