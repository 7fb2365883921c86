# What spans both regions: the audit and model buckets (Tokyo, replicated to Osaka), the edge
# (one NLB per region behind one Global Accelerator), and the peering that carries fudo's
# region links between the two VPCs.

module "audit" {
  source = "../../modules/audit"
  providers = {
    aws         = aws.tokyo
    aws.replica = aws.osaka
  }

  name                = "fudo-prod"
  kms_key_arn         = module.security_tokyo.kms_key_arns["s3"]
  replica_kms_key_arn = module.security_osaka.kms_key_arns["s3"]
  logs_kms_key_arn    = module.security_tokyo.kms_key_arns["logs"]

  # Object Lock COMPLIANCE retention of the audit journal: 7 years (FIEA record keeping).
  retention_days           = 2557
  audit_log_retention_days = 2557
}

# Global Accelerator's edge ranges, as a prefix list in each region for the NLB security groups.
resource "aws_ec2_managed_prefix_list" "accelerator_tokyo" {
  provider       = aws.tokyo
  name           = "${local.names.tokyo}-global-accelerator"
  address_family = "IPv4"
  max_entries    = length(var.accelerator_edge_cidrs)

  dynamic "entry" {
    for_each = var.accelerator_edge_cidrs
    content {
      cidr        = entry.value
      description = "Global Accelerator edge"
    }
  }
}

resource "aws_ec2_managed_prefix_list" "accelerator_osaka" {
  provider       = aws.osaka
  name           = "${local.names.osaka}-global-accelerator"
  address_family = "IPv4"
  max_entries    = length(var.accelerator_edge_cidrs)

  dynamic "entry" {
    for_each = var.accelerator_edge_cidrs
    content {
      cidr        = entry.value
      description = "Global Accelerator edge"
    }
  }
}

module "edge" {
  source = "../../modules/edge"
  providers = {
    aws.primary     = aws.tokyo
    aws.secondary   = aws.osaka
    aws.accelerator = aws.accelerator
  }

  name = "fudo-prod"

  primary_region = {
    vpc_id                            = module.network_tokyo.vpc_id
    public_subnet_ids                 = module.network_tokyo.public_subnet_ids
    certificate_arn                   = var.certificate_arns.tokyo
    access_logs_bucket                = module.audit.access_log_bucket_ids["primary"]
    accelerator_source_prefix_list_id = aws_ec2_managed_prefix_list.accelerator_tokyo.id
  }
  secondary_region = {
    vpc_id                            = module.network_osaka.vpc_id
    public_subnet_ids                 = module.network_osaka.public_subnet_ids
    certificate_arn                   = var.certificate_arns.osaka
    access_logs_bucket                = module.audit.access_log_bucket_ids["replica"]
    accelerator_source_prefix_list_id = aws_ec2_managed_prefix_list.accelerator_osaka.id
  }

  allowed_client_cidrs = var.trading_gateway_cidrs
  grpc_port            = 8001

  # A failed pod is out of the target group within 2 x 5 s (+4 s timeout); a draining pod's
  # connections get 15 s (deploy/k8s: preStop drain, then sleep 25).
  health_check_interval_seconds    = 5
  health_check_unhealthy_threshold = 2
  deregistration_delay_seconds     = 15

  # Active/active by proximity: the gateways are in Tokyo, so Osaka takes traffic when Tokyo's
  # targets are unhealthy.
  accelerator_secondary_traffic_dial = 100
  accelerator_flow_logs_bucket       = module.audit.access_log_bucket_ids["primary"]
  shield_advanced_enabled            = var.shield_advanced_enabled
}

# fudo's region links (gRPC 8001 between nodes) cross between the VPCs over inter-region
# peering; the cluster module admits the peer CIDR on 8001 only.
resource "aws_vpc_peering_connection" "tokyo_osaka" {
  provider    = aws.tokyo
  vpc_id      = module.network_tokyo.vpc_id
  peer_vpc_id = module.network_osaka.vpc_id
  peer_region = local.regions.secondary

  tags = { Name = "fudo-prod-tokyo-osaka" }
}

resource "aws_vpc_peering_connection_accepter" "osaka" {
  provider                  = aws.osaka
  vpc_peering_connection_id = aws_vpc_peering_connection.tokyo_osaka.id
  auto_accept               = true

  tags = { Name = "fudo-prod-tokyo-osaka" }
}

resource "aws_route" "tokyo_to_osaka" {
  provider = aws.tokyo
  # Keyed by AZ (known at plan time); the route table ids are only known after apply.
  for_each                  = zipmap(local.azs.tokyo, module.network_tokyo.private_route_table_ids)
  route_table_id            = each.value
  destination_cidr_block    = local.cidrs.osaka
  vpc_peering_connection_id = aws_vpc_peering_connection.tokyo_osaka.id
}

resource "aws_route" "osaka_to_tokyo" {
  provider                  = aws.osaka
  for_each                  = zipmap(local.azs.osaka, module.network_osaka.private_route_table_ids)
  route_table_id            = each.value
  destination_cidr_block    = local.cidrs.tokyo
  vpc_peering_connection_id = aws_vpc_peering_connection_accepter.osaka.id
}
