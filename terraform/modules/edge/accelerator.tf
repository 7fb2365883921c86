################################################################################
# Global Accelerator: two anycast IPv4 addresses, TCP 443 passed through to the nearest
# healthy region's NLB (TLS still ends at the NLB)
################################################################################

resource "aws_globalaccelerator_accelerator" "this" {
  provider = aws.accelerator

  name            = "${var.name}-grpc"
  ip_address_type = "IPV4"
  enabled         = true

  attributes {
    flow_logs_enabled   = true
    flow_logs_s3_bucket = var.accelerator_flow_logs_bucket
    flow_logs_s3_prefix = var.accelerator_flow_logs_prefix
  }

  tags = local.tags
}

resource "aws_globalaccelerator_listener" "grpc" {
  provider = aws.accelerator

  accelerator_arn = aws_globalaccelerator_accelerator.this.arn
  protocol        = "TCP"
  # A client keeps landing on the same region (and its session owner) while that region is
  # healthy.
  client_affinity = "SOURCE_IP"

  port_range {
    from_port = 443
    to_port   = 443
  }
}

# For NLB endpoints Global Accelerator follows the NLB's own target health (a region's endpoint
# is unhealthy when its NLB has no healthy pod); health_check_interval_seconds and
# threshold_count below govern EC2 and Elastic IP endpoints only and are set for completeness.
#
# client_ip_preservation_enabled = false: Global Accelerator does not preserve client
# addresses for an NLB that has security groups and a TLS listener, so the NLBs see
# Global Accelerator's edge addresses (admitted by accelerator_source_prefix_list_id) and the
# gateways' addresses are recorded in the accelerator's flow logs.

resource "aws_globalaccelerator_endpoint_group" "primary" {
  provider = aws.accelerator

  listener_arn                  = aws_globalaccelerator_listener.grpc.arn
  endpoint_group_region         = module.primary.region
  traffic_dial_percentage       = 100
  health_check_protocol         = "TCP"
  health_check_port             = 443
  health_check_interval_seconds = var.accelerator_health_check_interval_seconds
  threshold_count               = var.accelerator_threshold_count

  endpoint_configuration {
    endpoint_id                    = module.primary.nlb_arn
    weight                         = 100
    client_ip_preservation_enabled = false
  }
}

resource "aws_globalaccelerator_endpoint_group" "secondary" {
  provider = aws.accelerator

  listener_arn                  = aws_globalaccelerator_listener.grpc.arn
  endpoint_group_region         = module.secondary.region
  traffic_dial_percentage       = var.accelerator_secondary_traffic_dial
  health_check_protocol         = "TCP"
  health_check_port             = 443
  health_check_interval_seconds = var.accelerator_health_check_interval_seconds
  threshold_count               = var.accelerator_threshold_count

  endpoint_configuration {
    endpoint_id                    = module.secondary.nlb_arn
    weight                         = 100
    client_ip_preservation_enabled = false
  }
}

################################################################################
# Shield Advanced on the accelerator (the NLBs' Elastic IPs are protected in the regional
# module). No WAF: WAF attaches to ALBs, CloudFront, API Gateway and the like, not to NLBs
# or TCP accelerators.
################################################################################

resource "aws_shield_protection" "accelerator" {
  count    = var.shield_advanced_enabled ? 1 : 0
  provider = aws.accelerator

  name         = "${var.name}-accelerator"
  resource_arn = aws_globalaccelerator_accelerator.this.arn

  tags = local.tags
}
