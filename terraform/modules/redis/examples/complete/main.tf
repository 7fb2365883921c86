# A Global Datastore over two regions: the primary replication group in Tokyo, a read-only
# secondary in Osaka. VPCs, subnets, the EKS node security groups and the KMS keys come from
# the network, cluster and security modules in fudo's environments; here they are variables.

provider "aws" {
  region = "ap-northeast-1"
}

provider "aws" {
  alias  = "osaka"
  region = "ap-northeast-3"
}

variable "tokyo" {
  description = "Tokyo inputs: VPC, private subnets (3 zones), EKS node security group, KMS keys for the cache and for logs."
  type = object({
    vpc_id                = string
    subnet_ids            = list(string)
    node_security_group   = string
    redis_kms_key_arn     = string
    logs_kms_key_arn      = string
    warning_sns_topic_arn = string
  })
}

variable "osaka" {
  description = "Osaka inputs, as for tokyo."
  type = object({
    vpc_id                = string
    subnet_ids            = list(string)
    node_security_group   = string
    redis_kms_key_arn     = string
    logs_kms_key_arn      = string
    warning_sns_topic_arn = string
  })
}

locals {
  name = "fudo-example"
  tags = {
    Project     = "fudo"
    Environment = "example"
  }
}

module "redis_tokyo" {
  source = "../../"

  name                       = local.name
  tags                       = local.tags
  vpc_id                     = var.tokyo.vpc_id
  subnet_ids                 = var.tokyo.subnet_ids
  allowed_security_group_ids = [var.tokyo.node_security_group]
  kms_key_arn                = var.tokyo.redis_kms_key_arn
  log_kms_key_arn            = var.tokyo.logs_kms_key_arn
  notification_topic_arn     = var.tokyo.warning_sns_topic_arn

  node_type             = "cache.r7g.large"
  engine_version        = "7.1"
  num_cache_clusters    = 3
  global_datastore_role = "primary"
}

module "redis_osaka" {
  source = "../../"
  providers = {
    aws = aws.osaka
  }

  name                       = local.name
  tags                       = local.tags
  vpc_id                     = var.osaka.vpc_id
  subnet_ids                 = var.osaka.subnet_ids
  allowed_security_group_ids = [var.osaka.node_security_group]
  kms_key_arn                = var.osaka.redis_kms_key_arn
  log_kms_key_arn            = var.osaka.logs_kms_key_arn
  notification_topic_arn     = var.osaka.warning_sns_topic_arn

  num_cache_clusters          = 3
  global_datastore_role       = "secondary"
  global_replication_group_id = module.redis_tokyo.global_replication_group_id
}

output "tokyo_primary_endpoint" {
  description = "Writable endpoint (Tokyo) of the session store."
  value       = module.redis_tokyo.primary_endpoint_address
}

output "osaka_endpoint" {
  description = "Osaka secondary's endpoint (read-only until promoted)."
  value       = module.redis_osaka.primary_endpoint_address
}

output "auth_secret_arns" {
  description = "AUTH secrets per region."
  value = {
    tokyo = module.redis_tokyo.auth_secret_arn
    osaka = module.redis_osaka.auth_secret_arn
  }
}
