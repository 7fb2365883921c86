output "accelerator_dns_name" {
  description = "The single Global Accelerator address; gateways should also hold both regional NLB names (nlb_dns_names) in the client library's endpoint list."
  value       = module.edge.accelerator_dns_name
}

output "nlb_dns_names" {
  description = "Each region's NLB DNS name, keyed primary (Tokyo) and secondary (Osaka)."
  value       = module.edge.nlb_dns_names
}

output "target_group_arns" {
  description = "The ip target groups deploy/k8s/targetgroupbinding.yaml binds fudo's pods to, per region."
  value       = module.edge.target_group_arns
}

output "cluster_names" {
  description = "EKS cluster names, per region."
  value = {
    tokyo = module.cluster_tokyo.cluster_name
    osaka = module.cluster_osaka.cluster_name
  }
}

output "redis_auth_secret_arns" {
  description = "Secrets Manager secrets holding each region's Redis AUTH token and rediss:// URL (fudo's sessions.redis_url)."
  value = {
    tokyo = module.redis_tokyo.auth_secret_arn
    osaka = module.redis_osaka.auth_secret_arn
  }
}

output "audit_bucket_arn" {
  description = "The audit journal bucket (Object Lock COMPLIANCE), replicated to Osaka."
  value       = module.audit.bucket_arn
}

output "model_bucket_arn" {
  description = "The model registry bucket ML engineers publish versions to."
  value       = module.audit.model_bucket_arn
}

output "group_role_arns" {
  description = "IAM roles per user group (ml_engineer, trading_system, operator, risk)."
  value       = module.security_tokyo.group_role_arns
}

output "critical_topic_arns" {
  description = "SNS topics of the critical alarms, per region (subscribe the paging integration here)."
  value = {
    tokyo = module.monitoring_tokyo.critical_topic_arn
    osaka = module.monitoring_osaka.critical_topic_arn
  }
}
