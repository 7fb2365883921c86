# aws.primary and aws.secondary: the two regions' load balancers. aws.accelerator: Global
# Accelerator, whose API is served from one region only (the AWS provider pins its Global
# Accelerator client there anyway; the alias makes that explicit to callers).
terraform {
  required_version = ">= 1.7.0"

  required_providers {
    aws = {
      source                = "hashicorp/aws"
      version               = ">= 6.0, < 7.0"
      configuration_aliases = [aws.primary, aws.secondary, aws.accelerator]
    }
  }
}
