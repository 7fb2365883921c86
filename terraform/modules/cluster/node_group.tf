################################################################################
# SYSTEM managed node group: on-demand only, one node per zone (min = desired =
# 3), tainted CriticalAddonsOnly so that only cluster add-ons land here:
# CoreDNS, Karpenter (which must not run on capacity it manages), KEDA.
# GPU capacity is Karpenter's (karpenter_node_pools.tf).
################################################################################

data "aws_iam_policy_document" "node_assume" {
  statement {
    sid     = "EC2AssumeRole"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.${local.dns_suffix}"]
    }
  }
}

resource "aws_iam_role" "system_node" {
  name_prefix        = "${local.iam_prefix}-system-node-"
  description        = "System managed node group of ${var.name}"
  assume_role_policy = data.aws_iam_policy_document.node_assume.json

  tags = var.tags
}

locals {
  node_role_policies = {
    AmazonEKSWorkerNodePolicy          = "arn:${local.partition}:iam::aws:policy/AmazonEKSWorkerNodePolicy"
    AmazonEC2ContainerRegistryPullOnly = "arn:${local.partition}:iam::aws:policy/AmazonEC2ContainerRegistryPullOnly"
    AmazonEKS_CNI_Policy               = "arn:${local.partition}:iam::aws:policy/AmazonEKS_CNI_Policy"
    AmazonSSMManagedInstanceCore       = "arn:${local.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
  }
}

resource "aws_iam_role_policy_attachment" "system_node" {
  for_each = local.node_role_policies

  role       = aws_iam_role.system_node.name
  policy_arn = each.value
}

resource "aws_launch_template" "system" {
  name_prefix            = "${var.name}-system-"
  description            = "System node group of ${var.name}: IMDSv2 only, hop limit 1, encrypted gp3 root"
  update_default_version = true

  vpc_security_group_ids = [aws_security_group.node.id]

  # IMDSv2 only. Hop limit 1: no pod outside the host network can reach IMDS. Nothing here needs
  # more: pods get AWS credentials from EKS Pod Identity (the agent on 169.254.170.23, not IMDS);
  # the VPC CNI, kube-proxy and the Pod Identity agent run in the host network; Karpenter is given
  # its region (AWS_REGION) and the cluster endpoint explicitly instead of asking IMDS.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
    http_protocol_ipv6          = "disabled"
    instance_metadata_tags      = "disabled"
  }

  # Always encrypted. The managed node group launches through EC2 Auto Scaling, whose
  # service-linked role can use a customer managed key only if that key's policy (or a grant)
  # names it; without system_node_volume_kms_key_arn the volume uses the AWS managed aws/ebs key.
  block_device_mappings {
    device_name = "/dev/xvda"

    ebs {
      volume_size           = 50
      volume_type           = "gp3"
      encrypted             = true
      kms_key_id            = var.system_node_volume_kms_key_arn
      delete_on_termination = true
    }
  }

  monitoring {
    enabled = true
  }

  tag_specifications {
    resource_type = "instance"
    tags          = merge(var.tags, { Name = "${var.name}-system" })
  }

  tag_specifications {
    resource_type = "volume"
    tags          = merge(var.tags, { Name = "${var.name}-system" })
  }

  tags = var.tags

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_eks_node_group" "system" {
  cluster_name    = aws_eks_cluster.this.name
  node_group_name = "${var.name}-system"
  node_role_arn   = aws_iam_role.system_node.arn
  subnet_ids      = var.private_subnet_ids

  capacity_type  = "ON_DEMAND"
  ami_type       = "AL2023_x86_64_STANDARD"
  instance_types = var.system_node_instance_types

  scaling_config {
    min_size     = 3
    desired_size = 3
    max_size     = var.system_node_max_size
  }

  update_config {
    max_unavailable = 1
  }

  launch_template {
    id      = aws_launch_template.system.id
    version = aws_launch_template.system.latest_version
  }

  labels = {
    "fudo.io/pool" = "system"
  }

  taint {
    key    = "CriticalAddonsOnly"
    value  = "true"
    effect = "NO_SCHEDULE"
  }

  tags = var.tags

  depends_on = [
    aws_iam_role_policy_attachment.system_node,
    aws_eks_addon.before_compute,
  ]
}
