################################################################################
# Karpenter (v1 APIs), installed from the official OCI charts at a pinned
# version. CRDs come from the karpenter-crd chart so that chart upgrades also
# upgrade them (the main chart only installs CRDs on first install).
#
# It runs on the system node group (on-demand, tolerates CriticalAddonsOnly),
# never on capacity it manages itself (the chart's default affinity).
################################################################################

resource "helm_release" "karpenter_crd" {
  name      = "karpenter-crd"
  namespace = local.karpenter_namespace
  chart     = "oci://public.ecr.aws/karpenter/karpenter-crd"
  version   = var.karpenter_chart_version

  depends_on = [
    aws_eks_access_policy_association.this,
    aws_eks_node_group.system,
  ]
}

resource "helm_release" "karpenter" {
  name      = "karpenter"
  namespace = local.karpenter_namespace
  chart     = "oci://public.ecr.aws/karpenter/karpenter"
  version   = var.karpenter_chart_version
  skip_crds = true
  wait      = true

  values = [yamlencode({
    serviceAccount = {
      name = local.karpenter_service_account
    }
    replicas = 2
    nodeSelector = {
      "kubernetes.io/os" = "linux"
      "fudo.io/pool"     = "system"
    }
    tolerations = [
      { key = "CriticalAddonsOnly", operator = "Exists" },
    ]
    settings = {
      clusterName       = aws_eks_cluster.this.name
      clusterEndpoint   = aws_eks_cluster.this.endpoint
      interruptionQueue = aws_sqs_queue.karpenter.name
    }
    controller = {
      # Region given explicitly: with hop limit 1 the controller pod cannot ask IMDS for it.
      env = [
        { name = "AWS_REGION", value = local.region },
      ]
      resources = {
        requests = { cpu = "1", memory = "1Gi" }
        limits   = { memory = "1Gi" }
      }
    }
  })]

  depends_on = [
    helm_release.karpenter_crd,
    aws_eks_addon.before_compute,
    aws_eks_addon.coredns,
    aws_eks_pod_identity_association.karpenter,
    aws_iam_role_policy_attachment.karpenter_controller,
    aws_sqs_queue_policy.karpenter,
    aws_cloudwatch_event_target.karpenter,
    aws_eks_access_entry.karpenter_node,
  ]
}
