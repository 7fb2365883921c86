# Tokyo is the primary region, Osaka the secondary. Global Accelerator's API lives in us-west-2
# only. Every provider refuses to run against an account other than var.account_id, so a plan
# with the wrong credentials stops before it reads anything.

provider "aws" {
  alias               = "tokyo"
  region              = local.regions.primary
  allowed_account_ids = [var.account_id]

  default_tags {
    tags = local.tags
  }
}

provider "aws" {
  alias               = "osaka"
  region              = local.regions.secondary
  allowed_account_ids = [var.account_id]

  default_tags {
    tags = local.tags
  }
}

provider "aws" {
  alias               = "accelerator"
  region              = "us-west-2"
  allowed_account_ids = [var.account_id]

  default_tags {
    tags = local.tags
  }
}

# The clusters' API endpoints are private: run Terraform from inside the VPC or from
# var.cluster_api_ingress_cidrs. Tokens come from `aws eks get-token` at plan time.
provider "helm" {
  alias = "tokyo"
  kubernetes = {
    host                   = module.cluster_tokyo.cluster_endpoint
    cluster_ca_certificate = base64decode(module.cluster_tokyo.cluster_certificate_authority_data)
    exec = {
      api_version = "client.authentication.k8s.io/v1beta1"
      command     = "aws"
      args        = ["eks", "get-token", "--cluster-name", module.cluster_tokyo.cluster_name, "--region", local.regions.primary]
    }
  }
}

provider "kubectl" {
  alias                  = "tokyo"
  host                   = module.cluster_tokyo.cluster_endpoint
  cluster_ca_certificate = base64decode(module.cluster_tokyo.cluster_certificate_authority_data)
  load_config_file       = false
  exec {
    api_version = "client.authentication.k8s.io/v1beta1"
    command     = "aws"
    args        = ["eks", "get-token", "--cluster-name", module.cluster_tokyo.cluster_name, "--region", local.regions.primary]
  }
}

provider "helm" {
  alias = "osaka"
  kubernetes = {
    host                   = module.cluster_osaka.cluster_endpoint
    cluster_ca_certificate = base64decode(module.cluster_osaka.cluster_certificate_authority_data)
    exec = {
      api_version = "client.authentication.k8s.io/v1beta1"
      command     = "aws"
      args        = ["eks", "get-token", "--cluster-name", module.cluster_osaka.cluster_name, "--region", local.regions.secondary]
    }
  }
}

provider "kubectl" {
  alias                  = "osaka"
  host                   = module.cluster_osaka.cluster_endpoint
  cluster_ca_certificate = base64decode(module.cluster_osaka.cluster_certificate_authority_data)
  load_config_file       = false
  exec {
    api_version = "client.authentication.k8s.io/v1beta1"
    command     = "aws"
    args        = ["eks", "get-token", "--cluster-name", module.cluster_osaka.cluster_name, "--region", local.regions.secondary]
  }
}
