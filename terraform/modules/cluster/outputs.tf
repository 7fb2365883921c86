output "cluster_name" {
  description = "Name of the EKS cluster."
  value       = aws_eks_cluster.this.name
}

output "cluster_arn" {
  description = "ARN of the EKS cluster."
  value       = aws_eks_cluster.this.arn
}

output "cluster_endpoint" {
  description = "Kubernetes API endpoint (private unless endpoint_public_access_cidrs is set)."
  value       = aws_eks_cluster.this.endpoint
}

output "cluster_certificate_authority_data" {
  description = "Base64 CA certificate of the Kubernetes API (for the helm and kubectl providers)."
  value       = aws_eks_cluster.this.certificate_authority[0].data
}

output "cluster_version" {
  description = "Kubernetes version of the control plane."
  value       = aws_eks_cluster.this.version
}

output "cluster_security_group_id" {
  description = "Additional security group on the control-plane ENIs (Kubernetes API on 443 from the nodes and cluster_api_ingress_cidrs)."
  value       = aws_security_group.cluster.id
}

output "cluster_primary_security_group_id" {
  description = "Security group EKS created for the cluster (control plane and managed add-ons)."
  value       = aws_eks_cluster.this.vpc_config[0].cluster_security_group_id
}

output "node_security_group_id" {
  description = "Security group of every node (system and Karpenter GPU nodes; pods share it). Allow it into Redis; allow the NLB into it on 8001."
  value       = aws_security_group.node.id
}

output "karpenter_queue_name" {
  description = "Name of the SQS queue Karpenter reads interruption events from."
  value       = aws_sqs_queue.karpenter.name
}

output "karpenter_queue_arn" {
  description = "ARN of the Karpenter interruption queue."
  value       = aws_sqs_queue.karpenter.arn
}

output "karpenter_controller_role_arn" {
  description = "IAM role of the Karpenter controller (EKS Pod Identity, kube-system/karpenter)."
  value       = aws_iam_role.karpenter_controller.arn
}

output "karpenter_node_role_arn" {
  description = "IAM role of the GPU nodes Karpenter launches; grant it KMS use for EBS if the key policy does not delegate to IAM."
  value       = aws_iam_role.karpenter_node.arn
}

output "system_node_role_arn" {
  description = "IAM role of the system managed node group."
  value       = aws_iam_role.system_node.arn
}

output "node_pool_names" {
  description = "Names of the Karpenter NodePools (gpu-baseline: on-demand HA baseline; gpu-burst: spot first)."
  value       = keys(local.node_pools)
}
