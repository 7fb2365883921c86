################################################################################
# Common
################################################################################

variable "name" {
  description = "Name of the EKS cluster; also the value of the karpenter.sh/discovery tag on its subnets and node security group."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}$", var.name))
    error_message = "name must match ^[a-z][a-z0-9-]{1,30}$."
  }
}

variable "tags" {
  description = "Tags applied to every AWS resource (and to the EC2 instances Karpenter launches)."
  type        = map(string)
  default     = {}
}

variable "kubernetes_version" {
  description = "Kubernetes minor version of the control plane, e.g. \"1.35\". Check the Karpenter chart's compatibility matrix before raising it."
  type        = string
  default     = "1.35"

  validation {
    condition     = can(regex("^1\\.3[0-9]$", var.kubernetes_version))
    error_message = "kubernetes_version must look like \"1.3x\" (e.g. \"1.35\")."
  }
}

################################################################################
# Network
################################################################################

variable "vpc_id" {
  description = "ID of the VPC (network module output vpc_id)."
  type        = string

  validation {
    condition     = can(regex("^vpc-[0-9a-f]+$", var.vpc_id))
    error_message = "vpc_id must be a VPC ID (vpc-...)."
  }
}

variable "azs" {
  description = "Availability zones of the private subnets (network module output azs). GPU NodePools are restricted to these zones."
  type        = list(string)

  validation {
    condition     = length(var.azs) >= 3
    error_message = "azs must list at least 3 availability zones."
  }

  validation {
    condition     = length(distinct(var.azs)) == length(var.azs)
    error_message = "azs must not repeat a zone."
  }
}

variable "private_subnet_ids" {
  description = "Private subnet IDs, one per zone (network module output private_subnet_ids). The system node group spans all of them; Karpenter finds them by their karpenter.sh/discovery tag."
  type        = list(string)

  validation {
    condition     = length(var.private_subnet_ids) >= 3
    error_message = "private_subnet_ids must hold at least 3 subnets (one per zone)."
  }
}

variable "control_plane_subnet_ids" {
  description = "Subnets for the EKS control-plane ENIs (network module output intra_subnet_ids). Empty means private_subnet_ids."
  type        = list(string)
  default     = []

  validation {
    condition     = length(var.control_plane_subnet_ids) == 0 || length(var.control_plane_subnet_ids) >= 3
    error_message = "control_plane_subnet_ids must be empty or hold at least 3 subnets (one per zone)."
  }
}

variable "endpoint_public_access_cidrs" {
  description = "CIDRs allowed to reach the public Kubernetes API endpoint. Empty (the default) turns the public endpoint OFF; the private endpoint is always on. 0.0.0.0/0 and ::/0 are rejected."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.endpoint_public_access_cidrs : can(cidrhost(c, 0))])
    error_message = "endpoint_public_access_cidrs must be valid CIDR blocks."
  }

  validation {
    condition     = !anytrue([for c in var.endpoint_public_access_cidrs : endswith(c, "/0")])
    error_message = "endpoint_public_access_cidrs must not contain 0.0.0.0/0 or ::/0 (or any /0)."
  }
}

variable "cluster_api_ingress_cidrs" {
  description = "CIDRs outside the node security group that may reach the private Kubernetes API on 443 (e.g. the CI runner or VPN subnet that runs Terraform). /0 is rejected."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.cluster_api_ingress_cidrs : can(cidrhost(c, 0)) && !endswith(c, "/0")])
    error_message = "cluster_api_ingress_cidrs must be valid CIDR blocks and none may be a /0."
  }
}

variable "grpc_ingress_security_group_ids" {
  description = "Security groups (e.g. the NLB's) allowed into the nodes on fudo's gRPC port 8001, traffic and health checks (targets are pod IPs)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for id in var.grpc_ingress_security_group_ids : can(regex("^sg-[0-9a-f]+$", id))])
    error_message = "grpc_ingress_security_group_ids must be security group IDs (sg-...)."
  }
}

variable "peer_cidrs" {
  description = "CIDRs of the other region's VPC(s): fudo nodes there dial these nodes' region links on gRPC port 8001, and these nodes dial theirs. /0 is rejected."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.peer_cidrs : can(cidrhost(c, 0)) && !endswith(c, "/0")])
    error_message = "peer_cidrs must be valid CIDR blocks and none may be a /0."
  }
}

################################################################################
# Encryption and logs
################################################################################

variable "kms_key_arn" {
  description = "KMS key for Kubernetes secrets envelope encryption and the Karpenter GPU nodes' EBS volumes (security module kms_key_arns[\"eks\"]). The Karpenter controller role gets IAM permission to use it for EBS (the key policy must delegate to IAM); spot launches may also need the AWSServiceRoleForEC2Spot service-linked role in the key policy."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}

variable "cloudwatch_log_kms_key_arn" {
  description = "KMS key for the control-plane log group /aws/eks/<name>/cluster (security module kms_key_arns[\"logs\"]). Null means kms_key_arn."
  type        = string
  default     = null

  validation {
    condition     = var.cloudwatch_log_kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.cloudwatch_log_kms_key_arn))
    error_message = "cloudwatch_log_kms_key_arn must be null or a KMS key ARN."
  }
}

variable "cloudwatch_log_retention_days" {
  description = "Retention of the control-plane log group in days; at least 365 and one of the values CloudWatch Logs accepts."
  type        = number
  default     = 365

  validation {
    condition     = var.cloudwatch_log_retention_days >= 365 && contains([365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.cloudwatch_log_retention_days)
    error_message = "cloudwatch_log_retention_days must be one of 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653."
  }
}

################################################################################
# Access
################################################################################

variable "access_entries" {
  description = <<-EOT
    EKS access entries (authentication_mode = API): key => {principal_arn, policy_arn, namespaces}.
    policy_arn is an EKS access policy (arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy,
    AmazonEKSEditPolicy, AmazonEKSAdminPolicy, AmazonEKSClusterAdminPolicy, ...). namespaces empty
    means cluster-wide scope. One entry per principal (EKS allows one access entry per
    principal). The principal that runs Terraform must be here with AmazonEKSClusterAdminPolicy:
    the cluster creator gets no implicit admin.
  EOT
  type = map(object({
    principal_arn = string
    policy_arn    = string
    namespaces    = optional(list(string), [])
  }))
  default = {}

  validation {
    condition     = alltrue([for k, v in var.access_entries : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:(role|user)/.+$", v.principal_arn))])
    error_message = "Every access_entries principal_arn must be an IAM role or user ARN."
  }

  validation {
    condition     = length(distinct([for k, v in var.access_entries : v.principal_arn])) == length(var.access_entries)
    error_message = "Each principal_arn may appear in only one access_entries entry (EKS allows one access entry per principal)."
  }

  validation {
    condition     = alltrue([for k, v in var.access_entries : can(regex("^arn:aws[a-z-]*:eks::aws:cluster-access-policy/[A-Za-z0-9]+$", v.policy_arn))])
    error_message = "Every access_entries policy_arn must be an EKS access policy (arn:aws:eks::aws:cluster-access-policy/...)."
  }

  validation {
    condition     = alltrue(flatten([for k, v in var.access_entries : [for ns in v.namespaces : can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", ns))]]))
    error_message = "access_entries namespaces must be valid Kubernetes namespace names."
  }
}

variable "workload_role_arn" {
  description = "IAM role fudo's pods assume through EKS Pod Identity (namespace fudo, service account fudo); security module output workload_role_arn. Its trust policy must allow pods.eks.amazonaws.com (sts:AssumeRole, sts:TagSession)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$", var.workload_role_arn))
    error_message = "workload_role_arn must be an IAM role ARN."
  }
}

################################################################################
# System node group
################################################################################

variable "system_node_instance_types" {
  description = "Instance types of the on-demand system node group (CoreDNS, Karpenter, KEDA); small general-purpose types, several for capacity fallback."
  type        = list(string)
  default     = ["m7i.large", "m6i.large", "m5.large"]

  validation {
    condition     = length(var.system_node_instance_types) >= 1 && alltrue([for t in var.system_node_instance_types : can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", t))])
    error_message = "system_node_instance_types must list at least one EC2 instance type."
  }
}

variable "system_node_max_size" {
  description = "Maximum size of the system node group (minimum and desired are fixed at 3: one per zone)."
  type        = number
  default     = 6

  validation {
    condition     = var.system_node_max_size >= 3 && floor(var.system_node_max_size) == var.system_node_max_size
    error_message = "system_node_max_size must be an integer >= 3."
  }
}

variable "system_node_volume_kms_key_arn" {
  description = "Customer managed KMS key for the system nodes' root volumes. Its key policy (or a grant) must let the AWSServiceRoleForAutoScaling service-linked role use it. Null: the volumes are still encrypted, with the AWS managed aws/ebs key."
  type        = string
  default     = null

  validation {
    condition     = var.system_node_volume_kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.system_node_volume_kms_key_arn))
    error_message = "system_node_volume_kms_key_arn must be null or a KMS key ARN."
  }
}

variable "addon_versions" {
  description = "Pinned EKS add-on versions by add-on name (vpc-cni, coredns, kube-proxy, eks-pod-identity-agent); an add-on not listed gets the most recent version for kubernetes_version."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k, v in var.addon_versions : contains(["vpc-cni", "coredns", "kube-proxy", "eks-pod-identity-agent"], k)])
    error_message = "addon_versions keys must be among vpc-cni, coredns, kube-proxy, eks-pod-identity-agent."
  }
}

################################################################################
# Karpenter
################################################################################

variable "karpenter_queue_kms_key_arn" {
  description = "KMS key for the Karpenter interruption queue (security module kms_key_arns[\"sqs\"]; its key policy must let events.amazonaws.com use it). Null: SQS-managed server-side encryption."
  type        = string
  default     = null

  validation {
    condition     = var.karpenter_queue_kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.karpenter_queue_kms_key_arn))
    error_message = "karpenter_queue_kms_key_arn must be null or a KMS key ARN."
  }
}

variable "karpenter_chart_version" {
  description = "Pinned version of the Karpenter Helm charts (karpenter-crd and karpenter, oci://public.ecr.aws/karpenter). Must support kubernetes_version."
  type        = string
  default     = "1.11.1"

  validation {
    condition     = can(regex("^1\\.[0-9]+\\.[0-9]+$", var.karpenter_chart_version))
    error_message = "karpenter_chart_version must be a pinned 1.x.y version (Karpenter v1 APIs)."
  }
}

variable "node_ami_alias" {
  description = "EC2NodeClass AMI alias for the GPU nodes, pinned: bottlerocket@vX.Y.Z (the NVIDIA variant, with the device plugin built in, is picked per instance type) or al2023@vYYYYMMDD (then deploy the NVIDIA device plugin yourself)."
  type        = string
  default     = "bottlerocket@v1.64.0"

  validation {
    condition     = can(regex("^(bottlerocket@v[0-9]+\\.[0-9]+\\.[0-9]+|al2023@v[0-9]{8})$", var.node_ami_alias))
    error_message = "node_ami_alias must be a pinned alias: bottlerocket@vX.Y.Z or al2023@vYYYYMMDD (not @latest)."
  }
}

variable "gpu_node_volume_size_gib" {
  description = "Size in GiB of the GPU nodes' data volume (container images, models); encrypted gp3 with kms_key_arn."
  type        = number
  default     = 200

  validation {
    condition     = var.gpu_node_volume_size_gib >= 50 && var.gpu_node_volume_size_gib <= 4096
    error_message = "gpu_node_volume_size_gib must be between 50 and 4096."
  }
}

variable "gpu_instance_families" {
  description = "EC2 instance families of single-GPU NVIDIA nodes for both GPU NodePools (with gpu_instance_sizes and instance-gpu-count = 1). Check availability in the region: Osaka offers fewer GPU families than Tokyo."
  type        = list(string)
  default     = ["g6", "g5"]

  validation {
    condition     = length(var.gpu_instance_families) >= 1 && alltrue([for f in var.gpu_instance_families : can(regex("^(g[0-9]+[a-z]*|p[0-9]+[a-z]*)$", f))])
    error_message = "gpu_instance_families must list NVIDIA GPU families such as g6, g5, g6e or g4dn."
  }
}

variable "gpu_instance_sizes" {
  description = "Instance sizes allowed in the GPU NodePools (xlarge and 2xlarge are single-GPU in g5/g6)."
  type        = list(string)
  default     = ["xlarge", "2xlarge"]

  validation {
    condition     = length(var.gpu_instance_sizes) >= 1 && alltrue([for s in var.gpu_instance_sizes : can(regex("^[0-9]*xlarge$", s))])
    error_message = "gpu_instance_sizes must list sizes such as xlarge or 2xlarge."
  }
}

variable "baseline_gpu_nodes_per_zone" {
  description = "On-demand GPU nodes per zone that hold fudo's HA baseline. The HA minimum is 1 per zone, so that losing a zone still leaves 2 of 3 zones serving; the gpu-baseline NodePool's nvidia.com/gpu limit is this x number of zones (+ baseline_gpu_surge)."
  type        = number
  default     = 1

  validation {
    condition     = var.baseline_gpu_nodes_per_zone >= 1 && floor(var.baseline_gpu_nodes_per_zone) == var.baseline_gpu_nodes_per_zone
    error_message = "baseline_gpu_nodes_per_zone must be an integer >= 1 (at least one on-demand GPU node per zone)."
  }
}

variable "baseline_gpu_surge" {
  description = "Extra GPUs above baseline_gpu_nodes_per_zone x zones that the gpu-baseline NodePool may hold, so that Karpenter can launch a replacement before removing a drifted node."
  type        = number
  default     = 1

  validation {
    condition     = var.baseline_gpu_surge >= 0 && var.baseline_gpu_surge <= 8 && floor(var.baseline_gpu_surge) == var.baseline_gpu_surge
    error_message = "baseline_gpu_surge must be an integer between 0 and 8."
  }
}

variable "burst_gpu_limit" {
  description = "Total nvidia.com/gpu the gpu-burst NodePool (spot first, on-demand fallback) may hold; at least the KEDA ScaledObject's maxReplicaCount (deploy/k8s: 12)."
  type        = number
  default     = 12

  validation {
    condition     = var.burst_gpu_limit >= 0 && var.burst_gpu_limit <= 1000 && floor(var.burst_gpu_limit) == var.burst_gpu_limit
    error_message = "burst_gpu_limit must be an integer between 0 and 1000."
  }
}

variable "burst_expire_after" {
  description = "expireAfter of gpu-burst nodes (Go duration). Expiry is forceful in Karpenter v1 and ignores disruption budgets, so keep it long."
  type        = string
  default     = "168h"

  validation {
    condition     = can(regex("^[0-9]+h$", var.burst_expire_after)) && try(tonumber(trimsuffix(var.burst_expire_after, "h")) >= 24, false)
    error_message = "burst_expire_after must be a whole number of hours, at least 24h (e.g. \"168h\")."
  }
}

variable "market_hours_utc" {
  description = <<-EOT
    Window in which Karpenter may not voluntarily disrupt any GPU node (disruption budget nodes = "0"),
    as a UTC cron schedule and a duration. Tokyo Stock Exchange trades 09:00-15:30 JST with pre-open
    from 08:00 JST; JST = UTC+9, so the default "30 22 * * sun-thu" for "8h30m" covers 07:30-16:00
    JST, Monday to Friday JST: from the start of KEDA's burst pre-warm (07:30, deploy/k8s) to
    after the close. The duration must cover at least 7h30m (08:00-15:30).
  EOT
  type = object({
    schedule = string
    duration = string
  })
  default = {
    schedule = "30 22 * * sun-thu"
    duration = "8h30m"
  }

  validation {
    condition     = can(regex("^\\S+ \\S+ \\S+ \\S+ \\S+$", var.market_hours_utc.schedule))
    error_message = "market_hours_utc.schedule must be a 5-field cron expression (UTC)."
  }

  validation {
    condition     = can(regex("^([0-9]+h)?([0-9]+m)?$", var.market_hours_utc.duration)) && var.market_hours_utc.duration != ""
    error_message = "market_hours_utc.duration must be a duration in hours and/or minutes, e.g. \"8h\" or \"7h30m\"."
  }

  validation {
    condition = (
      try(tonumber(regex("^([0-9]+)h", var.market_hours_utc.duration)[0]), 0) * 60 +
      try(tonumber(regex("([0-9]+)m$", var.market_hours_utc.duration)[0]), 0)
    ) >= 450
    error_message = "market_hours_utc.duration must be at least 7h30m (pre-open 08:00 to close 15:30 JST)."
  }
}
