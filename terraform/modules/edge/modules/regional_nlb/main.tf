data "aws_region" "current" {}

data "aws_partition" "current" {}

data "aws_caller_identity" "current" {}

data "aws_vpc" "this" {
  id = var.vpc_id
}

locals {
  lb_name = trimsuffix(substr("${var.name}-grpc", 0, 32), "-")
}

################################################################################
# Security group: 443 from the trading gateways and from Global Accelerator's edge;
# out only to the fudo pods' gRPC port inside the VPC
################################################################################

resource "aws_security_group" "nlb" {
  name_prefix = "${var.name}-nlb-"
  description = "fudo gRPC NLB: TLS 443 from the trading gateways and Global Accelerator only"
  vpc_id      = var.vpc_id

  tags = merge(var.tags, { Name = "${var.name}-nlb" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "clients" {
  count = length(var.allowed_client_cidrs)

  security_group_id = aws_security_group.nlb.id
  description       = "gRPC over TLS from a trading gateway network"
  cidr_ipv4         = var.allowed_client_cidrs[count.index]
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443

  tags = var.tags
}

# Global Accelerator reaches the NLB from its edge addresses: client IP preservation is not
# available for an NLB with security groups and a TLS listener, so GA translates the source.
resource "aws_vpc_security_group_ingress_rule" "accelerator" {
  security_group_id = aws_security_group.nlb.id
  description       = "gRPC over TLS from Global Accelerator edge locations"
  prefix_list_id    = var.accelerator_source_prefix_list_id
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443

  tags = var.tags
}

resource "aws_vpc_security_group_egress_rule" "targets" {
  security_group_id = aws_security_group.nlb.id
  description       = "gRPC (plaintext inside the VPC) and TCP health checks to the fudo pods"
  cidr_ipv4         = data.aws_vpc.this.cidr_block
  ip_protocol       = "tcp"
  from_port         = var.grpc_port
  to_port           = var.grpc_port

  tags = var.tags
}

################################################################################
# Network Load Balancer: internet-facing, one Elastic IP per zone (fixed addresses for the
# gateways' firewalls, and what Shield Advanced protects for an NLB)
################################################################################

resource "aws_eip" "nlb" {
  #checkov:skip=CKV2_AWS_19:These Elastic IPs are attached to the Network Load Balancer through its subnet_mapping, a case the check does not recognise
  count = length(var.public_subnet_ids)

  domain = "vpc"

  tags = merge(var.tags, { Name = "${var.name}-nlb-${count.index}" })
}

resource "aws_lb" "this" {
  name               = local.lb_name
  load_balancer_type = "network"
  internal           = false
  ip_address_type    = "ipv4"
  security_groups    = [aws_security_group.nlb.id]

  dynamic "subnet_mapping" {
    for_each = var.public_subnet_ids

    content {
      subnet_id     = subnet_mapping.value
      allocation_id = aws_eip.nlb[subnet_mapping.key].id
    }
  }

  enable_cross_zone_load_balancing = true
  enable_deletion_protection       = true

  access_logs {
    bucket  = var.access_logs_bucket
    prefix  = var.access_logs_prefix
    enabled = true
  }

  tags = var.tags
}

resource "aws_lb_target_group" "grpc" {
  name            = local.lb_name
  target_type     = "ip"
  protocol        = "TCP"
  port            = var.grpc_port
  vpc_id          = var.vpc_id
  ip_address_type = "ipv4"

  # The pods see the NLB's private address; they are reached only from the NLB's security group.
  preserve_client_ip = false
  proxy_protocol_v2  = false

  # Matches the pods' preStop drain: a deregistered pod keeps its connections this long, then
  # the NLB closes them (clients reconnect through another target).
  deregistration_delay   = var.deregistration_delay_seconds
  connection_termination = true

  # NLB target groups cannot run gRPC health checks (only ALB can): TCP connect to the gRPC
  # port. A draining pod is taken out by deregistration, not by this check.
  health_check {
    enabled             = true
    protocol            = "TCP"
    port                = "traffic-port"
    interval            = var.health_check_interval_seconds
    timeout             = var.health_check_timeout_seconds
    healthy_threshold   = var.health_check_healthy_threshold
    unhealthy_threshold = var.health_check_unhealthy_threshold
  }

  target_health_state {
    enable_unhealthy_connection_termination = true
  }

  tags = var.tags

  lifecycle {
    precondition {
      condition     = var.health_check_timeout_seconds < var.health_check_interval_seconds
      error_message = "health_check_timeout_seconds must be shorter than health_check_interval_seconds."
    }
  }
}

# TLS ends here; the NLB-to-pod hop is plaintext gRPC (h2c) inside the VPC, since fudo does not
# serve TLS itself. ALPN h2 is required by gRPC clients over TLS.
resource "aws_lb_listener" "grpc" {
  load_balancer_arn = aws_lb.this.arn
  port              = 443
  protocol          = "TLS"
  certificate_arn   = var.certificate_arn
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-Res-2021-06"
  alpn_policy       = "HTTP2Only"

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.grpc.arn
  }

  tags = var.tags
}

################################################################################
# Shield Advanced: an NLB is protected through its Elastic IPs
################################################################################

resource "aws_shield_protection" "nlb" {
  count = var.shield_advanced_enabled ? length(var.public_subnet_ids) : 0

  name         = "${var.name}-nlb-eip-${count.index}"
  resource_arn = "arn:${data.aws_partition.current.partition}:ec2:${data.aws_region.current.region}:${data.aws_caller_identity.current.account_id}:eip-allocation/${aws_eip.nlb[count.index].id}"

  tags = var.tags
}
