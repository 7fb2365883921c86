output "bucket_arn" {
  description = "ARN of the audit bucket (Object Lock COMPLIANCE); security module input audit_bucket_arn."
  value       = aws_s3_bucket.audit.arn
}

output "bucket_id" {
  description = "Name of the audit bucket; fudo's audit writer puts its records here (requests must carry Content-MD5 or an SDK checksum, as Object Lock requires)."
  value       = aws_s3_bucket.audit.id
}

output "replica_bucket_arn" {
  description = "ARN of the audit bucket's replica in the replica region (Object Lock COMPLIANCE); security module input additional_audit_bucket_arns."
  value       = aws_s3_bucket.audit_replica.arn
}

output "replica_bucket_id" {
  description = "Name of the audit bucket's replica in the replica region."
  value       = aws_s3_bucket.audit_replica.id
}

output "model_bucket_arn" {
  description = "ARN of the model registry bucket; security module input model_bucket_arn."
  value       = aws_s3_bucket.models.arn
}

output "model_bucket_id" {
  description = "Name of the model registry bucket."
  value       = aws_s3_bucket.models.id
}

output "model_replica_bucket_arn" {
  description = "ARN of the model registry's replica in the replica region; security module input additional_model_bucket_arns."
  value       = aws_s3_bucket.models_replica.arn
}

output "model_replica_bucket_id" {
  description = "Name of the model registry's replica in the replica region (what fudo in that region reads)."
  value       = aws_s3_bucket.models_replica.id
}

output "access_log_bucket_ids" {
  description = "Names of the S3 server access log buckets, by region role (primary, replica)."
  value = {
    primary = aws_s3_bucket.logs.id
    replica = aws_s3_bucket.logs_replica.id
  }
}

output "replication_role_arn" {
  description = "ARN of the IAM role S3 replication runs as."
  value       = aws_iam_role.replication.arn
}

output "log_group_names" {
  description = "CloudWatch log group names by purpose: audit (fudo's audit journal), application."
  value       = { for purpose, group in aws_cloudwatch_log_group.this : purpose => group.name }
}

output "log_group_arns" {
  description = "CloudWatch log group ARNs by purpose (without the trailing :*); security module input audit_log_group_arns takes the audit one."
  value       = { for purpose, group in aws_cloudwatch_log_group.this : purpose => group.arn }
}
