# The IAM role the monitor's pod assumes (IRSA, EKS Pod Identity, or both), with the read-only
# policy always and the remediation policy when enforce mode is wanted.

locals {
  role_name = coalesce(var.role_name, "alb-sg-monitor-${var.cluster_name}")
  use_irsa  = var.oidc_provider_arn != null
  # The condition keys of IRSA's trust are the issuer without its scheme.
  oidc_issuer     = local.use_irsa ? replace(coalesce(var.oidc_provider_url, ""), "https://", "") : ""
  service_account = "system:serviceaccount:${var.namespace}:${var.service_account}"
}

data "aws_iam_policy_document" "trust" {
  dynamic "statement" {
    for_each = local.use_irsa ? [1] : []
    content {
      sid     = "ServiceAccountThroughIRSA"
      effect  = "Allow"
      actions = ["sts:AssumeRoleWithWebIdentity"]

      principals {
        type        = "Federated"
        identifiers = [var.oidc_provider_arn]
      }

      condition {
        test     = "StringEquals"
        variable = "${local.oidc_issuer}:sub"
        values   = [local.service_account]
      }

      condition {
        test     = "StringEquals"
        variable = "${local.oidc_issuer}:aud"
        values   = ["sts.amazonaws.com"]
      }
    }
  }

  dynamic "statement" {
    for_each = var.enable_pod_identity ? [1] : []
    content {
      sid     = "ServiceAccountThroughPodIdentity"
      effect  = "Allow"
      actions = ["sts:AssumeRole", "sts:TagSession"]

      principals {
        type        = "Service"
        identifiers = ["pods.eks.amazonaws.com"]
      }
    }
  }
}

resource "aws_iam_role" "monitor" {
  name                 = local.role_name
  description          = "alb-sg-monitor for EKS cluster ${var.cluster_name}"
  assume_role_policy   = data.aws_iam_policy_document.trust.json
  permissions_boundary = var.permissions_boundary
  tags                 = var.tags

  lifecycle {
    precondition {
      condition     = local.use_irsa || var.enable_pod_identity
      error_message = "Set oidc_provider_arn and oidc_provider_url (IRSA), or enable_pod_identity = true, or both."
    }
    precondition {
      condition     = !local.use_irsa || var.oidc_provider_url != null
      error_message = "IRSA needs oidc_provider_url as well as oidc_provider_arn."
    }
  }
}

resource "aws_iam_policy" "read_only" {
  name        = "${local.role_name}-read-only"
  description = "alb-sg-monitor: the reads of every mode"
  policy      = data.aws_iam_policy_document.read_only.json
  tags        = var.tags
}

resource "aws_iam_role_policy_attachment" "read_only" {
  role       = aws_iam_role.monitor.name
  policy_arn = aws_iam_policy.read_only.arn
}

resource "aws_iam_policy" "remediation" {
  count       = var.enable_remediation ? 1 : 0
  name        = "${local.role_name}-remediation"
  description = "alb-sg-monitor --mode enforce: restore revoked rules on the security groups of ${var.cluster_name}"
  policy      = data.aws_iam_policy_document.remediation.json
  tags        = var.tags
}

resource "aws_iam_role_policy_attachment" "remediation" {
  count      = var.enable_remediation ? 1 : 0
  role       = aws_iam_role.monitor.name
  policy_arn = aws_iam_policy.remediation[0].arn
}

resource "aws_eks_pod_identity_association" "monitor" {
  count           = var.enable_pod_identity ? 1 : 0
  cluster_name    = var.cluster_name
  namespace       = var.namespace
  service_account = var.service_account
  role_arn        = aws_iam_role.monitor.arn
  tags            = var.tags
}
