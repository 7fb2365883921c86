variable "name" {
  description = "Name prefix for the topics and alarms of this region (e.g. fudo-prod-tokyo)."
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
  description = "KMS key (security module kms_key_arns[\"sns\"]) that encrypts the SNS topics; its policy must let cloudwatch.amazonaws.com use it."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN (not an alias)."
  }
}

variable "cluster_name" {
  description = "EKS cluster whose fudo pods are watched: the ClusterName dimension the CloudWatch agent puts on the scraped metrics."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$", var.cluster_name))
    error_message = "cluster_name must be an EKS cluster name."
  }
}

variable "k8s_namespace" {
  description = "Kubernetes namespace of the fudo pods: the Namespace dimension of the scraped metrics."
  type        = string
  default     = "fudo"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.k8s_namespace))
    error_message = "k8s_namespace must be a Kubernetes namespace name."
  }
}

variable "metrics_namespace" {
  description = "CloudWatch namespace the CloudWatch agent publishes fudo's Prometheus metrics to (Container Insights Prometheus)."
  type        = string
  default     = "ContainerInsights/Prometheus"

  validation {
    condition     = length(var.metrics_namespace) > 0 && length(var.metrics_namespace) <= 255 && !startswith(var.metrics_namespace, "AWS/")
    error_message = "metrics_namespace must be a custom CloudWatch namespace (not AWS/...)."
  }
}

variable "alarm_emails" {
  description = "E-mail addresses subscribed to both topics (each must confirm the subscription)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for e in var.alarm_emails : can(regex("^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\\.[A-Za-z]{2,}$", e))])
    error_message = "Every entry of alarm_emails must be an e-mail address."
  }
}

################################################################################
# Thresholds on fudo's metrics
################################################################################

variable "error_rate_threshold" {
  description = "Fraction of requests answered with a non-OK gRPC code, per minute, that pages when exceeded 3 minutes in a row. 0.001 (0.1 %) burns the 99.99 % monthly error budget ten times too fast."
  type        = number
  default     = 0.001

  validation {
    condition     = var.error_rate_threshold > 0 && var.error_rate_threshold < 1
    error_message = "error_rate_threshold must be a fraction between 0 and 1."
  }
}

variable "latency_p99_threshold_seconds" {
  description = "p99 inference latency inside the node (fudo_request_duration_seconds) that pages when exceeded 3 minutes in a row. fudo targets 2 ms and 50 ms under faults; the client's hard limit is 300 ms."
  type        = number
  default     = 0.05

  validation {
    condition     = var.latency_p99_threshold_seconds > 0 && var.latency_p99_threshold_seconds < 0.3
    error_message = "latency_p99_threshold_seconds must be above 0 and below the client's 300 ms limit."
  }
}

variable "latency_metric_name" {
  description = "CloudWatch metric holding fudo_request_duration_seconds as a distribution (percentiles available); see the README for how it must be delivered."
  type        = string
  default     = "fudo_request_duration_seconds"

  validation {
    condition     = length(var.latency_metric_name) > 0 && length(var.latency_metric_name) <= 255
    error_message = "latency_metric_name must be a CloudWatch metric name."
  }
}

variable "restart_storm_threshold" {
  description = "Actor restarts (fudo_actor_restarts_total, all pods) within 5 minutes that count as a restart storm. One restart takes ~100 us and loses nothing; dozens a minute mean a crash loop."
  type        = number
  default     = 60

  validation {
    condition     = var.restart_storm_threshold >= 1
    error_message = "restart_storm_threshold must be at least 1."
  }
}

variable "queue_depth_threshold" {
  description = "Rows waiting in any model queue of any pod (fudo_queue_depth_rows, maximum) that warn of saturation, 3 minutes in a row."
  type        = number
  default     = 1000

  validation {
    condition     = var.queue_depth_threshold >= 1
    error_message = "queue_depth_threshold must be at least 1."
  }
}

variable "buffered_writes_threshold" {
  description = "Session writes buffered in any pod while Redis is unreachable (fudo_session_store_buffered_writes, maximum) that warn before the buffer becomes a memory problem."
  type        = number
  default     = 10000

  validation {
    condition     = var.buffered_writes_threshold >= 1
    error_message = "buffered_writes_threshold must be at least 1."
  }
}

variable "traffic_anomaly_band_width" {
  description = "Width, in standard deviations, of the anomaly-detection band under which request traffic counts as gone (the no-requests-during-market-hours alarm)."
  type        = number
  default     = 4

  validation {
    condition     = var.traffic_anomaly_band_width >= 1 && var.traffic_anomaly_band_width <= 10
    error_message = "traffic_anomaly_band_width must be between 1 and 10."
  }
}

################################################################################
# AWS-side resources
################################################################################

variable "redis_alarms_enabled" {
  description = "Create the ElastiCache alarms (needs redis_replication_group_id). A separate flag, not a null check on the id, because the id is known only after apply and alarm keys must be known at plan time."
  type        = bool
  default     = false
}

variable "nlb_alarms_enabled" {
  description = "Create the NLB alarms and the composite region-unhealthy alarm (needs nlb_arn_suffix and target_group_arn_suffix). A flag for the same reason as redis_alarms_enabled."
  type        = bool
  default     = false
}

variable "redis_replication_group_id" {
  description = "ElastiCache replication group of this region (redis module output replication_group_id); required when redis_alarms_enabled."
  type        = string
  default     = null

  validation {
    condition     = var.redis_replication_group_id == null || can(regex("^[a-z][a-z0-9-]{0,39}$", var.redis_replication_group_id))
    error_message = "redis_replication_group_id must be an ElastiCache replication group id."
  }
}

variable "redis_num_cache_clusters" {
  description = "Nodes in the replication group (cluster mode disabled): the alarms watch members <id>-001 .. <id>-00N."
  type        = number
  default     = 3

  validation {
    condition     = var.redis_num_cache_clusters >= 2 && var.redis_num_cache_clusters <= 6 && floor(var.redis_num_cache_clusters) == var.redis_num_cache_clusters
    error_message = "redis_num_cache_clusters must be a whole number between 2 and 6."
  }
}

variable "redis_replication_lag_threshold_seconds" {
  description = "Replica lag (ElastiCache ReplicationLag, any replica) that pages; the sessions written in that window would be lost by a failover."
  type        = number
  default     = 1

  validation {
    condition     = var.redis_replication_lag_threshold_seconds > 0
    error_message = "redis_replication_lag_threshold_seconds must be positive."
  }
}

variable "redis_engine_cpu_threshold" {
  description = "Redis engine CPU (EngineCPUUtilization, %, any node) that warns, 5 minutes in a row."
  type        = number
  default     = 70

  validation {
    condition     = var.redis_engine_cpu_threshold > 0 && var.redis_engine_cpu_threshold <= 100
    error_message = "redis_engine_cpu_threshold must be a percentage."
  }
}

variable "redis_memory_threshold" {
  description = "Redis memory use (DatabaseMemoryUsagePercentage, any node) that pages: past it, evictions may drop session state."
  type        = number
  default     = 80

  validation {
    condition     = var.redis_memory_threshold > 0 && var.redis_memory_threshold <= 100
    error_message = "redis_memory_threshold must be a percentage."
  }
}

variable "nlb_arn_suffix" {
  description = "ARN suffix (net/<name>/<id>, aws_lb.arn_suffix) of this region's NLB; required when nlb_alarms_enabled."
  type        = string
  default     = null

  validation {
    condition     = var.nlb_arn_suffix == null || can(regex("^net/[A-Za-z0-9-]+/[0-9a-f]+$", var.nlb_arn_suffix))
    error_message = "nlb_arn_suffix must look like net/<name>/<id>."
  }
}

variable "target_group_arn_suffix" {
  description = "ARN suffix (targetgroup/<name>/<id>, aws_lb_target_group.arn_suffix) of the NLB's gRPC target group; required with nlb_arn_suffix."
  type        = string
  default     = null

  validation {
    condition     = var.target_group_arn_suffix == null || can(regex("^targetgroup/[A-Za-z0-9-]+/[0-9a-f]+$", var.target_group_arn_suffix))
    error_message = "target_group_arn_suffix must look like targetgroup/<name>/<id>."
  }
}

variable "nlb_min_healthy_hosts" {
  description = "Fewest healthy fudo targets the NLB may report before the region counts as unhealthy (the baseline is one node per AZ, 3 AZs)."
  type        = number
  default     = 2

  validation {
    condition     = var.nlb_min_healthy_hosts >= 1
    error_message = "nlb_min_healthy_hosts must be at least 1."
  }
}
