# Tokyo (ap-northeast-1): the primary region. It serves the trading gateways in normal
# operation, holds the Redis Global Datastore primary and creates the account's IAM roles.

module "security_tokyo" {
  source    = "../../modules/security"
  providers = { aws = aws.tokyo }

  name             = local.names.tokyo
  create_iam_roles = true

  trusted_principal_arns = var.trusted_principal_arns

  model_bucket_arn             = module.audit.model_bucket_arn
  additional_model_bucket_arns = [module.audit.model_replica_bucket_arn]
  audit_bucket_arn             = module.audit.bucket_arn
  additional_audit_bucket_arns = [module.audit.replica_bucket_arn]
  additional_s3_kms_key_arns   = [module.security_osaka.kms_key_arns["s3"]]
  audit_log_group_arns         = [module.audit.log_group_arns["audit"]]

  eks_cluster_arn             = module.cluster_tokyo.cluster_arn
  additional_eks_cluster_arns = [module.cluster_osaka.cluster_arn]

  redis_replication_group_arns = [module.redis_tokyo.replication_group_arn, module.redis_osaka.replication_group_arn]
  redis_auth_secret_arns       = [module.redis_tokyo.auth_secret_arn, module.redis_osaka.auth_secret_arn]
  secrets_kms_key_arns         = [module.security_tokyo.kms_key_arns["redis"], module.security_osaka.kms_key_arns["redis"]]
  global_accelerator_arn       = module.edge.accelerator_arn
}

module "network_tokyo" {
  source    = "../../modules/network"
  providers = { aws = aws.tokyo }

  name                 = local.names.tokyo
  cidr                 = local.cidrs.tokyo
  azs                  = local.azs.tokyo
  cluster_name         = local.names.tokyo
  flow_log_kms_key_arn = module.security_tokyo.kms_key_arns["logs"]
}

module "cluster_tokyo" {
  source = "../../modules/cluster"
  providers = {
    aws     = aws.tokyo
    helm    = helm.tokyo
    kubectl = kubectl.tokyo
  }

  name                     = local.names.tokyo
  vpc_id                   = module.network_tokyo.vpc_id
  azs                      = local.azs.tokyo
  private_subnet_ids       = module.network_tokyo.private_subnet_ids
  control_plane_subnet_ids = module.network_tokyo.intra_subnet_ids

  kms_key_arn                 = module.security_tokyo.kms_key_arns["eks"]
  cloudwatch_log_kms_key_arn  = module.security_tokyo.kms_key_arns["logs"]
  karpenter_queue_kms_key_arn = module.security_tokyo.kms_key_arns["sqs"]
  workload_role_arn           = module.security_tokyo.workload_role_arn
  access_entries              = local.access_entries
  cluster_api_ingress_cidrs   = var.cluster_api_ingress_cidrs

  # Region links to Osaka's nodes, and the NLB's health checks and traffic.
  peer_cidrs                      = [local.cidrs.osaka]
  grpc_ingress_security_group_ids = [module.edge.nlb_security_group_ids["primary"]]

  # The HA baseline: one on-demand GPU node per AZ carries the normal load alone and 2/3 of it
  # survives an AZ loss (docs/cost.md). Burst (spot first) covers the market-open peak.
  gpu_instance_families       = ["g6", "g5"]
  baseline_gpu_nodes_per_zone = 1
  burst_gpu_limit             = 12
}

module "redis_tokyo" {
  source    = "../../modules/redis"
  providers = { aws = aws.tokyo }

  name                       = local.names.tokyo
  vpc_id                     = module.network_tokyo.vpc_id
  subnet_ids                 = module.network_tokyo.intra_subnet_ids
  allowed_security_group_ids = [module.cluster_tokyo.node_security_group_id]
  kms_key_arn                = module.security_tokyo.kms_key_arns["redis"]
  log_kms_key_arn            = module.security_tokyo.kms_key_arns["logs"]
  node_type                  = "cache.r7g.large"
  num_cache_clusters         = 3
  global_datastore_role      = "primary"
}

module "monitoring_tokyo" {
  source    = "../../modules/monitoring"
  providers = { aws = aws.tokyo }

  name                       = local.names.tokyo
  kms_key_arn                = module.security_tokyo.kms_key_arns["sns"]
  cluster_name               = module.cluster_tokyo.cluster_name
  alarm_emails               = var.alarm_emails
  redis_alarms_enabled       = true
  redis_replication_group_id = module.redis_tokyo.replication_group_id
  redis_num_cache_clusters   = 3
  nlb_alarms_enabled         = true
  nlb_arn_suffix             = regex("loadbalancer/(net/.+)$", module.edge.nlb_arns["primary"])[0]
  target_group_arn_suffix    = regex("(targetgroup/.+)$", module.edge.target_group_arns["primary"])[0]
  nlb_min_healthy_hosts      = 2
}
