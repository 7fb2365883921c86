output "replication_group_id" {
  description = "ID of the ElastiCache replication group."
  value       = local.replication_group.id
}

output "replication_group_arn" {
  description = "ARN of the ElastiCache replication group."
  value       = local.replication_group.arn
}

output "primary_endpoint_address" {
  description = "Primary endpoint (TLS, port 6379). ElastiCache moves this name to the promoted replica on failover. On a Global Datastore secondary it is read-only until promoted."
  value       = local.replication_group.primary_endpoint_address
}

output "reader_endpoint_address" {
  description = "Reader endpoint, spread over the replicas (TLS, port 6379)."
  value       = local.replication_group.reader_endpoint_address
}

output "port" {
  description = "Redis port (TLS only)."
  value       = local.port
}

output "auth_secret_arn" {
  description = "Secrets Manager secret holding the AUTH token, endpoints and the rediss:// URL for fudo (JSON keys auth_token, host, reader_host, port, global_datastore_role, url). The token itself is never an output."
  value       = aws_secretsmanager_secret.auth.arn
}

output "global_replication_group_id" {
  description = "Global Datastore id: the one created here (primary role), the one joined (secondary role), or null (none). Pass the primary's to the secondary region's module."
  value       = local.is_primary ? aws_elasticache_global_replication_group.this[0].global_replication_group_id : var.global_replication_group_id
}

output "global_datastore_role" {
  description = "Role of this replication group in the Global Datastore (primary, secondary or none)."
  value       = var.global_datastore_role
}

output "security_group_id" {
  description = "Security group of the cache nodes (ingress 6379 from allowed_security_group_ids and allowed_cidr_blocks only, no egress)."
  value       = aws_security_group.this.id
}

output "parameter_group_name" {
  description = "Parameter group of the replication group; null on a Global Datastore secondary (inherited from the global group)."
  value       = try(aws_elasticache_parameter_group.this[0].name, null)
}

output "log_group_names" {
  description = "CloudWatch log groups receiving the slow log and the engine log, keyed slow-log and engine-log."
  value       = { for k, g in aws_cloudwatch_log_group.this : k => g.name }
}
