data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

data "aws_region" "replica" {
  provider = aws.replica
}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  dns_suffix = data.aws_partition.current.dns_suffix
  region     = data.aws_region.current.region
  replica    = data.aws_region.replica.region

  # Short region codes keep bucket names within S3's 63 characters:
  # <name (<= 31)>-<purpose (<= 6)>-<account (12)>-<code (<= 7)>, e.g. apne1.
  direction_codes = {
    northeast = "ne"
    northwest = "nw"
    southeast = "se"
    southwest = "sw"
    north     = "n"
    south     = "s"
    east      = "e"
    west      = "w"
    central   = "c"
  }

  region_codes = {
    for r in [local.region, local.replica] : r => join("", [
      for part in split("-", r) : lookup(local.direction_codes, part, part)
    ])
  }

  bucket_names = {
    audit          = "${var.name}-audit-${local.account_id}-${local.region_codes[local.region]}"
    audit_replica  = "${var.name}-audit-${local.account_id}-${local.region_codes[local.replica]}"
    models         = "${var.name}-models-${local.account_id}-${local.region_codes[local.region]}"
    models_replica = "${var.name}-models-${local.account_id}-${local.region_codes[local.replica]}"
    logs           = "${var.name}-s3logs-${local.account_id}-${local.region_codes[local.region]}"
    logs_replica   = "${var.name}-s3logs-${local.account_id}-${local.region_codes[local.replica]}"
  }
}
