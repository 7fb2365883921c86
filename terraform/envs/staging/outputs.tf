output "nlb_dns_name" {
  description = "The staging NLB's DNS name (TLS on 443 to fudo's gRPC port)."
  value       = module.nlb.nlb_dns_name
}

output "target_group_arn" {
  description = "The ip target group deploy/k8s/targetgroupbinding.yaml binds fudo's pods to."
  value       = module.nlb.target_group_arn
}

output "cluster_name" {
  description = "The EKS cluster's name."
  value       = module.cluster.cluster_name
}

output "redis_auth_secret_arn" {
  description = "Secrets Manager secret holding the Redis AUTH token and rediss:// URL."
  value       = module.redis.auth_secret_arn
}

output "group_role_arns" {
  description = "IAM roles per user group (ml_engineer, trading_system, operator, risk)."
  value       = module.security.group_role_arns
}
