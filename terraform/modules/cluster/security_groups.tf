################################################################################
# Additional cluster security group (on the control-plane ENIs, next to the
# EKS-managed primary security group)
################################################################################

resource "aws_security_group" "cluster" {
  name_prefix = "${var.name}-cluster-"
  description = "EKS control plane of ${var.name}: Kubernetes API from nodes and named admin CIDRs"
  vpc_id      = var.vpc_id

  tags = merge(var.tags, { Name = "${var.name}-cluster" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "cluster_from_nodes" {
  security_group_id            = aws_security_group.cluster.id
  description                  = "Kubernetes API from the nodes"
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
  referenced_security_group_id = aws_security_group.node.id

  tags = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "cluster_from_cidrs" {
  for_each = toset(var.cluster_api_ingress_cidrs)

  security_group_id = aws_security_group.cluster.id
  description       = "Kubernetes API (private endpoint) from ${each.value}"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = each.value

  tags = var.tags
}

################################################################################
# Node security group: system node group and every Karpenter node (selected by
# the karpenter.sh/discovery tag). With the VPC CNI, pods share it.
################################################################################

locals {
  # Ports the control plane opens on nodes: webhooks (443, 8443 Karpenter, 9443), metrics-server
  # (4443), 6443 (API-server extensions), kubelet (10250).
  node_ports_from_cluster = {
    webhooks       = 443
    metrics_server = 4443
    extension_api  = 6443
    karpenter_hook = 8443
    webhooks_9443  = 9443
    kubelet        = 10250
  }
}

resource "aws_security_group" "node" {
  name_prefix = "${var.name}-node-"
  description = "EKS nodes of ${var.name} (system node group and Karpenter GPU nodes)"
  vpc_id      = var.vpc_id

  tags = merge(var.tags, {
    Name                     = "${var.name}-node"
    "karpenter.sh/discovery" = var.name
  })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "node_from_cluster" {
  for_each = local.node_ports_from_cluster

  security_group_id            = aws_security_group.node.id
  description                  = "Control plane to nodes: ${each.key} (${each.value})"
  ip_protocol                  = "tcp"
  from_port                    = each.value
  to_port                      = each.value
  referenced_security_group_id = aws_security_group.cluster.id

  tags = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "node_self" {
  security_group_id            = aws_security_group.node.id
  description                  = "Node to node and pod to pod (DNS, fudo gRPC 8001 and metrics 8002, region links in-region)"
  ip_protocol                  = "-1"
  referenced_security_group_id = aws_security_group.node.id

  tags = var.tags
}

# count, not for_each: the IDs usually come from another module and are unknown at plan time.
resource "aws_vpc_security_group_ingress_rule" "node_grpc_from_lb" {
  count = length(var.grpc_ingress_security_group_ids)

  security_group_id            = aws_security_group.node.id
  description                  = "fudo gRPC (8001) from a load balancer security group"
  ip_protocol                  = "tcp"
  from_port                    = 8001
  to_port                      = 8001
  referenced_security_group_id = var.grpc_ingress_security_group_ids[count.index]

  tags = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "node_region_links" {
  for_each = toset(var.peer_cidrs)

  security_group_id = aws_security_group.node.id
  description       = "fudo region links (gRPC 8001) from the peer region ${each.value}"
  ip_protocol       = "tcp"
  from_port         = 8001
  to_port           = 8001
  cidr_ipv4         = each.value

  tags = var.tags
}

resource "aws_vpc_security_group_egress_rule" "node_vpc" {
  security_group_id = aws_security_group.node.id
  description       = "Anything inside the VPC (API server, DNS, Redis, VPC endpoints, other nodes)"
  ip_protocol       = "-1"
  cidr_ipv4         = data.aws_vpc.this.cidr_block

  tags = var.tags
}

resource "aws_vpc_security_group_egress_rule" "node_https" {
  security_group_id = aws_security_group.node.id
  description       = "HTTPS out through NAT: AWS APIs without a VPC endpoint (EC2, SQS, EKS, pricing) and image registries"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"

  tags = var.tags
}

resource "aws_vpc_security_group_egress_rule" "node_region_links" {
  for_each = toset(var.peer_cidrs)

  security_group_id = aws_security_group.node.id
  description       = "fudo region links (gRPC 8001) to the peer region ${each.value}"
  ip_protocol       = "tcp"
  from_port         = 8001
  to_port           = 8001
  cidr_ipv4         = each.value

  tags = var.tags
}
