variable "name" {
  description = "Name prefix of every resource (e.g. fudo-prod)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}$", var.name))
    error_message = "name must match ^[a-z][a-z0-9-]{1,30}$."
  }
}

variable "tags" {
  description = "Tags applied to every resource."
  type        = map(string)
  default     = {}
}

variable "primary_region" {
  description = <<-EOT
    The primary region's side (provider aws.primary): vpc_id and public_subnet_ids (network
    module outputs), certificate_arn (ACM, same region), access_logs_bucket (S3 bucket in the
    same region that lets the ELB log delivery write; SSE-S3 or SSE-KMS with a key that allows
    it), accelerator_source_prefix_list_id (a prefix list in the same region holding Global
    Accelerator's edge ranges, "service": "GLOBALACCELERATOR" in ip-ranges.json).
  EOT
  type = object({
    vpc_id                            = string
    public_subnet_ids                 = list(string)
    certificate_arn                   = string
    access_logs_bucket                = string
    accelerator_source_prefix_list_id = string
  })

  validation {
    condition = (
      can(regex("^vpc-[0-9a-f]+$", var.primary_region.vpc_id)) &&
      length(var.primary_region.public_subnet_ids) >= 3 &&
      alltrue([for s in var.primary_region.public_subnet_ids : can(regex("^subnet-[0-9a-f]+$", s))]) &&
      can(regex("^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]+:certificate/.+$", var.primary_region.certificate_arn)) &&
      can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.primary_region.access_logs_bucket)) &&
      can(regex("^pl-[0-9a-f]+$", var.primary_region.accelerator_source_prefix_list_id))
    )
    error_message = "primary_region needs vpc-..., at least 3 subnet-... (one per zone), an ACM certificate ARN, an S3 bucket name and a prefix list id (pl-...)."
  }
}

variable "secondary_region" {
  description = "The secondary region's side (provider aws.secondary), as primary_region."
  type = object({
    vpc_id                            = string
    public_subnet_ids                 = list(string)
    certificate_arn                   = string
    access_logs_bucket                = string
    accelerator_source_prefix_list_id = string
  })

  validation {
    condition = (
      can(regex("^vpc-[0-9a-f]+$", var.secondary_region.vpc_id)) &&
      length(var.secondary_region.public_subnet_ids) >= 3 &&
      alltrue([for s in var.secondary_region.public_subnet_ids : can(regex("^subnet-[0-9a-f]+$", s))]) &&
      can(regex("^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]+:certificate/.+$", var.secondary_region.certificate_arn)) &&
      can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.secondary_region.access_logs_bucket)) &&
      can(regex("^pl-[0-9a-f]+$", var.secondary_region.accelerator_source_prefix_list_id))
    )
    error_message = "secondary_region needs vpc-..., at least 3 subnet-... (one per zone), an ACM certificate ARN, an S3 bucket name and a prefix list id (pl-...)."
  }
}

variable "allowed_client_cidrs" {
  description = "IPv4 networks of the trading gateways, admitted on 443 by the load balancers' security groups. 0.0.0.0/0, ::/0 and other /0 networks are rejected."
  type        = list(string)

  validation {
    condition     = length(var.allowed_client_cidrs) >= 1
    error_message = "allowed_client_cidrs must list at least one network."
  }

  validation {
    condition     = alltrue([for c in var.allowed_client_cidrs : c != "0.0.0.0/0" && c != "::/0" && can(cidrnetmask(c)) && tonumber(split("/", c)[1]) > 0])
    error_message = "allowed_client_cidrs must be IPv4 CIDRs (a.b.c.d/n, n > 0); 0.0.0.0/0 and ::/0 are not allowed."
  }
}

variable "grpc_port" {
  description = "Port fudo serves gRPC on in the pods (fudo serve's gRPC port)."
  type        = number
  default     = 8001

  validation {
    condition     = var.grpc_port >= 1 && var.grpc_port <= 65535 && floor(var.grpc_port) == var.grpc_port
    error_message = "grpc_port must be a port number (1-65535)."
  }
}

variable "health_check_interval_seconds" {
  description = "Seconds between the NLB's TCP health checks of a pod (5 is the NLB minimum)."
  type        = number
  default     = 5

  validation {
    condition     = var.health_check_interval_seconds >= 5 && var.health_check_interval_seconds <= 300
    error_message = "health_check_interval_seconds must be between 5 and 300."
  }
}

variable "health_check_timeout_seconds" {
  description = "Seconds without a TCP handshake that fail a health check; must be shorter than the interval."
  type        = number
  default     = 4

  validation {
    condition     = var.health_check_timeout_seconds >= 2 && var.health_check_timeout_seconds <= 120
    error_message = "health_check_timeout_seconds must be between 2 and 120."
  }
}

variable "health_check_healthy_threshold" {
  description = "Consecutive successful health checks that make a pod healthy."
  type        = number
  default     = 2

  validation {
    condition     = var.health_check_healthy_threshold >= 2 && var.health_check_healthy_threshold <= 10
    error_message = "health_check_healthy_threshold must be between 2 and 10."
  }
}

variable "health_check_unhealthy_threshold" {
  description = "Consecutive failed health checks that make a pod unhealthy (interval x threshold = worst-case detection)."
  type        = number
  default     = 2

  validation {
    condition     = var.health_check_unhealthy_threshold >= 2 && var.health_check_unhealthy_threshold <= 10
    error_message = "health_check_unhealthy_threshold must be between 2 and 10."
  }
}

variable "deregistration_delay_seconds" {
  description = "Seconds a deregistering pod keeps its connections before the NLB closes them; match the pods' preStop drain."
  type        = number
  default     = 15

  validation {
    condition     = var.deregistration_delay_seconds >= 0 && var.deregistration_delay_seconds <= 3600
    error_message = "deregistration_delay_seconds must be between 0 and 3600."
  }
}

variable "access_logs_prefix" {
  description = "Key prefix of the NLB access logs in each region's access_logs_bucket."
  type        = string
  default     = "nlb"

  validation {
    condition     = can(regex("^[A-Za-z0-9!_.*'()-]+(/[A-Za-z0-9!_.*'()-]+)*$", var.access_logs_prefix)) && !strcontains(lower(var.access_logs_prefix), "awslogs")
    error_message = "access_logs_prefix must be a plain S3 key prefix without leading or trailing slash and must not contain AWSLogs."
  }
}

variable "accelerator_secondary_traffic_dial" {
  description = "Traffic dial of the secondary region's endpoint group: 100 = active/active (each client goes to its nearest healthy region), 0 = standby (traffic only when the primary region is unhealthy)."
  type        = number
  default     = 100

  validation {
    condition     = var.accelerator_secondary_traffic_dial >= 0 && var.accelerator_secondary_traffic_dial <= 100
    error_message = "accelerator_secondary_traffic_dial must be between 0 and 100."
  }
}

variable "accelerator_health_check_interval_seconds" {
  description = "Global Accelerator health check interval (10 or 30). Applies to EC2 and Elastic IP endpoints only: for NLB endpoints, as here, Global Accelerator follows the NLB's own target health."
  type        = number
  default     = 10

  validation {
    condition     = contains([10, 30], var.accelerator_health_check_interval_seconds)
    error_message = "accelerator_health_check_interval_seconds must be 10 or 30."
  }
}

variable "accelerator_threshold_count" {
  description = "Global Accelerator health check threshold count (1-10). Same scope as accelerator_health_check_interval_seconds."
  type        = number
  default     = 3

  validation {
    condition     = var.accelerator_threshold_count >= 1 && var.accelerator_threshold_count <= 10
    error_message = "accelerator_threshold_count must be between 1 and 10."
  }
}

variable "accelerator_flow_logs_bucket" {
  description = "S3 bucket receiving Global Accelerator flow logs (its policy must let the log delivery service write). The only record of the gateways' real addresses on the accelerator path, since the NLBs see Global Accelerator's."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.accelerator_flow_logs_bucket))
    error_message = "accelerator_flow_logs_bucket must be an S3 bucket name."
  }
}

variable "accelerator_flow_logs_prefix" {
  description = "Key prefix of the Global Accelerator flow logs."
  type        = string
  default     = "global-accelerator"
}

variable "shield_advanced_enabled" {
  description = "Protect the accelerator and the NLBs' Elastic IPs with Shield Advanced. The account must already have a Shield Advanced subscription."
  type        = bool
  default     = false
}
