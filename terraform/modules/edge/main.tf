locals {
  tags = merge(var.tags, { "fudo.io/component" = "edge" })

  # What both regional load balancers share.
  nlb = {
    allowed_client_cidrs             = var.allowed_client_cidrs
    grpc_port                        = var.grpc_port
    health_check_interval_seconds    = var.health_check_interval_seconds
    health_check_timeout_seconds     = var.health_check_timeout_seconds
    health_check_healthy_threshold   = var.health_check_healthy_threshold
    health_check_unhealthy_threshold = var.health_check_unhealthy_threshold
    deregistration_delay_seconds     = var.deregistration_delay_seconds
    access_logs_prefix               = var.access_logs_prefix
    shield_advanced_enabled          = var.shield_advanced_enabled
  }
}

################################################################################
# One internet-facing NLB per region (TLS on 443 -> fudo pods' gRPC port)
################################################################################

module "primary" {
  source = "./modules/regional_nlb"
  providers = {
    aws = aws.primary
  }

  name                              = var.name
  tags                              = local.tags
  vpc_id                            = var.primary_region.vpc_id
  public_subnet_ids                 = var.primary_region.public_subnet_ids
  certificate_arn                   = var.primary_region.certificate_arn
  access_logs_bucket                = var.primary_region.access_logs_bucket
  accelerator_source_prefix_list_id = var.primary_region.accelerator_source_prefix_list_id

  allowed_client_cidrs             = local.nlb.allowed_client_cidrs
  grpc_port                        = local.nlb.grpc_port
  health_check_interval_seconds    = local.nlb.health_check_interval_seconds
  health_check_timeout_seconds     = local.nlb.health_check_timeout_seconds
  health_check_healthy_threshold   = local.nlb.health_check_healthy_threshold
  health_check_unhealthy_threshold = local.nlb.health_check_unhealthy_threshold
  deregistration_delay_seconds     = local.nlb.deregistration_delay_seconds
  access_logs_prefix               = local.nlb.access_logs_prefix
  shield_advanced_enabled          = local.nlb.shield_advanced_enabled
}

module "secondary" {
  source = "./modules/regional_nlb"
  providers = {
    aws = aws.secondary
  }

  name                              = var.name
  tags                              = local.tags
  vpc_id                            = var.secondary_region.vpc_id
  public_subnet_ids                 = var.secondary_region.public_subnet_ids
  certificate_arn                   = var.secondary_region.certificate_arn
  access_logs_bucket                = var.secondary_region.access_logs_bucket
  accelerator_source_prefix_list_id = var.secondary_region.accelerator_source_prefix_list_id

  allowed_client_cidrs             = local.nlb.allowed_client_cidrs
  grpc_port                        = local.nlb.grpc_port
  health_check_interval_seconds    = local.nlb.health_check_interval_seconds
  health_check_timeout_seconds     = local.nlb.health_check_timeout_seconds
  health_check_healthy_threshold   = local.nlb.health_check_healthy_threshold
  health_check_unhealthy_threshold = local.nlb.health_check_unhealthy_threshold
  deregistration_delay_seconds     = local.nlb.deregistration_delay_seconds
  access_logs_prefix               = local.nlb.access_logs_prefix
  shield_advanced_enabled          = local.nlb.shield_advanced_enabled
}
