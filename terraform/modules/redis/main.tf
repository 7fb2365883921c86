locals {
  is_primary   = var.global_datastore_role == "primary"
  is_secondary = var.global_datastore_role == "secondary"

  port = 6379

  # One node per zone in the order of var.subnet_ids: the primary in the first zone, the
  # replicas in the next ones (wrapping round when there are more nodes than zones).
  subnet_azs    = [for s in data.aws_subnet.this : s.availability_zone]
  preferred_azs = [for i in range(var.num_cache_clusters) : local.subnet_azs[i % length(local.subnet_azs)]]

  # Whichever of the two replication group resources exists (see below).
  replication_group = one(concat(aws_elasticache_replication_group.this, aws_elasticache_replication_group.secondary))

  tags = merge(var.tags, { "fudo.io/component" = "session-store" })
}

data "aws_subnet" "this" {
  count = length(var.subnet_ids)

  id = var.subnet_ids[count.index]
}

################################################################################
# Network: subnet group and a security group that admits only the given groups and networks
################################################################################

resource "aws_elasticache_subnet_group" "this" {
  name        = var.name
  description = "fudo session store (${var.name})"
  subnet_ids  = var.subnet_ids

  tags = local.tags
}

resource "aws_security_group" "this" {
  name_prefix = "${var.name}-redis-"
  description = "fudo session store: Redis TLS on 6379 from the allowed security groups and networks only"
  vpc_id      = var.vpc_id

  # No egress rule: the cache never opens connections into the VPC.

  tags = merge(local.tags, { Name = "${var.name}-redis" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "clients" {
  count = length(var.allowed_security_group_ids)

  security_group_id            = aws_security_group.this.id
  description                  = "Redis (TLS, AUTH) from fudo nodes"
  referenced_security_group_id = var.allowed_security_group_ids[count.index]
  ip_protocol                  = "tcp"
  from_port                    = local.port
  to_port                      = local.port

  tags = local.tags
}

resource "aws_vpc_security_group_ingress_rule" "networks" {
  count = length(var.allowed_cidr_blocks)

  security_group_id = aws_security_group.this.id
  description       = "Redis (TLS, AUTH) from a fudo network in another VPC or region"
  cidr_ipv4         = var.allowed_cidr_blocks[count.index]
  ip_protocol       = "tcp"
  from_port         = local.port
  to_port           = local.port

  tags = local.tags
}

################################################################################
# Parameters (not on a Global Datastore secondary: it inherits the global group's)
################################################################################

resource "aws_elasticache_parameter_group" "this" {
  count = local.is_secondary ? 0 : 1

  name        = "${var.name}-redis7"
  family      = "redis7"
  description = "fudo session store (${var.name})"

  # notify-keyspace-events stays at the family default (empty: no keyspace notifications).
  # Nothing in fudo subscribes to them, and they would cost CPU on every write.

  # Session snapshots are the durable copy of recurrent state: when memory runs out, a write
  # must fail (the node buffers and reports fudo_session_store_degraded) rather than Redis
  # silently evicting another session's state.
  parameter {
    name  = "maxmemory-policy"
    value = "noeviction"
  }

  tags = local.tags
}

################################################################################
# Replication group
#
# Cluster mode disabled: one primary and num_cache_clusters - 1 replicas, one per zone; fudo
# talks to the primary endpoint, whose DNS name ElastiCache moves to the promoted replica on
# failover.
#
# Two resources, exactly one of which exists. A Global Datastore secondary inherits engine,
# engine version, node type, parameter group, encryption at rest and in transit from the
# global group, and the AWS provider rejects those arguments next to
# global_replication_group_id (ConflictsWith in the provider's schema: num_node_groups,
# parameter_group_name, engine, engine_version, node_type, security_group_names,
# transit_encryption_enabled, transit_encryption_mode, at_rest_encryption_enabled,
# snapshot_arns, snapshot_name). Keeping the two cases apart lets the group that does set them
# state them as literals.
################################################################################

resource "aws_elasticache_replication_group" "this" {
  count = local.is_secondary ? 0 : 1

  replication_group_id = var.name
  description          = local.is_primary ? "fudo session store, Global Datastore primary" : "fudo session store"

  engine               = "redis"
  engine_version       = var.engine_version
  node_type            = var.node_type
  port                 = local.port
  parameter_group_name = aws_elasticache_parameter_group.this[0].name
  cluster_mode         = "disabled"

  num_cache_clusters          = var.num_cache_clusters
  preferred_cache_cluster_azs = local.preferred_azs
  subnet_group_name           = aws_elasticache_subnet_group.this.name
  security_group_ids          = [aws_security_group.this.id]

  multi_az_enabled           = true
  automatic_failover_enabled = true

  at_rest_encryption_enabled = true
  kms_key_id                 = var.kms_key_arn
  transit_encryption_enabled = true
  transit_encryption_mode    = "required"
  auth_token                 = random_password.auth.result
  auth_token_update_strategy = "ROTATE"

  snapshot_retention_limit   = var.snapshot_retention_limit
  snapshot_window            = var.snapshot_window
  maintenance_window         = var.maintenance_window
  final_snapshot_identifier  = "${var.name}-final"
  auto_minor_version_upgrade = true
  apply_immediately          = false
  notification_topic_arn     = var.notification_topic_arn

  log_delivery_configuration {
    destination      = aws_cloudwatch_log_group.this["slow-log"].name
    destination_type = "cloudwatch-logs"
    log_format       = "json"
    log_type         = "slow-log"
  }

  log_delivery_configuration {
    destination      = aws_cloudwatch_log_group.this["engine-log"].name
    destination_type = "cloudwatch-logs"
    log_format       = "json"
    log_type         = "engine-log"
  }

  tags = local.tags

  lifecycle {
    precondition {
      condition     = var.global_replication_group_id == null
      error_message = "global_replication_group_id is only for global_datastore_role = \"secondary\"."
    }
  }
}

resource "aws_elasticache_replication_group" "secondary" {
  #checkov:skip=CKV_AWS_29:A Global Datastore secondary inherits encryption at rest from the global group; the provider rejects at_rest_encryption_enabled next to global_replication_group_id (the primary member sets it to true)
  #checkov:skip=CKV_AWS_30:A Global Datastore secondary inherits encryption in transit from the global group; the provider rejects transit_encryption_enabled next to global_replication_group_id (the primary member sets it to true, mode required)
  #checkov:skip=CKV_AWS_31:Encryption in transit is inherited from the global group (see CKV_AWS_30); the AUTH token is set below
  count = local.is_secondary ? 1 : 0

  replication_group_id        = var.name
  description                 = "fudo session store, Global Datastore secondary (read-only until promoted)"
  global_replication_group_id = var.global_replication_group_id

  # Not set here, inherited from the global group (the provider rejects them on a secondary):
  # engine, engine_version, node_type, parameter_group_name, at_rest_encryption_enabled,
  # transit_encryption_enabled and transit_encryption_mode. The global group's primary member
  # (aws_elasticache_replication_group.this in the primary region) sets them as literals:
  # encryption at rest with a customer-managed key, TLS required, AUTH.
  port = local.port

  num_cache_clusters          = var.num_cache_clusters
  preferred_cache_cluster_azs = local.preferred_azs
  subnet_group_name           = aws_elasticache_subnet_group.this.name
  security_group_ids          = [aws_security_group.this.id]

  multi_az_enabled           = true
  automatic_failover_enabled = true

  # The at-rest key is regional, so the secondary names its own (this region's) key.
  kms_key_id                 = var.kms_key_arn
  auth_token                 = random_password.auth.result
  auth_token_update_strategy = "ROTATE"

  snapshot_retention_limit   = var.snapshot_retention_limit
  snapshot_window            = var.snapshot_window
  maintenance_window         = var.maintenance_window
  auto_minor_version_upgrade = true
  apply_immediately          = false
  notification_topic_arn     = var.notification_topic_arn

  log_delivery_configuration {
    destination      = aws_cloudwatch_log_group.this["slow-log"].name
    destination_type = "cloudwatch-logs"
    log_format       = "json"
    log_type         = "slow-log"
  }

  log_delivery_configuration {
    destination      = aws_cloudwatch_log_group.this["engine-log"].name
    destination_type = "cloudwatch-logs"
    log_format       = "json"
    log_type         = "engine-log"
  }

  tags = local.tags

  lifecycle {
    precondition {
      condition     = var.global_replication_group_id != null
      error_message = "global_datastore_role = \"secondary\" needs global_replication_group_id (the primary region's module output)."
    }
  }
}

################################################################################
# Global Datastore (primary role): created from this replication group
################################################################################

resource "aws_elasticache_global_replication_group" "this" {
  count = local.is_primary ? 1 : 0

  global_replication_group_id_suffix   = var.name
  global_replication_group_description = "fudo session store, cross-region (promotion is manual)"
  primary_replication_group_id         = aws_elasticache_replication_group.this[0].id

  # Once the primary has joined, the global group owns the engine version of every member
  # (the provider then ignores engine_version on the members), so upgrades go through here.
  engine_version = var.engine_version
}
