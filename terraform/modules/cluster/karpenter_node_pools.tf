################################################################################
# GPU capacity: one EC2NodeClass and two NodePools, written as HCL objects that
# mirror the Karpenter v1 spec field for field, and applied with yamlencode().
#
#   gpu-baseline  ON-DEMAND ONLY. Holds fudo's HA baseline: at least one GPU node
#                 per zone (baseline_gpu_nodes_per_zone x zones), so a lost zone
#                 leaves 2 of 3 serving. Spot can never hold it: its only
#                 capacity type is on-demand, and burst nodes carry a taint that
#                 baseline pods do not tolerate.
#   gpu-burst     Spot first, on-demand only as fallback when no spot offering
#                 is available, tainted fudo.io/capacity=spot:NoSchedule so that
#                 only pods that opt into burst capacity land on it.
#
# Both: no voluntary disruption (consolidation, drift) during Tokyo market hours
# (budget nodes = "0" on var.market_hours_utc), at most one node at a time
# outside them. Budgets do not stop forceful disruption (spot interruption,
# expiry): the baseline never expires, burst expires after burst_expire_after.
################################################################################

locals {
  ami_family = split("@", var.node_ami_alias)[0]

  gpu_data_volume = {
    volumeSize          = "${var.gpu_node_volume_size_gib}Gi"
    volumeType          = "gp3"
    iops                = 3000
    throughput          = 250
    encrypted           = true
    kmsKeyID            = var.kms_key_arn
    deleteOnTermination = true
  }

  # Bottlerocket: /dev/xvda is the OS volume, /dev/xvdb holds images and containers.
  # (Both volume objects carry the same attributes so that the conditional below type-checks.)
  bottlerocket_block_device_mappings = [
    {
      deviceName = "/dev/xvda"
      ebs = {
        volumeSize          = "10Gi"
        volumeType          = "gp3"
        iops                = 3000
        throughput          = 125
        encrypted           = true
        kmsKeyID            = var.kms_key_arn
        deleteOnTermination = true
      }
    },
    { deviceName = "/dev/xvdb", ebs = local.gpu_data_volume },
  ]

  # AL2023: a single root volume on /dev/xvda.
  al2023_block_device_mappings = [
    { deviceName = "/dev/xvda", ebs = local.gpu_data_volume },
  ]

  gpu_block_device_mappings = local.ami_family == "bottlerocket" ? local.bottlerocket_block_device_mappings : local.al2023_block_device_mappings

  node_classes = {
    gpu = {
      apiVersion = "karpenter.k8s.aws/v1"
      kind       = "EC2NodeClass"
      metadata = {
        name = "gpu"
      }
      spec = {
        role = aws_iam_role.karpenter_node.name
        amiSelectorTerms = [
          { alias = var.node_ami_alias },
        ]
        subnetSelectorTerms = [
          { tags = { "karpenter.sh/discovery" = var.name } },
        ]
        securityGroupSelectorTerms = [
          { tags = { "karpenter.sh/discovery" = var.name } },
        ]
        associatePublicIPAddress = false
        metadataOptions = {
          httpEndpoint            = "enabled"
          httpProtocolIPv6        = "disabled"
          httpPutResponseHopLimit = 1
          httpTokens              = "required"
        }
        blockDeviceMappings = local.gpu_block_device_mappings
        detailedMonitoring  = true
        tags                = merge(var.tags, { "fudo.io/cluster" = var.name })
      }
    }
  }

  node_pools = {
    gpu-baseline = {
      apiVersion = "karpenter.sh/v1"
      kind       = "NodePool"
      metadata = {
        name = "gpu-baseline"
      }
      spec = {
        weight = 100
        template = {
          metadata = {
            labels = {
              "fudo.io/pool" = "baseline"
            }
          }
          spec = {
            nodeClassRef = {
              group = "karpenter.k8s.aws"
              kind  = "EC2NodeClass"
              name  = "gpu"
            }
            requirements = [
              { key = "karpenter.sh/capacity-type", operator = "In", values = ["on-demand"] },
              { key = "karpenter.k8s.aws/instance-family", operator = "In", values = var.gpu_instance_families },
              { key = "karpenter.k8s.aws/instance-size", operator = "In", values = var.gpu_instance_sizes },
              { key = "karpenter.k8s.aws/instance-gpu-manufacturer", operator = "In", values = ["nvidia"] },
              { key = "karpenter.k8s.aws/instance-gpu-count", operator = "In", values = ["1"] },
              { key = "kubernetes.io/arch", operator = "In", values = ["amd64"] },
              { key = "kubernetes.io/os", operator = "In", values = ["linux"] },
              { key = "topology.kubernetes.io/zone", operator = "In", values = var.azs },
            ]
            taints = [
              { key = "nvidia.com/gpu", value = "true", effect = "NoSchedule" },
            ]
            # Expiry is forceful in v1 (it ignores budgets): the baseline never expires; it is
            # rotated by drift (AMI or spec change), which honours the market-hours budget.
            expireAfter = "Never"
          }
        }
        limits = {
          "nvidia.com/gpu" = var.baseline_gpu_nodes_per_zone * length(var.azs) + var.baseline_gpu_surge
        }
        disruption = {
          consolidationPolicy = "WhenEmpty"
          consolidateAfter    = "10m"
          budgets = [
            { nodes = "0", schedule = var.market_hours_utc.schedule, duration = var.market_hours_utc.duration },
            { nodes = "1" },
          ]
        }
      }
    }

    gpu-burst = {
      apiVersion = "karpenter.sh/v1"
      kind       = "NodePool"
      metadata = {
        name = "gpu-burst"
      }
      spec = {
        weight = 10
        template = {
          metadata = {
            labels = {
              "fudo.io/pool" = "burst"
            }
          }
          spec = {
            nodeClassRef = {
              group = "karpenter.k8s.aws"
              kind  = "EC2NodeClass"
              name  = "gpu"
            }
            requirements = [
              # Both allowed: Karpenter launches spot whenever a spot offering exists and falls
              # back to on-demand only when none does (ICE), so a GPU spot shortage in the
              # region cannot leave a market-hours surge without capacity.
              { key = "karpenter.sh/capacity-type", operator = "In", values = ["spot", "on-demand"] },
              { key = "karpenter.k8s.aws/instance-family", operator = "In", values = var.gpu_instance_families },
              { key = "karpenter.k8s.aws/instance-size", operator = "In", values = var.gpu_instance_sizes },
              { key = "karpenter.k8s.aws/instance-gpu-manufacturer", operator = "In", values = ["nvidia"] },
              { key = "karpenter.k8s.aws/instance-gpu-count", operator = "In", values = ["1"] },
              { key = "kubernetes.io/arch", operator = "In", values = ["amd64"] },
              { key = "kubernetes.io/os", operator = "In", values = ["linux"] },
              { key = "topology.kubernetes.io/zone", operator = "In", values = var.azs },
            ]
            taints = [
              { key = "nvidia.com/gpu", value = "true", effect = "NoSchedule" },
              { key = "fudo.io/capacity", value = "spot", effect = "NoSchedule" },
            ]
            expireAfter            = var.burst_expire_after
            terminationGracePeriod = "1h"
          }
        }
        limits = {
          "nvidia.com/gpu" = var.burst_gpu_limit
        }
        disruption = {
          consolidationPolicy = "WhenEmptyOrUnderutilized"
          consolidateAfter    = "5m"
          budgets = [
            { nodes = "0", schedule = var.market_hours_utc.schedule, duration = var.market_hours_utc.duration },
            { nodes = "1" },
          ]
        }
      }
    }
  }
}

resource "kubectl_manifest" "node_class" {
  for_each = local.node_classes

  yaml_body = yamlencode(each.value)

  depends_on = [helm_release.karpenter]
}

resource "kubectl_manifest" "node_pool" {
  for_each = local.node_pools

  yaml_body = yamlencode(each.value)

  depends_on = [kubectl_manifest.node_class]
}
