variable "name" {
  description = "Name of the replication group and prefix of every resource (e.g. fudo-prod). Also the Global Datastore suffix when global_datastore_role is primary."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}$", var.name))
    error_message = "name must match ^[a-z][a-z0-9-]{1,30}$."
  }

  validation {
    condition     = !endswith(var.name, "-") && !strcontains(var.name, "--")
    error_message = "name may not end with a hyphen or contain two hyphens in a row (ElastiCache replication group id rules)."
  }
}

variable "tags" {
  description = "Tags applied to every resource."
  type        = map(string)
  default     = {}
}

variable "vpc_id" {
  description = "VPC the cache lives in (network module output vpc_id)."
  type        = string

  validation {
    condition     = can(regex("^vpc-[0-9a-f]+$", var.vpc_id))
    error_message = "vpc_id must look like vpc-0123abcd."
  }
}

variable "subnet_ids" {
  description = "Subnets of the cache subnet group, one per availability zone (network module output private_subnet_ids or intra_subnet_ids). Nodes are spread over their zones in order."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) >= 2 && alltrue([for s in var.subnet_ids : can(regex("^subnet-[0-9a-f]+$", s))])
    error_message = "subnet_ids must list at least 2 subnet ids (subnet-...), in different availability zones."
  }
}

variable "allowed_security_group_ids" {
  description = "Security groups whose members may connect to Redis on 6379 (the EKS node security group). Nothing else is let in."
  type        = list(string)

  validation {
    condition     = length(var.allowed_security_group_ids) >= 1 && alltrue([for s in var.allowed_security_group_ids : can(regex("^sg-[0-9a-f]+$", s))])
    error_message = "allowed_security_group_ids must list at least one security group id (sg-...)."
  }
}

variable "allowed_cidr_blocks" {
  description = "IPv4 networks also let in on 6379, for clients that cannot be named by security group: the other region's fudo nodes writing to a Global Datastore primary across an inter-region peering or transit gateway. Empty by default; 0.0.0.0/0 and other /0 networks are rejected."
  type        = list(string)
  default     = []

  validation {
    condition = alltrue([
      for c in var.allowed_cidr_blocks : can(cidrnetmask(c)) && c != "0.0.0.0/0" && tonumber(split("/", c)[1]) >= 8
    ])
    error_message = "allowed_cidr_blocks must be IPv4 CIDRs with a prefix of /8 or longer (never 0.0.0.0/0)."
  }
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key (in this region) for encryption at rest of the cache and its snapshots, and for the AUTH token secret (security module output kms_key_arns.redis)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]+:key/.+$", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>)."
  }
}

variable "log_kms_key_arn" {
  description = "KMS key for the CloudWatch log groups of the slow log and engine log (security module output kms_key_arns.logs); its key policy must let the CloudWatch Logs service use it. Null: kms_key_arn."
  type        = string
  default     = null

  validation {
    condition     = var.log_kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]+:key/.+$", var.log_kms_key_arn))
    error_message = "log_kms_key_arn must be null or a KMS key ARN."
  }
}

variable "node_type" {
  description = "Cache node type. Memory-optimised or general-purpose Graviton/Intel nodes of generation 5 or newer (Global Datastore supports only these; burstable nodes are not accepted for production)."
  type        = string
  default     = "cache.r7g.large"

  validation {
    condition     = can(regex("^cache\\.(m|r)[5-9]g?\\.[0-9a-z]+$", var.node_type))
    error_message = "node_type must be an m5/r5-or-newer node without data tiering, e.g. cache.r7g.large or cache.m7g.xlarge."
  }
}

variable "engine_version" {
  description = "Redis OSS engine version (major.minor, 7.x). Inside a Global Datastore the version is set on the global group (primary member only)."
  type        = string
  default     = "7.1"

  validation {
    condition     = can(regex("^7\\.[0-9]+$", var.engine_version))
    error_message = "engine_version must be a Redis OSS 7.x major.minor version such as 7.1."
  }
}

variable "num_cache_clusters" {
  description = "Nodes in the replication group: one primary and num_cache_clusters - 1 replicas, spread over the subnets' availability zones."
  type        = number
  default     = 3

  validation {
    condition     = var.num_cache_clusters >= 2 && var.num_cache_clusters <= 6 && floor(var.num_cache_clusters) == var.num_cache_clusters
    error_message = "num_cache_clusters must be a whole number from 2 (primary + 1 replica, the minimum for automatic failover) to 6."
  }
}

variable "global_datastore_role" {
  description = "Role of this replication group in an ElastiCache Global Datastore: primary creates the global group from it, secondary joins global_replication_group_id (read-only until promoted), none stays regional."
  type        = string
  default     = "none"

  validation {
    condition     = contains(["primary", "secondary", "none"], var.global_datastore_role)
    error_message = "global_datastore_role must be one of primary, secondary, none."
  }
}

variable "global_replication_group_id" {
  description = "Global Datastore to join (the primary region's module output global_replication_group_id). Required when global_datastore_role is secondary, must be null otherwise."
  type        = string
  default     = null

  validation {
    condition     = var.global_replication_group_id == null || can(regex("^[a-z]+-[a-z0-9-]+$", var.global_replication_group_id))
    error_message = "global_replication_group_id must be null or a Global Datastore id such as ldgnf-fudo-prod."
  }
}

variable "snapshot_retention_limit" {
  description = "Days of automatic daily snapshots kept."
  type        = number
  default     = 7

  validation {
    condition     = var.snapshot_retention_limit >= 1 && var.snapshot_retention_limit <= 35
    error_message = "snapshot_retention_limit must be between 1 and 35 days (0 would turn backups off)."
  }
}

variable "snapshot_window" {
  description = "Daily snapshot window, UTC (hh:mm-hh:mm). Must lie outside Tokyo market hours (08:00-16:00 JST = 23:00-07:00 UTC). Default 03:00-04:00 JST."
  type        = string
  default     = "18:00-19:00"

  validation {
    condition     = can(regex("^(0[7-9]|1[0-9]|2[01]):[0-5][0-9]-(0[8-9]|1[0-9]|2[0-2]):[0-5][0-9]$", var.snapshot_window))
    error_message = "snapshot_window must be hh:mm-hh:mm (UTC) between 07:00 and 22:59, i.e. outside 23:00-07:00 UTC (Tokyo market hours)."
  }
}

variable "maintenance_window" {
  description = "Weekly maintenance window, UTC (ddd:hh:mm-ddd:hh:mm), on a weekend. Default Saturday 15:00-16:00 UTC = Sunday 00:00-01:00 JST."
  type        = string
  default     = "sat:15:00-sat:16:00"

  validation {
    condition     = can(regex("^(sat|sun):([01][0-9]|2[0-2]):[0-5][0-9]-(sat|sun):([01][0-9]|2[0-2]):[0-5][0-9]$", var.maintenance_window))
    error_message = "maintenance_window must be sat/sun hh:mm-sat/sun hh:mm (UTC, lower case) ending by 22:59 UTC (Sunday 23:00 UTC is Monday 08:00 JST)."
  }
}

variable "log_retention_days" {
  description = "Retention of the slow-log and engine-log CloudWatch log groups, in days."
  type        = number
  default     = 365

  validation {
    condition     = contains([365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a CloudWatch Logs retention of at least one year (365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288 or 3653)."
  }
}

variable "notification_topic_arn" {
  description = "Unencrypted SNS topic for ElastiCache's own event notifications; null: none. ElastiCache cannot publish to a KMS-encrypted topic, so the environments leave this null and the monitoring module routes ElastiCache events through EventBridge to its encrypted topics instead."
  type        = string
  default     = null

  validation {
    condition     = var.notification_topic_arn == null || can(regex("^arn:aws[a-z-]*:sns:", var.notification_topic_arn))
    error_message = "notification_topic_arn must be null or an SNS topic ARN."
  }
}

variable "auth_token_rotation" {
  description = "Any string; changing it generates a new AUTH token, applied with the ElastiCache ROTATE strategy (the old token keeps working next to the new one until an operator finishes the rotation) and written to the secret."
  type        = string
  default     = "1"
}
