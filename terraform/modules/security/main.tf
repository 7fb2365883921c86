data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  dns_suffix = data.aws_partition.current.dns_suffix
  region     = data.aws_region.current.region
  root_arn   = "arn:${local.partition}:iam::${local.account_id}:root"

  # Buckets and keys the policies refer to; nulls dropped so that a region instance
  # without IAM (create_iam_roles = false) needs none of them.
  model_bucket_arns = compact(concat([var.model_bucket_arn], var.additional_model_bucket_arns))
  audit_bucket_arns = compact(concat([var.audit_bucket_arn], var.additional_audit_bucket_arns))
  s3_kms_key_arns   = concat([aws_kms_key.this["s3"].arn], var.additional_s3_kms_key_arns)
  eks_cluster_arns  = compact(concat([var.eks_cluster_arn], var.additional_eks_cluster_arns))
}
