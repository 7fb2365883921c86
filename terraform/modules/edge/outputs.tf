output "accelerator_dns_name" {
  description = "DNS name of the Global Accelerator (resolves to its two anycast addresses)."
  value       = aws_globalaccelerator_accelerator.this.dns_name
}

output "accelerator_ips" {
  description = "The accelerator's two static anycast IPv4 addresses."
  value       = flatten([for s in aws_globalaccelerator_accelerator.this.ip_sets : s.ip_addresses])
}

output "accelerator_arn" {
  description = "ARN of the Global Accelerator."
  value       = aws_globalaccelerator_accelerator.this.arn
}

output "nlb_arns" {
  description = "NLB ARNs, keyed primary and secondary."
  value = {
    primary   = module.primary.nlb_arn
    secondary = module.secondary.nlb_arn
  }
}

output "nlb_dns_names" {
  description = "NLB DNS names, keyed primary and secondary: the regional endpoints fudo's client library can hold next to (or instead of) the accelerator."
  value = {
    primary   = module.primary.nlb_dns_name
    secondary = module.secondary.nlb_dns_name
  }
}

output "nlb_public_ips" {
  description = "NLB Elastic IPs (one per zone), keyed primary and secondary."
  value = {
    primary   = module.primary.nlb_public_ips
    secondary = module.secondary.nlb_public_ips
  }
}

output "nlb_security_group_ids" {
  description = "NLB security groups, keyed primary and secondary: each region's pod/node security group must admit its NLB's group on grpc_port."
  value = {
    primary   = module.primary.security_group_id
    secondary = module.secondary.security_group_id
  }
}

output "target_group_arns" {
  description = "ip target groups the fudo pods are registered in (e.g. by an AWS Load Balancer Controller TargetGroupBinding), keyed primary and secondary."
  value = {
    primary   = module.primary.target_group_arn
    secondary = module.secondary.target_group_arn
  }
}

output "listener_arns" {
  description = "TLS listener ARNs, keyed primary and secondary."
  value = {
    primary   = module.primary.listener_arn
    secondary = module.secondary.listener_arn
  }
}
