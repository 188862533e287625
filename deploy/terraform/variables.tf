variable "cluster_name" {
  description = "EKS cluster name, the value the monitor gets as --cluster-name. Scopes the remediation policy to the cluster's security groups."
  type        = string
}

variable "role_name" {
  description = "Name of the IAM role the monitor's pod assumes. Default: alb-sg-monitor-<cluster_name>."
  type        = string
  default     = null
}

variable "namespace" {
  description = "Kubernetes namespace of the monitor's service account."
  type        = string
  default     = "alb-sg-monitor"
}

variable "service_account" {
  description = "Name of the monitor's Kubernetes service account."
  type        = string
  default     = "alb-sg-monitor"
}

variable "oidc_provider_arn" {
  description = "IRSA: ARN of the cluster's IAM OIDC provider. Leave null to use EKS Pod Identity only."
  type        = string
  default     = null
}

variable "oidc_provider_url" {
  description = "IRSA: issuer URL of the cluster's OIDC provider (with or without https://), e.g. the cluster's identity[0].oidc[0].issuer."
  type        = string
  default     = null
}

variable "enable_pod_identity" {
  description = "Trust EKS Pod Identity (pods.eks.amazonaws.com) and associate the role with the service account. Needs the eks-pod-identity-agent add-on on the cluster."
  type        = bool
  default     = false
}

variable "enable_remediation" {
  description = "Attach the remediation policy, which --mode enforce needs. Observe mode (the default) needs only the read-only policy."
  type        = bool
  default     = false
}

variable "permissions_boundary" {
  description = "ARN of a permissions boundary for the role, if your account requires one."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags for the role and the policies."
  type        = map(string)
  default     = {}
}

variable "enable_events_queue" {
  description = "Create the EventBridge rule and SQS queue that bring CloudTrail events about security groups and load balancers to the monitor (its --events-queue)."
  type        = bool
  default     = false
}

variable "events_retention_seconds" {
  description = "How long the events queue keeps a message the monitor has not read (SQS allows 60 to 1209600)."
  type        = number
  default     = 21600

  validation {
    condition     = var.events_retention_seconds >= 60 && var.events_retention_seconds <= 1209600
    error_message = "events_retention_seconds must be between 60 and 1209600 (SQS limits)."
  }
}
