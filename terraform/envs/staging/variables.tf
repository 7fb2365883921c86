variable "account_id" {
  description = "The AWS account this environment lives in; every provider refuses any other."
  type        = string

  validation {
    condition     = can(regex("^[0-9]{12}$", var.account_id))
    error_message = "account_id must be a 12-digit AWS account id."
  }
}

variable "cost_center" {
  description = "Cost-allocation tag value for every resource."
  type        = string
  default     = "trading-ml"

  validation {
    condition     = length(var.cost_center) > 0 && length(var.cost_center) <= 64
    error_message = "cost_center must be 1 to 64 characters."
  }
}

variable "terraform_admin_role_arn" {
  description = "IAM role Terraform runs as; it gets cluster-admin on both EKS clusters (the creator gets no implicit access with authentication_mode API)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$", var.terraform_admin_role_arn))
    error_message = "terraform_admin_role_arn must be an IAM role ARN."
  }
}

variable "trusted_principal_arns" {
  description = "Who may assume each user-group role (MFA required): ml_engineer, trading_system, operator, risk, each a list of IAM principal ARNs (typically IAM Identity Center permission-set roles)."
  type        = map(list(string))

  validation {
    condition     = length(setsubtract(["ml_engineer", "trading_system", "operator", "risk"], keys(var.trusted_principal_arns))) == 0
    error_message = "trusted_principal_arns must name all four groups: ml_engineer, trading_system, operator, risk."
  }
}

variable "cluster_api_ingress_cidrs" {
  description = "Networks (CI runners, operators' VPN) that may reach the private EKS API endpoints on 443."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.cluster_api_ingress_cidrs : can(cidrhost(c, 0)) && !endswith(c, "/0")])
    error_message = "cluster_api_ingress_cidrs must be valid CIDRs and none may be a /0."
  }
}

variable "alarm_emails" {
  description = "Addresses subscribed to the critical and warning alarm topics (the on-call rotation's)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for e in var.alarm_emails : can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", e))])
    error_message = "alarm_emails must be email addresses."
  }
}

variable "certificate_arn" {
  description = "ACM certificate (ap-northeast-1) for the NLB's TLS listener."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:acm:ap-northeast-1:[0-9]{12}:certificate/.+$", var.certificate_arn))
    error_message = "certificate_arn must be an ACM certificate ARN in ap-northeast-1."
  }
}

variable "test_client_cidrs" {
  description = "Networks of the staging gateways and load generators allowed to the NLB's TLS listener (443)."
  type        = list(string)

  validation {
    condition     = length(var.test_client_cidrs) > 0 && alltrue([for c in var.test_client_cidrs : can(cidrhost(c, 0)) && !contains(["0.0.0.0/0", "::/0"], c)])
    error_message = "test_client_cidrs must be valid CIDRs and may not be 0.0.0.0/0 or ::/0."
  }
}
