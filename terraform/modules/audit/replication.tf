################################################################################
# Cross-region replication: audit -> audit_replica, models -> models_replica
#
# S3 Replication Time Control (99.99 % of objects within 15 minutes) with replication
# metrics, so that a late replica shows up in CloudWatch (AWS/S3 ReplicationLatency,
# OperationsPendingReplication). SSE-KMS objects are decrypted with the source key and
# re-encrypted with the replica region's key.
################################################################################

data "aws_iam_policy_document" "replication_assume" {
  statement {
    sid     = "S3Replication"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["s3.${local.dns_suffix}"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "replication" {
  name_prefix          = "${substr(var.name, 0, 20)}-s3-repl-"
  description          = "S3 replication of ${var.name}'s audit and model buckets to the replica region."
  assume_role_policy   = data.aws_iam_policy_document.replication_assume.json
  max_session_duration = 3600

  tags = var.tags
}

data "aws_iam_policy_document" "replication" {
  statement {
    sid       = "ReadReplicationConfiguration"
    actions   = ["s3:GetReplicationConfiguration", "s3:ListBucket"]
    resources = [aws_s3_bucket.audit.arn, aws_s3_bucket.models.arn]
  }

  statement {
    sid = "ReadSourceVersions"
    actions = [
      "s3:GetObjectVersionForReplication",
      "s3:GetObjectVersionAcl",
      "s3:GetObjectVersionTagging",
      "s3:GetObjectRetention",
      "s3:GetObjectLegalHold",
    ]
    resources = ["${aws_s3_bucket.audit.arn}/*", "${aws_s3_bucket.models.arn}/*"]
  }

  statement {
    sid       = "WriteReplicas"
    actions   = ["s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags"]
    resources = ["${aws_s3_bucket.audit_replica.arn}/*", "${aws_s3_bucket.models_replica.arn}/*"]
  }

  # With S3 Bucket Keys the encryption context is the bucket ARN, without them the
  # object ARN: both are admitted.
  statement {
    sid       = "DecryptSource"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${local.region}.${local.dns_suffix}"]
    }

    condition {
      test     = "StringLike"
      variable = "kms:EncryptionContext:aws:s3:arn"
      values = [
        aws_s3_bucket.audit.arn, "${aws_s3_bucket.audit.arn}/*",
        aws_s3_bucket.models.arn, "${aws_s3_bucket.models.arn}/*",
      ]
    }
  }

  statement {
    sid       = "EncryptReplicas"
    actions   = ["kms:Encrypt", "kms:GenerateDataKey"]
    resources = [var.replica_kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${local.replica}.${local.dns_suffix}"]
    }

    condition {
      test     = "StringLike"
      variable = "kms:EncryptionContext:aws:s3:arn"
      values = [
        aws_s3_bucket.audit_replica.arn, "${aws_s3_bucket.audit_replica.arn}/*",
        aws_s3_bucket.models_replica.arn, "${aws_s3_bucket.models_replica.arn}/*",
      ]
    }
  }
}

resource "aws_iam_role_policy" "replication" {
  name   = "s3-replication"
  role   = aws_iam_role.replication.id
  policy = data.aws_iam_policy_document.replication.json
}

resource "aws_s3_bucket_replication_configuration" "audit" {
  bucket = aws_s3_bucket.audit.id
  role   = aws_iam_role.replication.arn

  rule {
    id       = "audit-to-replica-region"
    status   = "Enabled"
    priority = 1

    filter {}

    # A delete marker in the source (which the bucket policy refuses anyway) never
    # hides a record in the replica.
    delete_marker_replication {
      status = "Disabled"
    }

    source_selection_criteria {
      sse_kms_encrypted_objects {
        status = "Enabled"
      }
    }

    destination {
      bucket        = aws_s3_bucket.audit_replica.arn
      storage_class = "STANDARD"

      encryption_configuration {
        replica_kms_key_id = var.replica_kms_key_arn
      }

      replication_time {
        status = "Enabled"

        time {
          minutes = 15
        }
      }

      metrics {
        status = "Enabled"

        event_threshold {
          minutes = 15
        }
      }
    }
  }

  depends_on = [
    aws_s3_bucket_versioning.audit,
    aws_s3_bucket_versioning.audit_replica,
    aws_s3_bucket_object_lock_configuration.audit_replica,
    aws_iam_role_policy.replication,
  ]
}

resource "aws_s3_bucket_replication_configuration" "models" {
  bucket = aws_s3_bucket.models.id
  role   = aws_iam_role.replication.arn

  rule {
    id       = "models-to-replica-region"
    status   = "Enabled"
    priority = 1

    filter {}

    # A model withdrawn in the primary region disappears from the replica as well.
    delete_marker_replication {
      status = "Enabled"
    }

    source_selection_criteria {
      sse_kms_encrypted_objects {
        status = "Enabled"
      }
    }

    destination {
      bucket        = aws_s3_bucket.models_replica.arn
      storage_class = "STANDARD"

      encryption_configuration {
        replica_kms_key_id = var.replica_kms_key_arn
      }

      replication_time {
        status = "Enabled"

        time {
          minutes = 15
        }
      }

      metrics {
        status = "Enabled"

        event_threshold {
          minutes = 15
        }
      }
    }
  }

  depends_on = [
    aws_s3_bucket_versioning.models,
    aws_s3_bucket_versioning.models_replica,
    aws_iam_role_policy.replication,
  ]
}
