variable "name" {
  description = "Name prefix for every resource of this module (e.g. fudo-prod). Buckets are <name>-<purpose>-<account id>-<region code>."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}$", var.name))
    error_message = "name must match ^[a-z][a-z0-9-]{1,30}$."
  }
}

variable "tags" {
  description = "Tags applied to every resource."
  type        = map(string)
  default     = {}
}

variable "kms_key_arn" {
  description = "KMS key (security module kms_key_arns[\"s3\"], primary region) that encrypts the audit and model buckets."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN (not an alias)."
  }
}

variable "replica_kms_key_arn" {
  description = "KMS key in the replica region (that region's security module kms_key_arns[\"s3\"]) that encrypts the replica buckets."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.replica_kms_key_arn))
    error_message = "replica_kms_key_arn must be a KMS key ARN (not an alias)."
  }
}

variable "logs_kms_key_arn" {
  description = "KMS key (security module kms_key_arns[\"logs\"]) that encrypts the CloudWatch log groups; its policy must admit logs.<region>.amazonaws.com."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.logs_kms_key_arn))
    error_message = "logs_kms_key_arn must be a KMS key ARN (not an alias)."
  }
}

variable "retention_days" {
  description = "Object Lock COMPLIANCE default retention of every audit record version, in days. Japanese FIEA record keeping is 5-7 years; the default is 7 years (2557 days). Nobody, root included, can shorten it or delete a version before it ends."
  type        = number
  default     = 2557

  validation {
    condition     = var.retention_days >= 365 && var.retention_days <= 36500 && floor(var.retention_days) == var.retention_days
    error_message = "retention_days must be a whole number of days, at least 365 (1 year) and at most 36500."
  }
}

variable "audit_log_retention_days" {
  description = "Retention of the CloudWatch log group holding fudo's audit journal. At least 365 and one of the values CloudWatch Logs accepts."
  type        = number
  default     = 2557

  validation {
    condition     = var.audit_log_retention_days >= 365 && contains([365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.audit_log_retention_days)
    error_message = "audit_log_retention_days must be one of 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653."
  }
}

variable "application_log_retention_days" {
  description = "Retention of the CloudWatch log group holding fudo's application logs. At least 365 and one of the values CloudWatch Logs accepts."
  type        = number
  default     = 365

  validation {
    condition     = var.application_log_retention_days >= 365 && contains([365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.application_log_retention_days)
    error_message = "application_log_retention_days must be one of 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653."
  }
}

variable "glacier_transition_days" {
  description = "Age (days) at which audit record versions, current and noncurrent, move to S3 Glacier Flexible Retrieval."
  type        = number
  default     = 90

  validation {
    condition     = var.glacier_transition_days >= 30 && floor(var.glacier_transition_days) == var.glacier_transition_days
    error_message = "glacier_transition_days must be a whole number of days, at least 30."
  }
}

variable "deep_archive_transition_days" {
  description = "Age (days) at which audit record versions move on to S3 Glacier Deep Archive; at least 90 days after glacier_transition_days (Glacier's minimum storage duration)."
  type        = number
  default     = 365

  validation {
    condition     = var.deep_archive_transition_days >= 120 && floor(var.deep_archive_transition_days) == var.deep_archive_transition_days
    error_message = "deep_archive_transition_days must be a whole number of days, at least 120."
  }
}

variable "access_log_retention_days" {
  description = "How long S3 server access logs of the audit and model buckets are kept (days)."
  type        = number
  default     = 2557

  validation {
    condition     = var.access_log_retention_days >= 365 && floor(var.access_log_retention_days) == var.access_log_retention_days
    error_message = "access_log_retention_days must be a whole number of days, at least 365."
  }
}

variable "model_noncurrent_version_days" {
  description = "How long superseded versions of a model object are kept in the model registry bucket (days). The newest 10 noncurrent versions of each object are always kept, for rollbacks."
  type        = number
  default     = 365

  validation {
    condition     = var.model_noncurrent_version_days >= 30 && floor(var.model_noncurrent_version_days) == var.model_noncurrent_version_days
    error_message = "model_noncurrent_version_days must be a whole number of days, at least 30."
  }
}
