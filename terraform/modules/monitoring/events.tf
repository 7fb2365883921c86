################################################################################
# ElastiCache events reach the topics through EventBridge: ElastiCache's own SNS
# notification cannot publish to a KMS-encrypted topic, and every topic here is
# encrypted. The detail-types are the ones ElastiCache sends to EventBridge
# (EventBridge event reference, "Amazon ElastiCache events"); failures and limits
# go to the critical topic, everything else (updates, snapshots) to the warning one.
# A primary failover itself is paged by the alarms (session store degraded,
# replication lag), which see it within a minute whatever the event stream says.
################################################################################

locals {
  elasticache_critical_detail_types = ["Cache Update Failed", "Cache Creation Failed", "Cache Limit Approaching", "Snapshot Creation Failed"]

  elasticache_event_patterns = {
    critical = {
      source        = ["aws.elasticache"]
      "detail-type" = local.elasticache_critical_detail_types
    }
    warning = {
      source        = ["aws.elasticache"]
      "detail-type" = [{ "anything-but" = local.elasticache_critical_detail_types }]
    }
  }
}

resource "aws_cloudwatch_event_rule" "elasticache" {
  for_each = { for severity, pattern in local.elasticache_event_patterns : severity => pattern if var.redis_alarms_enabled }

  name          = "${var.name}-elasticache-${each.key}"
  description   = "ElastiCache events of this region, to the ${each.key} topic."
  event_pattern = jsonencode(each.value)

  tags = var.tags
}

resource "aws_cloudwatch_event_target" "elasticache" {
  for_each = aws_cloudwatch_event_rule.elasticache

  rule = each.value.name
  arn  = aws_sns_topic.this[each.key].arn
}
