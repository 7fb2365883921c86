output "kms_key_arns" {
  description = "ARNs of this region's customer-managed keys by purpose: eks, redis, logs, s3, sns, sqs."
  value       = { for purpose, key in aws_kms_key.this : purpose => key.arn }
}

output "kms_key_ids" {
  description = "Key ids of this region's customer-managed keys by purpose."
  value       = { for purpose, key in aws_kms_key.this : purpose => key.key_id }
}

output "kms_alias_names" {
  description = "Alias names (alias/<name>/<purpose>) of this region's keys by purpose."
  value       = { for purpose, alias in aws_kms_alias.this : purpose => alias.name }
}

output "group_role_arns" {
  description = "ARNs of the user-group roles: ml_engineer, trading_system, operator, risk (empty when create_iam_roles is false). Feed ml_engineer and operator to the cluster module's access_entries."
  value       = { for group, role in aws_iam_role.group : group => role.arn }
}

output "group_role_names" {
  description = "Names of the user-group roles by group (empty when create_iam_roles is false)."
  value       = { for group, role in aws_iam_role.group : group => role.name }
}

output "workload_role_arn" {
  description = "ARN of fudo's EKS Pod Identity role (null when create_iam_roles is false); the cluster module associates it with ServiceAccount fudo."
  value       = one(aws_iam_role.workload[*].arn)
}

output "workload_role_name" {
  description = "Name of fudo's EKS Pod Identity role (null when create_iam_roles is false)."
  value       = one(aws_iam_role.workload[*].name)
}
