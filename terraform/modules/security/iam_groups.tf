################################################################################
# One IAM role per user group
#
# Assumable only by the principals listed for the group, only with MFA, for at most
# one hour. Every grant names its actions and resources; the few read actions that
# AWS does not scope to a resource (CloudWatch metric reads, Logs Insights query
# results) are the only "*" resources, and they expose no data-plane writes.
################################################################################

locals {
  group_descriptions = {
    ml_engineer    = "Writes model versions to the model registry bucket and reaches the EKS clusters for canary deploys (Kubernetes rights via EKS access entries)."
    trading_system = "Identity of the trading system. Inference goes over gRPC to the Global Accelerator, which needs no AWS API right, so this role has no permissions."
    operator       = "Drains and fails over: describes the clusters, fails over Redis, turns Global Accelerator traffic dials, reads CloudWatch."
    risk           = "Reads the audit buckets (Object Lock retention included) and the audit journal log groups; writes nothing."
  }

  groups = var.create_iam_roles ? local.group_descriptions : {}

  # Inline policy per group; trading_system deliberately has none.
  group_policies = var.create_iam_roles ? {
    ml_engineer = data.aws_iam_policy_document.ml_engineer[0].json
    operator    = data.aws_iam_policy_document.operator[0].json
    risk        = data.aws_iam_policy_document.risk[0].json
  } : {}
}

data "aws_iam_policy_document" "group_trust" {
  for_each = local.groups

  statement {
    sid     = "AssumeWithRecentMfa"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "AWS"
      identifiers = lookup(var.trusted_principal_arns, each.key, [])
    }

    condition {
      test     = "Bool"
      variable = "aws:MultiFactorAuthPresent"
      values   = ["true"]
    }

    condition {
      test     = "NumericLessThan"
      variable = "aws:MultiFactorAuthAge"
      values   = [tostring(var.max_mfa_age_seconds)]
    }
  }
}

resource "aws_iam_role" "group" {
  for_each = local.groups

  name                 = "${var.name}-${replace(each.key, "_", "-")}"
  description          = each.value
  assume_role_policy   = data.aws_iam_policy_document.group_trust[each.key].json
  max_session_duration = 3600

  tags = merge(var.tags, { UserGroup = each.key })

  lifecycle {
    precondition {
      condition     = length(lookup(var.trusted_principal_arns, each.key, [])) > 0
      error_message = "trusted_principal_arns has no principal for group ${each.key}; all four groups are required when create_iam_roles is true."
    }

    precondition {
      condition     = var.model_bucket_arn != null && var.audit_bucket_arn != null && var.eks_cluster_arn != null
      error_message = "model_bucket_arn, audit_bucket_arn and eks_cluster_arn are required when create_iam_roles is true."
    }
  }
}

resource "aws_iam_role_policy" "group" {
  for_each = local.group_policies

  name   = "${var.name}-${replace(each.key, "_", "-")}"
  role   = aws_iam_role.group[each.key].id
  policy = each.value
}

################################################################################
# ml_engineer
################################################################################

data "aws_iam_policy_document" "ml_engineer" {
  count = var.create_iam_roles ? 1 : 0

  statement {
    sid       = "ModelRegistryBucket"
    actions   = ["s3:GetBucketLocation", "s3:GetBucketVersioning"]
    resources = compact([var.model_bucket_arn])
  }

  statement {
    sid       = "ListModelRegistry"
    actions   = ["s3:ListBucket", "s3:ListBucketVersions", "s3:ListBucketMultipartUploads"]
    resources = compact([var.model_bucket_arn])

    dynamic "condition" {
      for_each = var.model_key_prefix == "" ? [] : [var.model_key_prefix]

      content {
        test     = "StringLike"
        variable = "s3:prefix"
        values   = ["${condition.value}*"]
      }
    }
  }

  statement {
    sid = "WriteModelVersions"
    actions = [
      "s3:PutObject",
      "s3:PutObjectTagging",
      "s3:GetObject",
      "s3:GetObjectVersion",
      "s3:GetObjectAttributes",
      "s3:GetObjectTagging",
      "s3:AbortMultipartUpload",
      "s3:ListMultipartUploadParts",
    ]
    resources = [for arn in compact([var.model_bucket_arn]) : "${arn}/${var.model_key_prefix}*"]
  }

  statement {
    sid       = "ModelRegistryEncryption"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [aws_kms_key.this["s3"].arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${local.region}.${local.dns_suffix}"]
    }
  }

  statement {
    sid       = "DescribeClusters"
    actions   = ["eks:DescribeCluster"]
    resources = local.eks_cluster_arns
  }
}

################################################################################
# operator
################################################################################

data "aws_iam_policy_document" "operator" {
  count = var.create_iam_roles ? 1 : 0

  statement {
    sid       = "DescribeClusters"
    actions   = ["eks:DescribeCluster"]
    resources = local.eks_cluster_arns
  }

  dynamic "statement" {
    for_each = length(var.redis_replication_group_arns) > 0 ? [1] : []

    content {
      sid       = "RedisFailover"
      actions   = ["elasticache:DescribeReplicationGroups", "elasticache:TestFailover"]
      resources = var.redis_replication_group_arns
    }
  }

  dynamic "statement" {
    for_each = length(var.redis_global_replication_group_arns) > 0 ? [1] : []

    content {
      sid       = "RedisGlobalDatastoreFailover"
      actions   = ["elasticache:DescribeGlobalReplicationGroups", "elasticache:FailoverGlobalReplicationGroup"]
      resources = concat(var.redis_global_replication_group_arns, var.redis_replication_group_arns)
    }
  }

  dynamic "statement" {
    for_each = var.global_accelerator_arn == null ? [] : [var.global_accelerator_arn]

    content {
      sid = "TrafficDial"
      actions = [
        "globalaccelerator:DescribeAccelerator",
        "globalaccelerator:ListListeners",
        "globalaccelerator:DescribeListener",
        "globalaccelerator:ListEndpointGroups",
        "globalaccelerator:DescribeEndpointGroup",
        "globalaccelerator:UpdateEndpointGroup",
      ]
      resources = [
        statement.value,
        "${statement.value}/listener/*",
        "${statement.value}/listener/*/endpoint-group/*",
      ]
    }
  }

  statement {
    sid       = "ReadAlarms"
    actions   = ["cloudwatch:DescribeAlarms", "cloudwatch:DescribeAlarmHistory"]
    resources = ["arn:${local.partition}:cloudwatch:*:${local.account_id}:alarm:*"]
  }

  # These CloudWatch reads support no resource-level permissions: "*" is the only
  # resource AWS accepts for them.
  statement {
    sid = "ReadMetrics"
    actions = [
      "cloudwatch:GetMetricData",
      "cloudwatch:GetMetricStatistics",
      "cloudwatch:ListMetrics",
      "cloudwatch:DescribeAlarmsForMetric",
    ]
    resources = ["*"]
  }
}

################################################################################
# risk
################################################################################

data "aws_iam_policy_document" "risk" {
  count = var.create_iam_roles ? 1 : 0

  statement {
    sid = "AuditBuckets"
    actions = [
      "s3:ListBucket",
      "s3:ListBucketVersions",
      "s3:GetBucketLocation",
      "s3:GetBucketVersioning",
      "s3:GetBucketObjectLockConfiguration",
    ]
    resources = local.audit_bucket_arns
  }

  statement {
    sid = "ReadAuditRecords"
    actions = [
      "s3:GetObject",
      "s3:GetObjectVersion",
      "s3:GetObjectAttributes",
      "s3:GetObjectVersionAttributes",
      "s3:GetObjectRetention",
      "s3:GetObjectLegalHold",
      "s3:GetObjectTagging",
      "s3:GetObjectVersionTagging",
    ]
    resources = [for arn in local.audit_bucket_arns : "${arn}/*"]
  }

  statement {
    sid       = "DecryptAuditRecords"
    actions   = ["kms:Decrypt"]
    resources = local.s3_kms_key_arns

    condition {
      test     = "StringLike"
      variable = "kms:ViaService"
      values   = ["s3.*.${local.dns_suffix}"]
    }
  }

  dynamic "statement" {
    for_each = length(var.audit_log_group_arns) > 0 ? [1] : []

    content {
      sid = "ReadAuditJournal"
      actions = [
        "logs:DescribeLogStreams",
        "logs:GetLogEvents",
        "logs:FilterLogEvents",
        "logs:StartQuery",
        "logs:GetLogGroupFields",
      ]
      resources = flatten([for arn in var.audit_log_group_arns : [arn, "${arn}:*"]])
    }
  }

  # Logs Insights query results are not scoped to a log group (the query was,
  # by StartQuery above): "*" is the only resource AWS accepts.
  dynamic "statement" {
    for_each = length(var.audit_log_group_arns) > 0 ? [1] : []

    content {
      sid       = "AuditJournalQueryResults"
      actions   = ["logs:GetQueryResults", "logs:StopQuery"]
      resources = ["*"]
    }
  }
}
