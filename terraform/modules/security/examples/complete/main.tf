# The security module in both regions: the primary instance creates the IAM roles and
# Tokyo's keys, the secondary instance only Osaka's keys. Placeholder ARNs stand in
# for what the audit, cluster, redis and edge modules output in a real environment.

provider "aws" {
  region = "ap-northeast-1"
}

provider "aws" {
  alias  = "secondary"
  region = "ap-northeast-3"
}

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  arn        = "arn:${local.partition}"

  tags = {
    Project     = "fudo"
    Environment = "example"
  }
}

module "security_secondary" {
  source = "../.."

  providers = {
    aws = aws.secondary
  }

  name             = "fudo-example"
  tags             = local.tags
  create_iam_roles = false
}

module "security" {
  source = "../.."

  name = "fudo-example"
  tags = local.tags

  # Account root stands in for the people of each group; in production list the IAM
  # users or the roles of the identity provider.
  trusted_principal_arns = {
    ml_engineer    = ["${local.arn}:iam::${local.account_id}:root"]
    trading_system = ["${local.arn}:iam::${local.account_id}:root"]
    operator       = ["${local.arn}:iam::${local.account_id}:root"]
    risk           = ["${local.arn}:iam::${local.account_id}:root"]
  }

  model_bucket_arn             = "${local.arn}:s3:::fudo-example-models-${local.account_id}-apne1"
  audit_bucket_arn             = "${local.arn}:s3:::fudo-example-audit-${local.account_id}-apne1"
  additional_model_bucket_arns = ["${local.arn}:s3:::fudo-example-models-${local.account_id}-apne3"]
  additional_audit_bucket_arns = ["${local.arn}:s3:::fudo-example-audit-${local.account_id}-apne3"]
  additional_s3_kms_key_arns   = [module.security_secondary.kms_key_arns["s3"]]
  secrets_kms_key_arns         = [module.security_secondary.kms_key_arns["redis"]]

  eks_cluster_arn             = "${local.arn}:eks:ap-northeast-1:${local.account_id}:cluster/fudo-example-tokyo"
  additional_eks_cluster_arns = ["${local.arn}:eks:ap-northeast-3:${local.account_id}:cluster/fudo-example-osaka"]

  redis_replication_group_arns = [
    "${local.arn}:elasticache:ap-northeast-1:${local.account_id}:replicationgroup:fudo-example-tokyo",
    "${local.arn}:elasticache:ap-northeast-3:${local.account_id}:replicationgroup:fudo-example-osaka",
  ]
  redis_global_replication_group_arns = ["${local.arn}:elasticache::${local.account_id}:globalreplicationgroup:ldgnf-fudo-example"]
  redis_auth_secret_arns = [
    "${local.arn}:secretsmanager:ap-northeast-1:${local.account_id}:secret:fudo-example-tokyo-redis-auth-AbCdEf",
    "${local.arn}:secretsmanager:ap-northeast-3:${local.account_id}:secret:fudo-example-osaka-redis-auth-AbCdEf",
  ]
  global_accelerator_arn = "${local.arn}:globalaccelerator::${local.account_id}:accelerator/1234abcd-abcd-1234-abcd-1234abcdef12"
  audit_log_group_arns   = ["${local.arn}:logs:ap-northeast-1:${local.account_id}:log-group:/fudo/fudo-example/audit"]
}

output "kms_key_arns" {
  description = "Tokyo's keys by purpose."
  value       = module.security.kms_key_arns
}

output "secondary_kms_key_arns" {
  description = "Osaka's keys by purpose."
  value       = module.security_secondary.kms_key_arns
}

output "group_role_arns" {
  description = "User-group role ARNs."
  value       = module.security.group_role_arns
}

output "workload_role_arn" {
  description = "fudo's Pod Identity role."
  value       = module.security.workload_role_arn
}
