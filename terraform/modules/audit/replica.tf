################################################################################
# The replica region (provider aws.replica): the replication destinations of the
# audit and model buckets, and that region's access log bucket
#
# The audit replica is locked exactly like the source: Object Lock COMPLIANCE with
# var.retention_days as its own default (replicated versions keep the retain-until
# date they had in the source), encrypted with the replica region's s3 key. Delete
# markers of the audit bucket are not replicated (replication.tf).
################################################################################

resource "aws_s3_bucket" "audit_replica" {
  #checkov:skip=CKV2_AWS_62:Nothing consumes audit bucket events; writes are fudo's own records, read by risk on demand.
  #checkov:skip=CKV_AWS_144:This bucket is the cross-region replication destination of the audit bucket.
  provider = aws.replica

  bucket              = local.bucket_names.audit_replica
  object_lock_enabled = true
  force_destroy       = false

  tags = merge(var.tags, { Purpose = "audit-replica" })
}

resource "aws_s3_bucket_ownership_controls" "audit_replica" {
  provider = aws.replica

  bucket = aws_s3_bucket.audit_replica.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "audit_replica" {
  provider = aws.replica

  bucket = aws_s3_bucket.audit_replica.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "audit_replica" {
  provider = aws.replica

  bucket = aws_s3_bucket.audit_replica.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "audit_replica" {
  provider = aws.replica

  bucket = aws_s3_bucket.audit_replica.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = var.replica_kms_key_arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_object_lock_configuration" "audit_replica" {
  provider = aws.replica

  bucket = aws_s3_bucket.audit_replica.id

  rule {
    default_retention {
      mode = "COMPLIANCE"
      days = var.retention_days
    }
  }

  depends_on = [aws_s3_bucket_versioning.audit_replica]
}

data "aws_iam_policy_document" "audit_replica_bucket" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.audit_replica.arn, "${aws_s3_bucket.audit_replica.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }

  statement {
    sid       = "DenyOutdatedTls"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.audit_replica.arn, "${aws_s3_bucket.audit_replica.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "NumericLessThan"
      variable = "s3:TlsVersion"
      values   = ["1.2"]
    }
  }

  # Object Lock already refuses to delete a locked version; this also refuses delete
  # markers, so that no record ever disappears from a listing.
  statement {
    sid       = "DenyDeletes"
    effect    = "Deny"
    actions   = ["s3:DeleteObject", "s3:DeleteObjectVersion", "s3:BypassGovernanceRetention"]
    resources = ["${aws_s3_bucket.audit_replica.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }
  }

  # Uploads that say nothing get the bucket default (SSE-KMS, this key); uploads that
  # ask for anything else are refused.
  statement {
    sid       = "DenyOtherEncryption"
    effect    = "Deny"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.audit_replica.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "StringNotEquals"
      variable = "s3:x-amz-server-side-encryption"
      values   = ["aws:kms"]
    }

    condition {
      test     = "Null"
      variable = "s3:x-amz-server-side-encryption"
      values   = ["false"]
    }
  }

  statement {
    sid       = "DenyOtherKmsKey"
    effect    = "Deny"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.audit_replica.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "StringNotEquals"
      variable = "s3:x-amz-server-side-encryption-aws-kms-key-id"
      values   = [var.replica_kms_key_arn]
    }

    condition {
      test     = "Null"
      variable = "s3:x-amz-server-side-encryption-aws-kms-key-id"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "audit_replica" {
  provider = aws.replica

  bucket = aws_s3_bucket.audit_replica.id
  policy = data.aws_iam_policy_document.audit_replica_bucket.json

  depends_on = [aws_s3_bucket_public_access_block.audit_replica]
}

resource "aws_s3_bucket_logging" "audit_replica" {
  provider = aws.replica

  bucket        = aws_s3_bucket.audit_replica.id
  target_bucket = aws_s3_bucket.logs_replica.id
  target_prefix = "audit/"

  target_object_key_format {
    partitioned_prefix {
      partition_date_source = "EventTime"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "audit_replica" {
  provider = aws.replica

  bucket = aws_s3_bucket.audit_replica.id

  rule {
    id     = "archive"
    status = "Enabled"

    filter {}

    transition {
      days          = var.glacier_transition_days
      storage_class = "GLACIER"
    }

    transition {
      days          = var.deep_archive_transition_days
      storage_class = "DEEP_ARCHIVE"
    }

    noncurrent_version_transition {
      noncurrent_days = var.glacier_transition_days
      storage_class   = "GLACIER"
    }

    noncurrent_version_transition {
      noncurrent_days = var.deep_archive_transition_days
      storage_class   = "DEEP_ARCHIVE"
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  lifecycle {
    precondition {
      condition     = var.deep_archive_transition_days >= var.glacier_transition_days + 90
      error_message = "deep_archive_transition_days must be at least 90 days after glacier_transition_days."
    }
  }

  depends_on = [aws_s3_bucket_versioning.audit_replica]
}
################################################################################
# Model registry replica
################################################################################

resource "aws_s3_bucket" "models_replica" {
  #checkov:skip=CKV2_AWS_62:Nothing consumes model bucket events; deploys are driven through fudo's admin API, not by uploads.
  #checkov:skip=CKV_AWS_144:This bucket is the cross-region replication destination of the model bucket.
  provider = aws.replica

  bucket        = local.bucket_names.models_replica
  force_destroy = false

  tags = merge(var.tags, { Purpose = "models-replica" })
}

resource "aws_s3_bucket_ownership_controls" "models_replica" {
  provider = aws.replica

  bucket = aws_s3_bucket.models_replica.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "models_replica" {
  provider = aws.replica

  bucket = aws_s3_bucket.models_replica.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "models_replica" {
  provider = aws.replica

  bucket = aws_s3_bucket.models_replica.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "models_replica" {
  provider = aws.replica

  bucket = aws_s3_bucket.models_replica.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = var.replica_kms_key_arn
    }
    bucket_key_enabled = true
  }
}

data "aws_iam_policy_document" "models_replica_bucket" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.models_replica.arn, "${aws_s3_bucket.models_replica.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }

  statement {
    sid       = "DenyOutdatedTls"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.models_replica.arn, "${aws_s3_bucket.models_replica.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "NumericLessThan"
      variable = "s3:TlsVersion"
      values   = ["1.2"]
    }
  }

  statement {
    sid       = "DenyOtherEncryption"
    effect    = "Deny"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.models_replica.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "StringNotEquals"
      variable = "s3:x-amz-server-side-encryption"
      values   = ["aws:kms"]
    }

    condition {
      test     = "Null"
      variable = "s3:x-amz-server-side-encryption"
      values   = ["false"]
    }
  }

  statement {
    sid       = "DenyOtherKmsKey"
    effect    = "Deny"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.models_replica.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "StringNotEquals"
      variable = "s3:x-amz-server-side-encryption-aws-kms-key-id"
      values   = [var.replica_kms_key_arn]
    }

    condition {
      test     = "Null"
      variable = "s3:x-amz-server-side-encryption-aws-kms-key-id"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "models_replica" {
  provider = aws.replica

  bucket = aws_s3_bucket.models_replica.id
  policy = data.aws_iam_policy_document.models_replica_bucket.json

  depends_on = [aws_s3_bucket_public_access_block.models_replica]
}

resource "aws_s3_bucket_logging" "models_replica" {
  provider = aws.replica

  bucket        = aws_s3_bucket.models_replica.id
  target_bucket = aws_s3_bucket.logs_replica.id
  target_prefix = "models/"

  target_object_key_format {
    partitioned_prefix {
      partition_date_source = "EventTime"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "models_replica" {
  provider = aws.replica

  bucket = aws_s3_bucket.models_replica.id

  rule {
    id     = "superseded-versions"
    status = "Enabled"

    filter {}

    noncurrent_version_expiration {
      noncurrent_days           = var.model_noncurrent_version_days
      newer_noncurrent_versions = 10
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  depends_on = [aws_s3_bucket_versioning.models_replica]
}
################################################################################
# Access log bucket of the replica region (SSE-S3, see s3_access_logs.tf)
################################################################################

resource "aws_s3_bucket" "logs_replica" {
  #checkov:skip=CKV_AWS_18:This is the server access log target; logging it into itself or another bucket would log the log delivery.
  #checkov:skip=CKV_AWS_144:Access logs are per region by design; the primary region's buckets log into that region's own log bucket.
  #checkov:skip=CKV_AWS_145:S3 server access logging only delivers to SSE-S3 (AES256) destination buckets; SSE-KMS default encryption is not supported there.
  #checkov:skip=CKV2_AWS_62:Nothing consumes log bucket events; the records are read on demand.
  provider = aws.replica

  bucket        = local.bucket_names.logs_replica
  force_destroy = false

  tags = merge(var.tags, { Purpose = "s3-access-logs-replica" })
}

resource "aws_s3_bucket_ownership_controls" "logs_replica" {
  provider = aws.replica

  bucket = aws_s3_bucket.logs_replica.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "logs_replica" {
  provider = aws.replica

  bucket = aws_s3_bucket.logs_replica.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "logs_replica" {
  provider = aws.replica

  bucket = aws_s3_bucket.logs_replica.id

  versioning_configuration {
    status = "Enabled"
  }
}

# SSE-S3: S3 server access logging cannot deliver to SSE-KMS buckets (see s3_access_logs.tf).
resource "aws_s3_bucket_server_side_encryption_configuration" "logs_replica" {
  provider = aws.replica

  bucket = aws_s3_bucket.logs_replica.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

data "aws_iam_policy_document" "logs_replica_bucket" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.logs_replica.arn, "${aws_s3_bucket.logs_replica.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }

  statement {
    sid       = "DenyOutdatedTls"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.logs_replica.arn, "${aws_s3_bucket.logs_replica.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "NumericLessThan"
      variable = "s3:TlsVersion"
      values   = ["1.2"]
    }
  }

  statement {
    sid       = "DenyDeletes"
    effect    = "Deny"
    actions   = ["s3:DeleteObject", "s3:DeleteObjectVersion"]
    resources = ["${aws_s3_bucket.logs_replica.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }
  }

  # NLB access logs and Global Accelerator flow logs (the edge module) are delivered here by
  # the log delivery service, under <prefix>/AWSLogs/<account>/.
  statement {
    sid       = "EdgeLogDeliveryWrite"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.logs_replica.arn}/*/AWSLogs/${local.account_id}/*"]

    principals {
      type        = "Service"
      identifiers = ["delivery.logs.${local.dns_suffix}"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }

  statement {
    sid       = "EdgeLogDeliveryAclCheck"
    actions   = ["s3:GetBucketAcl"]
    resources = [aws_s3_bucket.logs_replica.arn]

    principals {
      type        = "Service"
      identifiers = ["delivery.logs.${local.dns_suffix}"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }

  statement {
    sid       = "ServerAccessLogDelivery"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.logs_replica.arn}/*"]

    principals {
      type        = "Service"
      identifiers = ["logging.s3.${local.dns_suffix}"]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = [aws_s3_bucket.audit_replica.arn, aws_s3_bucket.models_replica.arn]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_s3_bucket_policy" "logs_replica" {
  provider = aws.replica

  bucket = aws_s3_bucket.logs_replica.id
  policy = data.aws_iam_policy_document.logs_replica_bucket.json

  depends_on = [aws_s3_bucket_public_access_block.logs_replica]
}

resource "aws_s3_bucket_lifecycle_configuration" "logs_replica" {
  provider = aws.replica

  bucket = aws_s3_bucket.logs_replica.id

  rule {
    id     = "expire-access-logs"
    status = "Enabled"

    filter {}

    transition {
      days          = 90
      storage_class = "GLACIER"
    }

    expiration {
      days = var.access_log_retention_days
    }

    noncurrent_version_expiration {
      noncurrent_days = 30
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  depends_on = [aws_s3_bucket_versioning.logs_replica]
}
