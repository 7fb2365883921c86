################################################################################
# Customer-managed KMS keys, one per purpose, in the provider's region
#
# Every key rotates automatically. Its policy gives the account (root) full control,
# so that IAM policies in this account decide who uses it (no principal gets a
# key without an IAM grant), and gives the AWS services that call KMS under their
# own service principal (CloudWatch Logs, CloudWatch alarms -> SNS, EventBridge ->
# SQS) exactly the operations they need. Services that call KMS with the caller's
# credentials or through grants (EKS, ElastiCache, S3, Secrets Manager, SNS, SQS)
# are covered by the IAM permissions of the calling role.
#
# Keys are per region (multi_region = false): each region's instance of this module
# creates its own set, and replicated data is re-encrypted with the destination
# region's key. A region's loss never takes the other region's keys with it.
################################################################################

locals {
  key_purposes = {
    eks   = "EKS envelope encryption of Kubernetes secrets"
    redis = "ElastiCache (Redis) encryption at rest and the Redis AUTH secret"
    logs  = "CloudWatch Logs log groups (fudo audit journal, application logs, VPC flow logs)"
    s3    = "S3 buckets (audit, audit replica, model registry)"
    sns   = "SNS alarm topics"
    sqs   = "SQS queues (Karpenter interruption queue)"
  }
}

data "aws_iam_policy_document" "key" {
  #checkov:skip=CKV_AWS_109:This is a KMS key policy: Resource "*" means the key the policy is attached to, nothing else; administration is limited to the account root (IAM delegation).
  #checkov:skip=CKV_AWS_111:This is a KMS key policy: Resource "*" means the key the policy is attached to; the service principals get only data-key operations, scoped by conditions.
  #checkov:skip=CKV_AWS_356:This is a KMS key policy: Resource "*" means the key the policy is attached to and cannot name any other resource.
  for_each = local.key_purposes

  # Account root: administration and IAM delegation. Without this statement IAM
  # policies could not grant use of the key and the key could become unmanageable.
  statement {
    sid       = "AccountAdministration"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = [local.root_arn]
    }
  }

  # The GPU nodes' EBS volumes are encrypted with the eks key (cluster module, Karpenter's
  # EC2NodeClass). Launches go through EC2 under whichever principal starts the instance
  # (Karpenter's role, or the EC2 Spot / Auto Scaling service-linked roles), so the key admits
  # any principal of this account, but only through EC2 in this region (the EBS pattern from
  # the KMS and Karpenter documentation).
  dynamic "statement" {
    for_each = each.key == "eks" ? [1] : []

    content {
      sid = "EbsVolumesThroughEc2"
      actions = [
        "kms:Encrypt",
        "kms:Decrypt",
        "kms:ReEncrypt*",
        "kms:GenerateDataKey*",
        "kms:CreateGrant",
        "kms:DescribeKey",
      ]
      resources = ["*"]

      principals {
        type        = "AWS"
        identifiers = ["*"]
      }

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["ec2.${local.region}.${local.dns_suffix}"]
      }

      condition {
        test     = "StringEquals"
        variable = "kms:CallerAccount"
        values   = [local.account_id]
      }
    }
  }

  # CloudWatch Logs encrypts log events with the key under its own service principal,
  # only for log groups of this account and region.
  dynamic "statement" {
    for_each = each.key == "logs" ? [1] : []

    content {
      sid = "CloudWatchLogs"
      actions = [
        "kms:Encrypt",
        "kms:Decrypt",
        "kms:ReEncryptFrom",
        "kms:ReEncryptTo",
        "kms:GenerateDataKey",
        "kms:GenerateDataKeyWithoutPlaintext",
        "kms:DescribeKey",
      ]
      resources = ["*"]

      principals {
        type        = "Service"
        identifiers = ["logs.${local.region}.${local.dns_suffix}"]
      }

      condition {
        test     = "ArnLike"
        variable = "kms:EncryptionContext:aws:logs:arn"
        values   = ["arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:*"]
      }
    }
  }

  # CloudWatch alarms and EventBridge rules (ElastiCache events, monitoring module) publish to
  # the KMS-encrypted SNS topics under their own service principals; the topic policies
  # restrict them to this account's alarms and rules.
  dynamic "statement" {
    for_each = each.key == "sns" ? [1] : []

    content {
      sid       = "AlarmsAndEventsToEncryptedTopics"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = ["*"]

      principals {
        type        = "Service"
        identifiers = ["cloudwatch.${local.dns_suffix}", "events.${local.dns_suffix}"]
      }
    }
  }

  # EventBridge delivers spot interruption and rebalance events to Karpenter's
  # KMS-encrypted SQS queue under its own service principal, for this account's rules.
  dynamic "statement" {
    for_each = each.key == "sqs" ? [1] : []

    content {
      sid       = "EventBridgeToEncryptedQueues"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = ["*"]

      principals {
        type        = "Service"
        identifiers = ["events.${local.dns_suffix}"]
      }

      condition {
        test     = "StringEquals"
        variable = "aws:SourceAccount"
        values   = [local.account_id]
      }
    }
  }
}

resource "aws_kms_key" "this" {
  for_each = local.key_purposes

  description             = "${var.name}: ${each.value}"
  enable_key_rotation     = true
  rotation_period_in_days = var.kms_rotation_period_in_days
  deletion_window_in_days = var.kms_deletion_window_in_days
  multi_region            = false
  policy                  = data.aws_iam_policy_document.key[each.key].json

  tags = merge(var.tags, { Purpose = each.key })
}

resource "aws_kms_alias" "this" {
  for_each = local.key_purposes

  name          = "alias/${var.name}/${each.key}"
  target_key_id = aws_kms_key.this[each.key].key_id
}
