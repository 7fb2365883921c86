# Osaka (ap-northeast-3): the secondary region, a warm standby. Its baseline serves at once
# when Tokyo is lost (the client library fails over in ≤ 0.05 s; SLA.md); it holds the Redis
# Global Datastore secondary, which an operator promotes after a region loss. IAM roles are
# global and come from Tokyo's security module; this one creates only Osaka's KMS keys.

module "security_osaka" {
  source    = "../../modules/security"
  providers = { aws = aws.osaka }

  name             = local.names.osaka
  create_iam_roles = false
}

module "network_osaka" {
  source    = "../../modules/network"
  providers = { aws = aws.osaka }

  name                 = local.names.osaka
  cidr                 = local.cidrs.osaka
  azs                  = local.azs.osaka
  cluster_name         = local.names.osaka
  flow_log_kms_key_arn = module.security_osaka.kms_key_arns["logs"]
}

module "cluster_osaka" {
  source = "../../modules/cluster"
  providers = {
    aws     = aws.osaka
    helm    = helm.osaka
    kubectl = kubectl.osaka
  }

  name                     = local.names.osaka
  vpc_id                   = module.network_osaka.vpc_id
  azs                      = local.azs.osaka
  private_subnet_ids       = module.network_osaka.private_subnet_ids
  control_plane_subnet_ids = module.network_osaka.intra_subnet_ids

  kms_key_arn                 = module.security_osaka.kms_key_arns["eks"]
  cloudwatch_log_kms_key_arn  = module.security_osaka.kms_key_arns["logs"]
  karpenter_queue_kms_key_arn = module.security_osaka.kms_key_arns["sqs"]
  workload_role_arn           = module.security_tokyo.workload_role_arn
  access_entries              = local.access_entries
  cluster_api_ingress_cidrs   = var.cluster_api_ingress_cidrs

  peer_cidrs                      = [local.cidrs.tokyo]
  grpc_ingress_security_group_ids = [module.edge.nlb_security_group_ids["secondary"]]

  # g5 and g6 are not offered in Osaka (docs/cost.md); T4 nodes carry the CPU-bound MLP
  # policies at the same measured rate.
  gpu_instance_families       = ["g4dn"]
  baseline_gpu_nodes_per_zone = 1
  burst_gpu_limit             = 6
}

module "redis_osaka" {
  source    = "../../modules/redis"
  providers = { aws = aws.osaka }

  name                        = local.names.osaka
  vpc_id                      = module.network_osaka.vpc_id
  subnet_ids                  = module.network_osaka.intra_subnet_ids
  allowed_security_group_ids  = [module.cluster_osaka.node_security_group_id]
  kms_key_arn                 = module.security_osaka.kms_key_arns["redis"]
  log_kms_key_arn             = module.security_osaka.kms_key_arns["logs"]
  num_cache_clusters          = 3
  global_datastore_role       = "secondary"
  global_replication_group_id = module.redis_tokyo.global_replication_group_id
}

module "monitoring_osaka" {
  source    = "../../modules/monitoring"
  providers = { aws = aws.osaka }

  name                       = local.names.osaka
  kms_key_arn                = module.security_osaka.kms_key_arns["sns"]
  cluster_name               = module.cluster_osaka.cluster_name
  alarm_emails               = var.alarm_emails
  redis_alarms_enabled       = true
  redis_replication_group_id = module.redis_osaka.replication_group_id
  redis_num_cache_clusters   = 3
  nlb_alarms_enabled         = true
  nlb_arn_suffix             = regex("loadbalancer/(net/.+)$", module.edge.nlb_arns["secondary"])[0]
  target_group_arn_suffix    = regex("(targetgroup/.+)$", module.edge.target_group_arns["secondary"])[0]
  nlb_min_healthy_hosts      = 2
}
