# fudo production: Tokyo (ap-northeast-1) primary, Osaka (ap-northeast-3) secondary.
#
# Per region: KMS keys (security), a VPC over 3 AZs (network), EKS with an on-demand GPU
# baseline of one node per AZ and spot burst (cluster), ElastiCache Redis Multi-AZ (redis; Osaka
# is the Global Datastore secondary) and CloudWatch alarms (monitoring). Once: the IAM roles per
# user group and fudo's workload role (security, in Tokyo), the audit and model buckets with
# replication to Osaka (audit), and the edge (an NLB per region behind one Global Accelerator).
# Why each number is what it is: docs/cost.md (sizing) and SLA.md (failover paths).

locals {
  environment = "prod"

  regions = {
    primary   = "ap-northeast-1"
    secondary = "ap-northeast-3"
  }

  # Three AZs per region, written out: tests/infra checks this list, and an AZ is a decision
  # (capacity for g6 in ap-northeast-1b is thin), not whatever a data source returns first.
  azs = {
    tokyo = ["ap-northeast-1a", "ap-northeast-1c", "ap-northeast-1d"]
    osaka = ["ap-northeast-3a", "ap-northeast-3b", "ap-northeast-3c"]
  }

  cidrs = {
    tokyo = "10.0.0.0/16"
    osaka = "10.1.0.0/16"
  }

  names = {
    tokyo = "fudo-prod-tokyo"
    osaka = "fudo-prod-osaka"
  }

  tags = {
    Project     = "fudo"
    Environment = local.environment
    ManagedBy   = "terraform"
    CostCenter  = var.cost_center
  }

  # Kubernetes RBAC per user group (EKS access entries). The trading systems reach fudo over
  # gRPC only and get no Kubernetes access.
  access_entries = {
    terraform = {
      principal_arn = var.terraform_admin_role_arn
      policy_arn    = "arn:${data.aws_partition.current.partition}:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
      namespaces    = []
    }
    operator = {
      principal_arn = module.security_tokyo.group_role_arns["operator"]
      policy_arn    = "arn:${data.aws_partition.current.partition}:eks::aws:cluster-access-policy/AmazonEKSEditPolicy"
      namespaces    = ["fudo"]
    }
    ml_engineer = {
      principal_arn = module.security_tokyo.group_role_arns["ml_engineer"]
      policy_arn    = "arn:${data.aws_partition.current.partition}:eks::aws:cluster-access-policy/AmazonEKSEditPolicy"
      namespaces    = ["fudo"]
    }
    risk = {
      principal_arn = module.security_tokyo.group_role_arns["risk"]
      policy_arn    = "arn:${data.aws_partition.current.partition}:eks::aws:cluster-access-policy/AmazonEKSViewPolicy"
      namespaces    = ["fudo"]
    }
  }
}

data "aws_partition" "current" {
  provider = aws.tokyo
}
