provider "aws" {
  region = "ap-northeast-1"
}

variable "flow_log_kms_key_arn" {
  description = "KMS key for the flow-log group (in fudo: module.security.kms_key_arns[\"logs\"])."
  type        = string
}

locals {
  name = "fudo-example"
  tags = {
    Project     = "fudo"
    Environment = "example"
  }
}

module "network" {
  source = "../../"

  name                    = local.name
  tags                    = local.tags
  cidr                    = "10.10.0.0/16"
  azs                     = ["ap-northeast-1a", "ap-northeast-1c", "ap-northeast-1d"]
  cluster_name            = local.name
  flow_log_kms_key_arn    = var.flow_log_kms_key_arn
  flow_log_retention_days = 365
}

output "vpc_id" {
  description = "ID of the example VPC."
  value       = module.network.vpc_id
}

output "private_subnet_ids" {
  description = "Private subnet IDs of the example VPC."
  value       = module.network.private_subnet_ids
}
