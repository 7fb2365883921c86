################################################################################
# CloudWatch log groups: fudo's audit journal and its application logs
#
# Encrypted with the customer-managed logs key; retention at least a year (the audit
# journal 7 years by default). The log shipper in the cluster (Fluent Bit or the
# CloudWatch agent) writes to these names; it must not create its own groups.
################################################################################

locals {
  log_groups = {
    audit       = { name = "/fudo/${var.name}/audit", retention = var.audit_log_retention_days }
    application = { name = "/fudo/${var.name}/application", retention = var.application_log_retention_days }
  }
}

resource "aws_cloudwatch_log_group" "this" {
  for_each = local.log_groups

  name              = each.value.name
  retention_in_days = each.value.retention
  kms_key_id        = var.logs_kms_key_arn
  log_group_class   = "STANDARD"

  tags = merge(var.tags, { Purpose = each.key })
}
