# The monitoring module for the Tokyo region, with the SNS key from the security module.
# The Redis and NLB identifiers are placeholders for the redis and edge modules' outputs.

provider "aws" {
  region = "ap-northeast-1"
}

locals {
  tags = {
    Project     = "fudo"
    Environment = "example"
  }
}

module "keys" {
  source = "../../../security"

  name             = "fudo-example"
  tags             = local.tags
  create_iam_roles = false
}

module "monitoring" {
  source = "../.."

  name         = "fudo-example-tokyo"
  tags         = local.tags
  kms_key_arn  = module.keys.kms_key_arns["sns"]
  cluster_name = "fudo-example-tokyo"
  alarm_emails = ["oncall@example.com"]

  error_rate_threshold          = 0.001
  latency_p99_threshold_seconds = 0.05

  redis_alarms_enabled       = true
  redis_replication_group_id = "fudo-example-tokyo"
  redis_num_cache_clusters   = 3

  nlb_alarms_enabled      = true
  nlb_arn_suffix          = "net/fudo-example-tokyo/0123456789abcdef"
  target_group_arn_suffix = "targetgroup/fudo-example-grpc/0123456789abcdef"
  nlb_min_healthy_hosts   = 2
}

output "critical_topic_arn" {
  description = "Paging topic."
  value       = module.monitoring.critical_topic_arn
}

output "alarm_arns" {
  description = "Alarms by key."
  value       = module.monitoring.alarm_arns
}
