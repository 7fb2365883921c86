variable "name" {
  description = "Name prefix for every resource of this module (e.g. fudo-prod). Key aliases are alias/<name>/<purpose>, roles <name>-<group>."
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

################################################################################
# KMS
################################################################################

variable "kms_deletion_window_in_days" {
  description = "Waiting period before a scheduled key deletion completes (7-30 days). Long by default: a deleted key makes every object, log event and secret it encrypted unreadable."
  type        = number
  default     = 30

  validation {
    condition     = var.kms_deletion_window_in_days >= 7 && var.kms_deletion_window_in_days <= 30 && floor(var.kms_deletion_window_in_days) == var.kms_deletion_window_in_days
    error_message = "kms_deletion_window_in_days must be a whole number of days between 7 and 30."
  }
}

variable "kms_rotation_period_in_days" {
  description = "Automatic rotation period of every key (90-2560 days; rotation itself is always on)."
  type        = number
  default     = 365

  validation {
    condition     = var.kms_rotation_period_in_days >= 90 && var.kms_rotation_period_in_days <= 2560 && floor(var.kms_rotation_period_in_days) == var.kms_rotation_period_in_days
    error_message = "kms_rotation_period_in_days must be a whole number of days between 90 and 2560."
  }
}

################################################################################
# IAM
################################################################################

variable "create_iam_roles" {
  description = "Create the IAM roles (user groups and fudo's workload role). IAM is global: set true in exactly one instance of this module per account (the primary region) and false in the others, which then create only their region's KMS keys."
  type        = bool
  default     = true
}

variable "trusted_principal_arns" {
  description = "Who may assume each user-group role: map of group (ml_engineer, trading_system, operator, risk; all four required) to the IAM principal ARNs (users, roles or an account root) allowed to call sts:AssumeRole. The trust policy also requires MFA. Ignored when create_iam_roles is false."
  type        = map(list(string))
  default     = {}

  validation {
    condition     = alltrue([for group in keys(var.trusted_principal_arns) : contains(["ml_engineer", "trading_system", "operator", "risk"], group)])
    error_message = "trusted_principal_arns keys must be among ml_engineer, trading_system, operator, risk."
  }

  validation {
    condition     = alltrue([for arns in values(var.trusted_principal_arns) : length(arns) > 0])
    error_message = "Every group in trusted_principal_arns needs at least one principal ARN."
  }

  validation {
    condition = alltrue(flatten([
      for arns in values(var.trusted_principal_arns) : [
        for arn in arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:(root|user/.+|role/.+)$", arn))
      ]
    ]))
    error_message = "Every trusted principal must be an IAM user, role or account-root ARN; wildcards such as \"*\" are not allowed."
  }
}

variable "max_mfa_age_seconds" {
  description = "How long after the MFA sign-in a group role may still be assumed (aws:MultiFactorAuthAge)."
  type        = number
  default     = 3600

  validation {
    condition     = var.max_mfa_age_seconds >= 300 && var.max_mfa_age_seconds <= 43200
    error_message = "max_mfa_age_seconds must be between 300 and 43200."
  }
}

variable "model_bucket_arn" {
  description = "ARN of the model registry bucket (audit module output model_bucket_arn). ml_engineer writes to it, fudo reads it. Required when create_iam_roles is true."
  type        = string
  default     = null

  validation {
    condition     = var.model_bucket_arn == null || can(regex("^arn:aws[a-z-]*:s3:::[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.model_bucket_arn))
    error_message = "model_bucket_arn must be an S3 bucket ARN (arn:<partition>:s3:::<bucket>)."
  }
}

variable "model_key_prefix" {
  description = "Key prefix under which ml_engineer may write models (\"\" for the whole bucket, else e.g. \"models/\")."
  type        = string
  default     = ""

  validation {
    condition     = var.model_key_prefix == "" || can(regex("^[A-Za-z0-9!_.()'-][A-Za-z0-9!_.()'/-]*/$", var.model_key_prefix))
    error_message = "model_key_prefix must be empty or a key prefix ending in / without wildcards."
  }
}

variable "audit_bucket_arn" {
  description = "ARN of the audit bucket (audit module output bucket_arn). fudo writes to it (PutObject only), risk reads it. Required when create_iam_roles is true."
  type        = string
  default     = null

  validation {
    condition     = var.audit_bucket_arn == null || can(regex("^arn:aws[a-z-]*:s3:::[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.audit_bucket_arn))
    error_message = "audit_bucket_arn must be an S3 bucket ARN (arn:<partition>:s3:::<bucket>)."
  }
}

variable "additional_model_bucket_arns" {
  description = "Other copies of the model bucket fudo may read (the replica in the other region, audit module output model_replica_bucket_arn)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for arn in var.additional_model_bucket_arns : can(regex("^arn:aws[a-z-]*:s3:::[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", arn))])
    error_message = "additional_model_bucket_arns must hold S3 bucket ARNs."
  }
}

variable "additional_audit_bucket_arns" {
  description = "Other copies of the audit bucket risk may read (the replica in the other region, audit module output replica_bucket_arn). fudo never writes to these."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for arn in var.additional_audit_bucket_arns : can(regex("^arn:aws[a-z-]*:s3:::[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", arn))])
    error_message = "additional_audit_bucket_arns must hold S3 bucket ARNs."
  }
}

variable "additional_s3_kms_key_arns" {
  description = "The s3 KMS keys of the other regions (their security module's kms_key_arns[\"s3\"]), which encrypt the replica buckets; readers of the replicas need kms:Decrypt on them."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for arn in var.additional_s3_kms_key_arns : can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", arn))])
    error_message = "additional_s3_kms_key_arns must hold KMS key ARNs."
  }
}

variable "eks_cluster_arn" {
  description = "ARN of the EKS cluster (cluster module output cluster_arn). ml_engineer and operator get eks:DescribeCluster on it; their Kubernetes rights come from EKS access entries in the cluster module. Required when create_iam_roles is true."
  type        = string
  default     = null

  validation {
    condition     = var.eks_cluster_arn == null || can(regex("^arn:aws[a-z-]*:eks:[a-z0-9-]+:[0-9]{12}:cluster/.+$", var.eks_cluster_arn))
    error_message = "eks_cluster_arn must be an EKS cluster ARN."
  }
}

variable "additional_eks_cluster_arns" {
  description = "The EKS clusters of the other regions, which ml_engineer and operator also reach."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for arn in var.additional_eks_cluster_arns : can(regex("^arn:aws[a-z-]*:eks:[a-z0-9-]+:[0-9]{12}:cluster/.+$", arn))])
    error_message = "additional_eks_cluster_arns must hold EKS cluster ARNs."
  }
}

variable "redis_replication_group_arns" {
  description = "ElastiCache replication group ARNs (every region) the operator may describe and fail over (elasticache:TestFailover)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for arn in var.redis_replication_group_arns : can(regex("^arn:aws[a-z-]*:elasticache:[a-z0-9-]+:[0-9]{12}:replicationgroup:.+$", arn))])
    error_message = "redis_replication_group_arns must hold ElastiCache replication group ARNs."
  }
}

variable "redis_global_replication_group_arns" {
  description = "ElastiCache Global Datastore ARNs (arn:<partition>:elasticache::<account>:globalreplicationgroup:<id>) the operator may promote with FailoverGlobalReplicationGroup."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for arn in var.redis_global_replication_group_arns : can(regex("^arn:aws[a-z-]*:elasticache:[a-z0-9-]*:[0-9]{12}:globalreplicationgroup:.+$", arn))])
    error_message = "redis_global_replication_group_arns must hold ElastiCache global replication group ARNs."
  }
}

variable "redis_auth_secret_arns" {
  description = "Secrets Manager ARNs of the Redis AUTH tokens (redis module output auth_secret_arn, every region) that fudo's workload role may read."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for arn in var.redis_auth_secret_arns : can(regex("^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:.+$", arn))])
    error_message = "redis_auth_secret_arns must hold Secrets Manager secret ARNs."
  }
}

variable "secrets_kms_key_arns" {
  description = "KMS keys of other regions that encrypt the Redis AUTH secrets (this module's own redis key is always included); fudo gets kms:Decrypt on them through Secrets Manager only."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for arn in var.secrets_kms_key_arns : can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", arn))])
    error_message = "secrets_kms_key_arns must hold KMS key ARNs."
  }
}

variable "global_accelerator_arn" {
  description = "ARN of the Global Accelerator in front of both regions; the operator may turn its endpoint groups' traffic dials. null: no Global Accelerator rights."
  type        = string
  default     = null

  validation {
    condition     = var.global_accelerator_arn == null || can(regex("^arn:aws[a-z-]*:globalaccelerator::[0-9]{12}:accelerator/[0-9a-f-]+$", var.global_accelerator_arn))
    error_message = "global_accelerator_arn must be a Global Accelerator accelerator ARN."
  }
}

variable "audit_log_group_arns" {
  description = "ARNs of the CloudWatch log groups holding fudo's audit journal (audit module output log_group_arns[\"audit\"], every region) that risk may read."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for arn in var.audit_log_group_arns : can(regex("^arn:aws[a-z-]*:logs:[a-z0-9-]+:[0-9]{12}:log-group:[^*]+$", arn))])
    error_message = "audit_log_group_arns must hold CloudWatch log group ARNs without wildcards (a trailing :* is added by the module)."
  }
}

variable "workload_namespace" {
  description = "Kubernetes namespace of fudo's ServiceAccount; the workload role's trust policy only admits Pod Identity sessions tagged with it."
  type        = string
  default     = "fudo"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.workload_namespace))
    error_message = "workload_namespace must be a Kubernetes namespace name."
  }
}

variable "workload_service_account" {
  description = "Kubernetes ServiceAccount fudo runs as; the workload role's trust policy only admits Pod Identity sessions tagged with it."
  type        = string
  default     = "fudo"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$", var.workload_service_account))
    error_message = "workload_service_account must be a Kubernetes ServiceAccount name."
  }
}
