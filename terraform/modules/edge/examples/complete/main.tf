# fudo's edge over Tokyo (primary) and Osaka (secondary). VPCs and public subnets come from the
# network module, certificates from ACM, the log buckets from the audit side of the estate;
# here they are variables.

provider "aws" {
  alias  = "tokyo"
  region = "ap-northeast-1"
}

provider "aws" {
  alias  = "osaka"
  region = "ap-northeast-3"
}

# Global Accelerator's API is served from us-west-2 only.
provider "aws" {
  alias  = "accelerator"
  region = "us-west-2"
}

variable "tokyo" {
  description = "Tokyo side: VPC, public subnets (3 zones), ACM certificate, access-log bucket, prefix list of Global Accelerator edge ranges."
  type = object({
    vpc_id                            = string
    public_subnet_ids                 = list(string)
    certificate_arn                   = string
    access_logs_bucket                = string
    accelerator_source_prefix_list_id = string
  })
}

variable "osaka" {
  description = "Osaka side, as tokyo."
  type = object({
    vpc_id                            = string
    public_subnet_ids                 = list(string)
    certificate_arn                   = string
    access_logs_bucket                = string
    accelerator_source_prefix_list_id = string
  })
}

variable "trading_gateway_cidrs" {
  description = "Networks of the trading gateways."
  type        = list(string)
}

variable "flow_logs_bucket" {
  description = "S3 bucket for Global Accelerator flow logs."
  type        = string
}

module "edge" {
  source = "../../"
  providers = {
    aws.primary     = aws.tokyo
    aws.secondary   = aws.osaka
    aws.accelerator = aws.accelerator
  }

  name = "fudo-example"
  tags = {
    Project     = "fudo"
    Environment = "example"
  }

  primary_region       = var.tokyo
  secondary_region     = var.osaka
  allowed_client_cidrs = var.trading_gateway_cidrs
  grpc_port            = 8001

  health_check_interval_seconds    = 5
  health_check_unhealthy_threshold = 2
  deregistration_delay_seconds     = 15

  accelerator_secondary_traffic_dial = 100
  accelerator_flow_logs_bucket       = var.flow_logs_bucket
  shield_advanced_enabled            = false
}

output "accelerator_ips" {
  description = "Static anycast addresses for the trading gateways."
  value       = module.edge.accelerator_ips
}

output "regional_endpoints" {
  description = "Regional NLB names for fudo's client library."
  value       = module.edge.nlb_dns_names
}
