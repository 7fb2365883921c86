# Internal to modules/edge: called once per region with that region's provider. The parent
# validates the inputs; the checks here repeat only what a caller of this folder could break.

variable "name" {
  description = "Name prefix (the edge module's name)."
  type        = string
}

variable "tags" {
  description = "Tags applied to every resource."
  type        = map(string)
}

variable "vpc_id" {
  description = "VPC of the load balancer and of the fudo pods it forwards to."
  type        = string
}

variable "public_subnet_ids" {
  description = "Public subnets, one per availability zone; the load balancer gets an Elastic IP in each."
  type        = list(string)
}

variable "certificate_arn" {
  description = "ACM certificate (in this region) served by the TLS listener."
  type        = string
}

variable "access_logs_bucket" {
  description = "S3 bucket (in this region) receiving the load balancer's TLS access logs."
  type        = string
}

variable "access_logs_prefix" {
  description = "Key prefix of the access logs in access_logs_bucket."
  type        = string
}

variable "accelerator_source_prefix_list_id" {
  description = "Prefix list (in this region) of the Global Accelerator edge addresses that reach the load balancer."
  type        = string
}

variable "allowed_client_cidrs" {
  description = "IPv4 networks of the trading gateways, let in on 443."
  type        = list(string)

  validation {
    condition     = alltrue([for c in var.allowed_client_cidrs : c != "0.0.0.0/0" && c != "::/0" && can(cidrnetmask(c)) && tonumber(split("/", c)[1]) > 0])
    error_message = "allowed_client_cidrs must be IPv4 CIDRs, never 0.0.0.0/0 or ::/0."
  }
}

variable "grpc_port" {
  description = "Port of fudo's gRPC server on the pods (target port)."
  type        = number
}

variable "health_check_interval_seconds" {
  description = "Seconds between TCP health checks of a target."
  type        = number
}

variable "health_check_timeout_seconds" {
  description = "Seconds without an answer that fail a health check."
  type        = number
}

variable "health_check_healthy_threshold" {
  description = "Consecutive successful checks that make a target healthy."
  type        = number
}

variable "health_check_unhealthy_threshold" {
  description = "Consecutive failed checks that make a target unhealthy."
  type        = number
}

variable "deregistration_delay_seconds" {
  description = "Seconds a deregistering target keeps its connections before they are closed."
  type        = number
}

variable "shield_advanced_enabled" {
  description = "Whether to protect the load balancer's Elastic IPs with Shield Advanced."
  type        = bool
}
