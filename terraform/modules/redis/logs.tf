################################################################################
# Slow log and engine log, delivered by ElastiCache to KMS-encrypted log groups
################################################################################

resource "aws_cloudwatch_log_group" "this" {
  for_each = toset(["slow-log", "engine-log"])

  name              = "/aws/elasticache/${var.name}/${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = coalesce(var.log_kms_key_arn, var.kms_key_arn)

  tags = local.tags
}
