# fudo staging: a single-region, smaller copy of prod (envs/prod) in Tokyo. Same modules and
# the same invariants (3 AZs, Multi-AZ Redis, COMPLIANCE audit bucket, on-demand baseline);
# smaller nodes, a 2-node Redis without Global Datastore, one NLB without Global Accelerator,
# and a smaller burst limit. Deploys and chaos drills are rehearsed here before prod.

locals {
  environment = "staging"
  name        = "fudo-staging"

  regions = {
    primary = "ap-northeast-1"
    replica = "ap-northeast-3"
  }

  azs  = ["ap-northeast-1a", "ap-northeast-1c", "ap-northeast-1d"]
  cidr = "10.20.0.0/16"

  tags = {
    Project     = "fudo"
    Environment = local.environment
    ManagedBy   = "terraform"
    CostCenter  = var.cost_center
  }

  access_entries = {
    terraform = {
      principal_arn = var.terraform_admin_role_arn
      policy_arn    = "arn:${data.aws_partition.current.partition}:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
      namespaces    = []
    }
    operator = {
      principal_arn = module.security.group_role_arns["operator"]
      policy_arn    = "arn:${data.aws_partition.current.partition}:eks::aws:cluster-access-policy/AmazonEKSEditPolicy"
      namespaces    = ["fudo"]
    }
    ml_engineer = {
      principal_arn = module.security.group_role_arns["ml_engineer"]
      policy_arn    = "arn:${data.aws_partition.current.partition}:eks::aws:cluster-access-policy/AmazonEKSEditPolicy"
      namespaces    = ["fudo"]
    }
    risk = {
      principal_arn = module.security.group_role_arns["risk"]
      policy_arn    = "arn:${data.aws_partition.current.partition}:eks::aws:cluster-access-policy/AmazonEKSViewPolicy"
      namespaces    = ["fudo"]
    }
  }
}

data "aws_partition" "current" {
  provider = aws.tokyo
}

module "security" {
  source    = "../../modules/security"
  providers = { aws = aws.tokyo }

  name                   = local.name
  create_iam_roles       = true
  trusted_principal_arns = var.trusted_principal_arns

  model_bucket_arn             = module.audit.model_bucket_arn
  additional_model_bucket_arns = [module.audit.model_replica_bucket_arn]
  audit_bucket_arn             = module.audit.bucket_arn
  additional_audit_bucket_arns = [module.audit.replica_bucket_arn]
  additional_s3_kms_key_arns   = [module.security_replica.kms_key_arns["s3"]]
  audit_log_group_arns         = [module.audit.log_group_arns["audit"]]
  eks_cluster_arn              = module.cluster.cluster_arn
  redis_replication_group_arns = [module.redis.replication_group_arn]
  redis_auth_secret_arns       = [module.redis.auth_secret_arn]
  secrets_kms_key_arns         = [module.security.kms_key_arns["redis"]]
}

# Keys for the Osaka replicas of the audit and model buckets; no IAM roles here.
module "security_replica" {
  source    = "../../modules/security"
  providers = { aws = aws.osaka }

  name             = "${local.name}-replica"
  create_iam_roles = false
}

module "network" {
  source    = "../../modules/network"
  providers = { aws = aws.tokyo }

  name                 = local.name
  cidr                 = local.cidr
  azs                  = local.azs
  cluster_name         = local.name
  flow_log_kms_key_arn = module.security.kms_key_arns["logs"]
}

module "cluster" {
  source = "../../modules/cluster"
  providers = {
    aws     = aws.tokyo
    helm    = helm
    kubectl = kubectl
  }

  name                     = local.name
  vpc_id                   = module.network.vpc_id
  azs                      = local.azs
  private_subnet_ids       = module.network.private_subnet_ids
  control_plane_subnet_ids = module.network.intra_subnet_ids

  kms_key_arn                     = module.security.kms_key_arns["eks"]
  cloudwatch_log_kms_key_arn      = module.security.kms_key_arns["logs"]
  karpenter_queue_kms_key_arn     = module.security.kms_key_arns["sqs"]
  workload_role_arn               = module.security.workload_role_arn
  access_entries                  = local.access_entries
  cluster_api_ingress_cidrs       = var.cluster_api_ingress_cidrs
  grpc_ingress_security_group_ids = [module.nlb.security_group_id]

  # Cheapest single-GPU nodes; still one per AZ, so AZ-loss drills mean what they mean in prod.
  gpu_instance_families       = ["g4dn", "g6"]
  gpu_instance_sizes          = ["xlarge"]
  baseline_gpu_nodes_per_zone = 1
  burst_gpu_limit             = 3
  system_node_instance_types  = ["m7i.large", "m6i.large"]
}

module "redis" {
  source    = "../../modules/redis"
  providers = { aws = aws.tokyo }

  name                       = local.name
  vpc_id                     = module.network.vpc_id
  subnet_ids                 = module.network.intra_subnet_ids
  allowed_security_group_ids = [module.cluster.node_security_group_id]
  kms_key_arn                = module.security.kms_key_arns["redis"]
  log_kms_key_arn            = module.security.kms_key_arns["logs"]
  node_type                  = "cache.m7g.large"
  num_cache_clusters         = 2
  global_datastore_role      = "none"
}

module "audit" {
  source = "../../modules/audit"
  providers = {
    aws         = aws.tokyo
    aws.replica = aws.osaka
  }

  name                = local.name
  kms_key_arn         = module.security.kms_key_arns["s3"]
  replica_kms_key_arn = module.security_replica.kms_key_arns["s3"]
  logs_kms_key_arn    = module.security.kms_key_arns["logs"]

  # Staging's journal is locked for 1 year, the module's minimum; prod keeps 7.
  retention_days           = 365
  audit_log_retention_days = 365
}

resource "aws_ec2_managed_prefix_list" "clients" {
  provider       = aws.tokyo
  name           = "${local.name}-clients"
  address_family = "IPv4"
  max_entries    = length(var.test_client_cidrs)

  dynamic "entry" {
    for_each = var.test_client_cidrs
    content {
      cidr        = entry.value
      description = "staging test clients"
    }
  }
}

# One regional NLB, no Global Accelerator: the edge module's regional part on its own.
module "nlb" {
  source    = "../../modules/edge/modules/regional_nlb"
  providers = { aws = aws.tokyo }

  name                              = local.name
  tags                              = { "fudo.io/component" = "edge" }
  vpc_id                            = module.network.vpc_id
  public_subnet_ids                 = module.network.public_subnet_ids
  certificate_arn                   = var.certificate_arn
  access_logs_bucket                = module.audit.access_log_bucket_ids["primary"]
  access_logs_prefix                = "nlb"
  accelerator_source_prefix_list_id = aws_ec2_managed_prefix_list.clients.id
  allowed_client_cidrs              = var.test_client_cidrs
  grpc_port                         = 8001
  health_check_interval_seconds     = 5
  health_check_timeout_seconds      = 4
  health_check_healthy_threshold    = 2
  health_check_unhealthy_threshold  = 2
  deregistration_delay_seconds      = 15
  shield_advanced_enabled           = false
}

module "monitoring" {
  source    = "../../modules/monitoring"
  providers = { aws = aws.tokyo }

  name                       = local.name
  kms_key_arn                = module.security.kms_key_arns["sns"]
  cluster_name               = module.cluster.cluster_name
  alarm_emails               = var.alarm_emails
  redis_alarms_enabled       = true
  redis_replication_group_id = module.redis.replication_group_id
  redis_num_cache_clusters   = 2
  nlb_alarms_enabled         = true
  nlb_arn_suffix             = regex("loadbalancer/(net/.+)$", module.nlb.nlb_arn)[0]
  target_group_arn_suffix    = regex("(targetgroup/.+)$", module.nlb.target_group_arn)[0]
  nlb_min_healthy_hosts      = 2
}
