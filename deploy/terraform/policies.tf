# The two policies of deploy/iam/, as policy documents. tests/deploy/test_terraform.py holds every
# statement here (actions, resources, conditions) equal to read-only.json and remediation.json,
# whose fit to the code tests/deploy/test_iam_policies.py checks. Change them together.

data "aws_partition" "current" {}

locals {
  partition = data.aws_partition.current.partition
}

data "aws_iam_policy_document" "read_only" {
  statement {
    sid    = "ReadLoadBalancersTargetsAndSecurityGroupRules"
    effect = "Allow"
    actions = [
      "ec2:DescribeInstances",
      "ec2:DescribeNetworkAcls",
      "ec2:DescribeNetworkInterfaces",
      "ec2:DescribeSecurityGroupRules",
      "ec2:DescribeSecurityGroups",
      "ec2:DescribeSubnets",
      "ec2:DescribeVpcs",
      "ec2:GetManagedPrefixListEntries",
      "elasticloadbalancing:DescribeLoadBalancers",
      "elasticloadbalancing:DescribeTags",
      "elasticloadbalancing:DescribeTargetGroupAttributes",
      "elasticloadbalancing:DescribeTargetGroups",
      "elasticloadbalancing:DescribeTargetHealth",
    ]
    resources = ["*"]
  }

  # Once per process: the rules-per-security-group quota (vpc L-0EA8095F), for RULE_QUOTA_NEAR.
  statement {
    sid    = "ReadRulesPerSecurityGroupQuota"
    effect = "Allow"
    actions = [
      "servicequotas:GetAWSDefaultServiceQuota",
      "servicequotas:GetServiceQuota",
    ]
    resources = ["*"]
  }

  statement {
    sid    = "ReadControllerRoleForPreflight"
    effect = "Allow"
    actions = [
      "iam:GetRole",
      "iam:GetRolePolicy",
      "iam:ListAttachedRolePolicies",
      "iam:ListRolePolicies",
    ]
    resources = ["arn:${local.partition}:iam::*:role/*"]
  }

  statement {
    sid    = "ReadControllerRoleAttachedPoliciesForPreflight"
    effect = "Allow"
    actions = [
      "iam:GetPolicy",
      "iam:GetPolicyVersion",
    ]
    resources = ["arn:${local.partition}:iam::*:policy/*"]
  }

  # Without --events-queue: who cut a path, looked up in CloudTrail after a revocation is detected.
  # LookupEvents has no resource-level permissions.
  statement {
    sid       = "LookUpRevocationsInCloudTrail"
    effect    = "Allow"
    actions   = ["cloudtrail:LookupEvents"]
    resources = ["*"]
  }

  # Only with --events-queue, and only on the monitor's own queues (events.tf names its queue so).
  statement {
    sid    = "ConsumeOwnEventsQueue"
    effect = "Allow"
    actions = [
      "sqs:DeleteMessage",
      "sqs:GetQueueAttributes",
      "sqs:ReceiveMessage",
    ]
    resources = ["arn:${local.partition}:sqs:*:*:alb-sg-monitor-*"]
  }
}

data "aws_iam_policy_document" "remediation" {
  # Only on the cluster's security groups (tagged kubernetes.io/cluster/<cluster>, any value).
  statement {
    sid       = "RestoreRulesOnClusterSecurityGroups"
    effect    = "Allow"
    actions   = ["ec2:AuthorizeSecurityGroupIngress"]
    resources = ["arn:${local.partition}:ec2:*:*:security-group/*"]

    condition {
      test     = "Null"
      variable = "aws:ResourceTag/kubernetes.io/cluster/${var.cluster_name}"
      values   = ["false"]
    }
  }

  # Every rule the monitor creates carries its owner tag.
  statement {
    sid       = "RestoredRulesMustCarryTheOwnerTag"
    effect    = "Allow"
    actions   = ["ec2:AuthorizeSecurityGroupIngress"]
    resources = ["arn:${local.partition}:ec2:*:*:security-group-rule/*"]

    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/alb-sg-monitor/owner"
      values   = [var.cluster_name]
    }
  }

  # Tagging only while creating a rule: no existing rule can be made to look like ours.
  statement {
    sid       = "TagRulesOnlyWhileRestoringThem"
    effect    = "Allow"
    actions   = ["ec2:CreateTags"]
    resources = ["arn:${local.partition}:ec2:*:*:security-group-rule/*"]

    condition {
      test     = "StringEquals"
      variable = "ec2:CreateAction"
      values   = ["AuthorizeSecurityGroupIngress"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/alb-sg-monitor/owner"
      values   = [var.cluster_name]
    }
  }

  # Revoke is authorized on the group only; that the monitor revokes only its own rules is the
  # code's job (deploy/iam/README.md).
  statement {
    sid       = "CleanUpOwnRulesOnClusterSecurityGroups"
    effect    = "Allow"
    actions   = ["ec2:RevokeSecurityGroupIngress"]
    resources = ["arn:${local.partition}:ec2:*:*:security-group/*"]

    condition {
      test     = "Null"
      variable = "aws:ResourceTag/kubernetes.io/cluster/${var.cluster_name}"
      values   = ["false"]
    }
  }
}
