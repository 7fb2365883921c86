terraform {
  required_version = ">= 1.7.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 6.0, < 7.0"
    }
    random = {
      source  = "hashicorp/random"
      version = ">= 3.6, < 4.0"
    }
    helm = {
      source  = "hashicorp/helm"
      version = ">= 3.0, < 4.0"
    }
    kubectl = {
      source  = "alekc/kubectl"
      version = ">= 2.1, < 3.0"
    }
  }

  # State in S3 with native locking; bucket, key and region come from
  # `terraform init -backend-config=backend.hcl` (see README.md), never from this file.
  backend "s3" {
    encrypt      = true
    use_lockfile = true
  }
}
