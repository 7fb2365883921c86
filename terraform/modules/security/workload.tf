################################################################################
# fudo's workload role (EKS Pod Identity)
#
# The cluster module associates this role with ServiceAccount fudo in namespace fudo
# (aws_eks_pod_identity_association, input workload_role_arn). The trust policy admits
# only Pod Identity sessions of this account tagged with that namespace and account.
# fudo reads models, reads the Redis AUTH secret and appends to the audit bucket; it
# can delete nothing.
################################################################################

data "aws_iam_policy_document" "workload_trust" {
  count = var.create_iam_roles ? 1 : 0

  statement {
    sid     = "EksPodIdentity"
    actions = ["sts:AssumeRole", "sts:TagSession"]

    principals {
      type        = "Service"
      identifiers = ["pods.eks.${local.dns_suffix}"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/kubernetes-namespace"
      values   = [var.workload_namespace]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/kubernetes-service-account"
      values   = [var.workload_service_account]
    }
  }
}

data "aws_iam_policy_document" "workload" {
  count = var.create_iam_roles ? 1 : 0

  statement {
    sid       = "ListModels"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation"]
    resources = local.model_bucket_arns
  }

  statement {
    sid       = "ReadModels"
    actions   = ["s3:GetObject", "s3:GetObjectVersion"]
    resources = [for arn in local.model_bucket_arns : "${arn}/*"]
  }

  # Append-only: PutObject and nothing else. Object Lock (COMPLIANCE) keeps every
  # version for the retention period; the bucket policy denies deletes as well.
  statement {
    sid       = "AppendAuditRecords"
    actions   = ["s3:PutObject"]
    resources = [for arn in compact([var.audit_bucket_arn]) : "${arn}/*"]
  }

  statement {
    sid       = "DecryptBuckets"
    actions   = ["kms:Decrypt"]
    resources = local.s3_kms_key_arns

    condition {
      test     = "StringLike"
      variable = "kms:ViaService"
      values   = ["s3.*.${local.dns_suffix}"]
    }
  }

  statement {
    sid       = "EncryptAuditRecords"
    actions   = ["kms:GenerateDataKey"]
    resources = [aws_kms_key.this["s3"].arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${local.region}.${local.dns_suffix}"]
    }
  }

  dynamic "statement" {
    for_each = length(var.redis_auth_secret_arns) > 0 ? [1] : []

    content {
      sid       = "ReadRedisAuth"
      actions   = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
      resources = var.redis_auth_secret_arns
    }
  }

  dynamic "statement" {
    for_each = length(var.redis_auth_secret_arns) > 0 ? [1] : []

    content {
      sid       = "DecryptRedisAuth"
      actions   = ["kms:Decrypt"]
      resources = concat([aws_kms_key.this["redis"].arn], var.secrets_kms_key_arns)

      condition {
        test     = "StringLike"
        variable = "kms:ViaService"
        values   = ["secretsmanager.*.${local.dns_suffix}"]
      }
    }
  }
}

resource "aws_iam_role" "workload" {
  count = var.create_iam_roles ? 1 : 0

  name                 = "${var.name}-fudo-workload"
  description          = "fudo pods (EKS Pod Identity, ${var.workload_namespace}/${var.workload_service_account}): read models and the Redis AUTH secret, append to the audit bucket."
  assume_role_policy   = data.aws_iam_policy_document.workload_trust[0].json
  max_session_duration = 3600

  tags = var.tags
}

resource "aws_iam_role_policy" "workload" {
  count = var.create_iam_roles ? 1 : 0

  name   = "${var.name}-fudo-workload"
  role   = aws_iam_role.workload[0].id
  policy = data.aws_iam_policy_document.workload[0].json
}
