output "nlb_arn" {
  description = "ARN of the Network Load Balancer."
  value       = aws_lb.this.arn
}

output "nlb_dns_name" {
  description = "DNS name of the Network Load Balancer (the regional endpoint for clients that do not go through Global Accelerator)."
  value       = aws_lb.this.dns_name
}

output "nlb_zone_id" {
  description = "Route 53 hosted zone of the NLB's DNS name (for alias records)."
  value       = aws_lb.this.zone_id
}

output "nlb_public_ips" {
  description = "Elastic IPs of the NLB, one per zone."
  value       = aws_eip.nlb[*].public_ip
}

output "security_group_id" {
  description = "Security group of the NLB; the pods' security group must let it in on the gRPC port."
  value       = aws_security_group.nlb.id
}

output "target_group_arn" {
  description = "ARN of the ip target group the fudo pods are registered in."
  value       = aws_lb_target_group.grpc.arn
}

output "listener_arn" {
  description = "ARN of the TLS listener on 443."
  value       = aws_lb_listener.grpc.arn
}

output "region" {
  description = "Region of this NLB."
  value       = data.aws_region.current.region
}
