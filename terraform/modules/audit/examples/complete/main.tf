# The audit module in Tokyo, replicating to Osaka, with its KMS keys from the security
# module of each region.

provider "aws" {
  region = "ap-northeast-1"
}

provider "aws" {
  alias  = "replica"
  region = "ap-northeast-3"
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

module "replica_keys" {
  source = "../../../security"

  providers = {
    aws = aws.replica
  }

  name             = "fudo-example"
  tags             = local.tags
  create_iam_roles = false
}

module "audit" {
  source = "../.."

  providers = {
    aws         = aws
    aws.replica = aws.replica
  }

  name                = "fudo-example"
  tags                = local.tags
  kms_key_arn         = module.keys.kms_key_arns["s3"]
  replica_kms_key_arn = module.replica_keys.kms_key_arns["s3"]
  logs_kms_key_arn    = module.keys.kms_key_arns["logs"]

  retention_days                 = 2557
  audit_log_retention_days       = 2557
  application_log_retention_days = 365
}

output "bucket_arn" {
  description = "Audit bucket."
  value       = module.audit.bucket_arn
}

output "replica_bucket_arn" {
  description = "Audit bucket replica in Osaka."
  value       = module.audit.replica_bucket_arn
}

output "model_bucket_arn" {
  description = "Model registry bucket."
  value       = module.audit.model_bucket_arn
}

output "log_group_names" {
  description = "Log groups by purpose."
  value       = module.audit.log_group_names
}
