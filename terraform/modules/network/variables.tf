variable "name" {
  description = "Name prefix for every resource of this VPC (e.g. fudo-prod-tokyo)."
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

variable "cidr" {
  description = "IPv4 CIDR of the VPC, /16 to /18. Subnets are carved from it with cidrsubnet(): private /19 (of a /16), public /24, intra /24."
  type        = string

  validation {
    condition     = can(cidrhost(var.cidr, 0)) && can(regex("/(1[6-8])$", var.cidr))
    error_message = "cidr must be a valid IPv4 CIDR with a prefix length between /16 and /18."
  }
}

variable "azs" {
  description = "Availability zones to span (at least 3, at most 4, distinct). One public, one private and one intra subnet, and one NAT gateway, per zone."
  type        = list(string)

  validation {
    condition     = length(var.azs) >= 3
    error_message = "azs must list at least 3 availability zones: fudo must survive the loss of one zone."
  }

  validation {
    condition     = length(var.azs) <= 4
    error_message = "azs may list at most 4 availability zones (the subnet layout reserves 4 slots)."
  }

  validation {
    condition     = length(distinct(var.azs)) == length(var.azs)
    error_message = "azs must not repeat a zone."
  }
}

variable "cluster_name" {
  description = "Name of the EKS cluster that uses this VPC; private subnets are tagged karpenter.sh/discovery = cluster_name."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}$", var.cluster_name))
    error_message = "cluster_name must match ^[a-z][a-z0-9-]{1,30}$."
  }
}

variable "flow_log_kms_key_arn" {
  description = "ARN of the KMS key that encrypts the flow-log CloudWatch log group (its key policy must allow logs.<region>.amazonaws.com)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.flow_log_kms_key_arn))
    error_message = "flow_log_kms_key_arn must be a KMS key ARN."
  }
}

variable "flow_log_retention_days" {
  description = "Retention of the VPC flow-log group in days; at least 365 and one of the values CloudWatch Logs accepts."
  type        = number
  default     = 365

  validation {
    condition     = var.flow_log_retention_days >= 365
    error_message = "flow_log_retention_days must be at least 365."
  }

  validation {
    condition     = contains([365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.flow_log_retention_days)
    error_message = "flow_log_retention_days must be one of 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653."
  }
}

variable "additional_interface_endpoints" {
  description = "Extra interface endpoint services (short names such as ec2, sqs, ssm, eks, eks-auth) on top of the always-created ecr.api, ecr.dkr, kms, sts and logs."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for s in var.additional_interface_endpoints : can(regex("^[a-z0-9][a-z0-9.-]*$", s))])
    error_message = "additional_interface_endpoints must be short service names such as ec2 or eks-auth."
  }
}
