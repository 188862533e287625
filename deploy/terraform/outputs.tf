output "role_arn" {
  description = "ARN of the monitor's role: the ServiceAccount's eks.amazonaws.com/role-arn annotation with IRSA."
  value       = aws_iam_role.monitor.arn
}

output "role_name" {
  description = "Name of the monitor's role."
  value       = aws_iam_role.monitor.name
}

output "read_only_policy_arn" {
  description = "ARN of the read-only policy."
  value       = aws_iam_policy.read_only.arn
}

output "remediation_policy_arn" {
  description = "ARN of the remediation policy; null unless enable_remediation."
  value       = var.enable_remediation ? aws_iam_policy.remediation[0].arn : null
}

output "service_account_annotations" {
  description = "Annotations for the monitor's ServiceAccount: the IRSA role annotation, or none with Pod Identity only."
  value       = local.use_irsa ? { "eks.amazonaws.com/role-arn" = aws_iam_role.monitor.arn } : {}
}

output "events_queue_url" {
  description = "URL of the events queue, the monitor's --events-queue; null unless enable_events_queue."
  value       = var.enable_events_queue ? aws_sqs_queue.events[0].id : null
}

output "events_queue_arn" {
  description = "ARN of the events queue; null unless enable_events_queue."
  value       = var.enable_events_queue ? aws_sqs_queue.events[0].arn : null
}
