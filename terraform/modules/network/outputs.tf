output "vpc_id" {
  description = "ID of the VPC."
  value       = aws_vpc.this.id
}

output "vpc_cidr_block" {
  description = "IPv4 CIDR block of the VPC."
  value       = aws_vpc.this.cidr_block
}

output "azs" {
  description = "Availability zones the VPC spans, in the order of the subnet lists."
  value       = var.azs
}

output "public_subnet_ids" {
  description = "Public subnet IDs, one per zone in the order of azs (NLB and NAT gateways only)."
  value       = [for az in var.azs : aws_subnet.public[az].id]
}

output "private_subnet_ids" {
  description = "Private subnet IDs, one per zone in the order of azs (EKS nodes; tagged for Karpenter discovery)."
  value       = [for az in var.azs : aws_subnet.private[az].id]
}

output "intra_subnet_ids" {
  description = "Intra subnet IDs (no route out of the VPC), one per zone in the order of azs (ElastiCache, EKS control-plane ENIs)."
  value       = [for az in var.azs : aws_subnet.intra[az].id]
}

output "public_subnet_cidr_blocks" {
  description = "Public subnet CIDRs, in the order of azs."
  value       = [for az in var.azs : aws_subnet.public[az].cidr_block]
}

output "private_subnet_cidr_blocks" {
  description = "Private subnet CIDRs (nodes and pods), in the order of azs."
  value       = [for az in var.azs : aws_subnet.private[az].cidr_block]
}

output "intra_subnet_cidr_blocks" {
  description = "Intra subnet CIDRs (ElastiCache, EKS control-plane ENIs), in the order of azs; for NetworkPolicy egress rules."
  value       = [for az in var.azs : aws_subnet.intra[az].cidr_block]
}

output "private_route_table_ids" {
  description = "Private route table IDs, one per zone in the order of azs (each routes 0.0.0.0/0 through its own zone's NAT gateway)."
  value       = [for az in var.azs : aws_route_table.private[az].id]
}

output "intra_route_table_id" {
  description = "ID of the route table shared by the intra subnets."
  value       = aws_route_table.intra.id
}

output "public_route_table_id" {
  description = "ID of the route table shared by the public subnets."
  value       = aws_route_table.public.id
}

output "nat_gateway_ids" {
  description = "NAT gateway IDs, one per zone in the order of azs."
  value       = [for az in var.azs : aws_nat_gateway.this[az].id]
}

output "nat_public_ips" {
  description = "Elastic IPs of the NAT gateways (the VPC's egress addresses), in the order of azs."
  value       = [for az in var.azs : aws_eip.nat[az].public_ip]
}

output "endpoint_security_group_id" {
  description = "Security group of the interface VPC endpoints (HTTPS from the VPC CIDR)."
  value       = aws_security_group.endpoints.id
}

output "flow_log_group_name" {
  description = "Name of the CloudWatch log group receiving the VPC flow logs."
  value       = aws_cloudwatch_log_group.flow_logs.name
}
