provider "aws" {
  region = "ap-northeast-1"
}

# The Kubernetes-side providers talk to the cluster the module creates. The API endpoint is
# private: run Terraform from inside the VPC (or a peered network listed in
# cluster_api_ingress_cidrs) as a principal listed in access_entries with cluster admin.
provider "helm" {
  kubernetes = {
    host                   = module.cluster.cluster_endpoint
    cluster_ca_certificate = base64decode(module.cluster.cluster_certificate_authority_data)
    exec = {
      api_version = "client.authentication.k8s.io/v1beta1"
      command     = "aws"
      args        = ["eks", "get-token", "--cluster-name", module.cluster.cluster_name, "--region", "ap-northeast-1"]
    }
  }
}

provider "kubectl" {
  host                   = module.cluster.cluster_endpoint
  cluster_ca_certificate = base64decode(module.cluster.cluster_certificate_authority_data)
  load_config_file       = false

  exec {
    api_version = "client.authentication.k8s.io/v1beta1"
    command     = "aws"
    args        = ["eks", "get-token", "--cluster-name", module.cluster.cluster_name, "--region", "ap-northeast-1"]
  }
}

variable "kms_key_arn" {
  description = "KMS key for secrets, EBS and logs (in fudo: module.security.kms_key_arns[\"eks\"])."
  type        = string
}

variable "workload_role_arn" {
  description = "fudo's Pod Identity role (in fudo: module.security.workload_role_arn)."
  type        = string
}

variable "terraform_role_arn" {
  description = "IAM role that runs Terraform; it gets AmazonEKSClusterAdminPolicy so it can install Karpenter."
  type        = string
}

variable "operator_role_arn" {
  description = "IAM role of the operators (in fudo: module.security.group_role_arns[\"operator\"])."
  type        = string
}

variable "ml_engineer_role_arn" {
  description = "IAM role of the ML engineers (in fudo: module.security.group_role_arns[\"ml_engineer\"])."
  type        = string
}

data "aws_partition" "current" {}

locals {
  name = "fudo-example"
  azs  = ["ap-northeast-1a", "ap-northeast-1c", "ap-northeast-1d"]
  tags = {
    Project     = "fudo"
    Environment = "example"
  }
  access_policy = "arn:${data.aws_partition.current.partition}:eks::aws:cluster-access-policy"
}

module "network" {
  source = "../../../network"

  name                 = local.name
  tags                 = local.tags
  cidr                 = "10.10.0.0/16"
  azs                  = local.azs
  cluster_name         = local.name
  flow_log_kms_key_arn = var.kms_key_arn
}

module "cluster" {
  source = "../../"

  name               = local.name
  tags               = local.tags
  kubernetes_version = "1.35"

  vpc_id                   = module.network.vpc_id
  azs                      = module.network.azs
  private_subnet_ids       = module.network.private_subnet_ids
  control_plane_subnet_ids = module.network.intra_subnet_ids

  kms_key_arn       = var.kms_key_arn
  workload_role_arn = var.workload_role_arn

  access_entries = {
    terraform = {
      principal_arn = var.terraform_role_arn
      policy_arn    = "${local.access_policy}/AmazonEKSClusterAdminPolicy"
    }
    operator = {
      principal_arn = var.operator_role_arn
      policy_arn    = "${local.access_policy}/AmazonEKSViewPolicy"
    }
    ml_engineer = {
      principal_arn = var.ml_engineer_role_arn
      policy_arn    = "${local.access_policy}/AmazonEKSEditPolicy"
      namespaces    = ["fudo"]
    }
  }

  baseline_gpu_nodes_per_zone = 1
  burst_gpu_limit             = 12
  market_hours_utc = {
    schedule = "30 22 * * sun-thu"
    duration = "8h30m"
  }
}

output "cluster_name" {
  description = "Name of the example cluster."
  value       = module.cluster.cluster_name
}

output "karpenter_queue_name" {
  description = "Karpenter interruption queue of the example cluster."
  value       = module.cluster.karpenter_queue_name
}
