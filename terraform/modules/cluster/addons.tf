################################################################################
# EKS add-ons. vpc-cni, kube-proxy and eks-pod-identity-agent go in before the
# node group so that nodes come up Ready with the managed versions; CoreDNS
# needs nodes to schedule on, so it follows the node group.
################################################################################

locals {
  addons_before_compute = toset(["vpc-cni", "kube-proxy", "eks-pod-identity-agent"])
  addons_all            = setunion(local.addons_before_compute, ["coredns"])
}

data "aws_eks_addon_version" "this" {
  for_each = local.addons_all

  addon_name         = each.key
  kubernetes_version = aws_eks_cluster.this.version
  most_recent        = true
}

resource "aws_eks_addon" "before_compute" {
  for_each = local.addons_before_compute

  cluster_name                = aws_eks_cluster.this.name
  addon_name                  = each.key
  addon_version               = lookup(var.addon_versions, each.key, data.aws_eks_addon_version.this[each.key].version)
  resolve_conflicts_on_create = "OVERWRITE"
  resolve_conflicts_on_update = "OVERWRITE"

  # The VPC CNI enforces Kubernetes NetworkPolicy (deploy/k8s ships a default-deny policy).
  configuration_values = each.key == "vpc-cni" ? jsonencode({ enableNetworkPolicy = "true" }) : null

  tags = var.tags
}

resource "aws_eks_addon" "coredns" {
  cluster_name                = aws_eks_cluster.this.name
  addon_name                  = "coredns"
  addon_version               = lookup(var.addon_versions, "coredns", data.aws_eks_addon_version.this["coredns"].version)
  resolve_conflicts_on_create = "OVERWRITE"
  resolve_conflicts_on_update = "OVERWRITE"

  # At least one replica per zone; the add-on's autoscaler adds more with the cluster's size.
  configuration_values = jsonencode({
    autoScaling = {
      enabled     = true
      minReplicas = 3
      maxReplicas = 10
    }
  })

  tags = var.tags

  depends_on = [aws_eks_node_group.system]
}

################################################################################
# fudo's workload identity: pods of service account fudo in namespace fudo get
# var.workload_role_arn through EKS Pod Identity.
################################################################################

resource "aws_eks_pod_identity_association" "fudo" {
  cluster_name    = aws_eks_cluster.this.name
  namespace       = "fudo"
  service_account = "fudo"
  role_arn        = var.workload_role_arn

  tags = var.tags

  depends_on = [aws_eks_addon.before_compute]
}
