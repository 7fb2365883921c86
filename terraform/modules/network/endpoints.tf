################################################################################
# VPC endpoints: S3 (gateway and interface) and the interface endpoints nodes need
# to pull images, fetch credentials, use KMS and ship logs without going through NAT.
#
# S3 also gets an interface endpoint, resolved for everything in the VPC: pods reach
# S3 (the model repository) at addresses inside the VPC CIDR, which is what fudo's
# default-deny NetworkPolicy admits on 443 (deploy/k8s/networkpolicy.yaml); through the
# gateway endpoint alone they would need S3's public ranges.
################################################################################

locals {
  interface_endpoints = toset(distinct(concat(
    ["ecr.api", "ecr.dkr", "kms", "sts", "logs"],
    var.additional_interface_endpoints,
  )))
}

resource "aws_security_group" "endpoints" {
  name_prefix = "${var.name}-vpce-"
  description = "Interface VPC endpoints of ${var.name}: HTTPS from inside the VPC only"
  vpc_id      = aws_vpc.this.id

  tags = merge(var.tags, { Name = "${var.name}-vpce" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "endpoints_https" {
  security_group_id = aws_security_group.endpoints.id
  description       = "HTTPS to the interface endpoints from the VPC CIDR"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = aws_vpc.this.cidr_block

  tags = var.tags
}

resource "aws_vpc_endpoint" "s3" {
  vpc_id            = aws_vpc.this.id
  service_name      = "com.amazonaws.${local.region}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids = concat(
    [for az in var.azs : aws_route_table.private[az].id],
    [aws_route_table.intra.id],
  )

  tags = merge(var.tags, { Name = "${var.name}-s3" })
}

resource "aws_vpc_endpoint" "interface" {
  for_each = local.interface_endpoints

  vpc_id              = aws_vpc.this.id
  service_name        = "com.amazonaws.${local.region}.${each.key}"
  vpc_endpoint_type   = "Interface"
  private_dns_enabled = true
  subnet_ids          = [for az in var.azs : aws_subnet.private[az].id]
  security_group_ids  = [aws_security_group.endpoints.id]

  tags = merge(var.tags, { Name = "${var.name}-${each.key}" })
}

resource "aws_vpc_endpoint" "s3_interface" {
  vpc_id              = aws_vpc.this.id
  service_name        = "com.amazonaws.${local.region}.s3"
  vpc_endpoint_type   = "Interface"
  private_dns_enabled = true
  subnet_ids          = [for az in var.azs : aws_subnet.private[az].id]
  security_group_ids  = [aws_security_group.endpoints.id]

  # With the gateway endpoint beside it, S3's private DNS names resolve to this endpoint for
  # every client in the VPC, not only for inbound Resolver endpoints.
  dns_options {
    private_dns_only_for_inbound_resolver_endpoint = false
  }

  tags = merge(var.tags, { Name = "${var.name}-s3-interface" })

  depends_on = [aws_vpc_endpoint.s3]
}
