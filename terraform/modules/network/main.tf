data "aws_region" "current" {}

data "aws_partition" "current" {}

data "aws_caller_identity" "current" {}

locals {
  region     = data.aws_region.current.region
  partition  = data.aws_partition.current.partition
  account_id = data.aws_caller_identity.current.account_id

  # Zone -> slot (0..3). Slots are fixed by the order of var.azs so that adding a zone at the end
  # never renumbers the existing subnets.
  az_index = { for i, az in var.azs : az => i }

  # Layout of a /16 (newbits are relative, so a /17 or /18 scales down the same way):
  #   private: 4 x /19  (10.x.0.0   - 10.x.127.255)  nodes and pods (VPC CNI), Karpenter capacity
  #   public:  4 x /24  (10.x.128.0 - 10.x.131.255)  NLB and NAT gateways only
  #   intra:   4 x /24  (10.x.136.0 - 10.x.139.255)  ElastiCache, EKS control-plane ENIs; no route out
  private_cidrs = { for az, i in local.az_index : az => cidrsubnet(var.cidr, 3, i) }
  public_cidrs  = { for az, i in local.az_index : az => cidrsubnet(var.cidr, 8, 128 + i) }
  intra_cidrs   = { for az, i in local.az_index : az => cidrsubnet(var.cidr, 8, 136 + i) }
}

resource "aws_vpc" "this" {
  cidr_block           = var.cidr
  enable_dns_support   = true
  enable_dns_hostnames = true

  tags = merge(var.tags, { Name = var.name })
}

# Takes over the VPC's default security group and strips every rule from it: nothing may use it.
resource "aws_default_security_group" "this" {
  vpc_id = aws_vpc.this.id

  tags = merge(var.tags, { Name = "${var.name}-default-deny" })
}

resource "aws_internet_gateway" "this" {
  vpc_id = aws_vpc.this.id

  tags = merge(var.tags, { Name = var.name })
}

################################################################################
# Subnets
################################################################################

resource "aws_subnet" "public" {
  for_each = local.public_cidrs

  vpc_id                  = aws_vpc.this.id
  availability_zone       = each.key
  cidr_block              = each.value
  map_public_ip_on_launch = false

  tags = merge(var.tags, {
    Name                     = "${var.name}-public-${each.key}"
    "fudo.io/subnet-tier"    = "public"
    "kubernetes.io/role/elb" = "1"
  })
}

resource "aws_subnet" "private" {
  for_each = local.private_cidrs

  vpc_id                  = aws_vpc.this.id
  availability_zone       = each.key
  cidr_block              = each.value
  map_public_ip_on_launch = false

  tags = merge(var.tags, {
    Name                              = "${var.name}-private-${each.key}"
    "fudo.io/subnet-tier"             = "private"
    "karpenter.sh/discovery"          = var.cluster_name
    "kubernetes.io/role/internal-elb" = "1"
  })
}

resource "aws_subnet" "intra" {
  for_each = local.intra_cidrs

  vpc_id                  = aws_vpc.this.id
  availability_zone       = each.key
  cidr_block              = each.value
  map_public_ip_on_launch = false

  tags = merge(var.tags, {
    Name                  = "${var.name}-intra-${each.key}"
    "fudo.io/subnet-tier" = "intra"
  })
}
