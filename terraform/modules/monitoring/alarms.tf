################################################################################
# CloudWatch alarms, one resource over a map of definitions
#
# fudo's metrics reach CloudWatch through the CloudWatch agent's Prometheus scraping
# (Container Insights Prometheus) into var.metrics_namespace with the dimension sets
# listed in the README. Counters arrive as per-scrape deltas, so Sum over a period is
# the count in that period, across every pod that shares the dimensions.
#
# Every alarm is a metric-math alarm (metrics + expressions, one of them returned),
# sends to the critical or the warning topic and notifies both ALARM and OK.
################################################################################

locals {
  fudo = { ClusterName = var.cluster_name, Namespace = var.k8s_namespace }

  fudo_metric = {
    namespace  = var.metrics_namespace
    dimensions = local.fudo
    period     = 60
  }

  fudo_alarms = {
    # Non-OK answers over all answers, per minute, 3 minutes of 3. Client errors
    # (INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION) count too: the SLA excludes
    # them, but their series exist only once such a request happened, and an alarm
    # that depends on a series that may be absent would never evaluate.
    error_rate = {
      severity    = "critical"
      description = "More than ${var.error_rate_threshold * 100} % of fudo's requests answered with a non-OK gRPC code for 3 minutes."
      comparison  = "GreaterThanThreshold"
      threshold   = var.error_rate_threshold
      periods     = 3
      datapoints  = 3
      missing     = "notBreaching"
      metrics = {
        total = merge(local.fudo_metric, { metric_name = "fudo_requests_total", stat = "Sum" })
        ok    = merge(local.fudo_metric, { metric_name = "fudo_requests_total", stat = "Sum", dimensions = merge(local.fudo, { code = "OK" }) })
      }
      expressions = { error_rate = "IF(total > 0, 1 - FILL(ok, 0) / total, 0)" }
      returns     = ["error_rate"]
      band        = null
    }

    # Missing data stays missing (INSUFFICIENT_DATA, visible) rather than OK: the
    # histogram only exists in CloudWatch if it is delivered as a distribution.
    latency_p99 = {
      severity    = "critical"
      description = "fudo's p99 inference latency above ${var.latency_p99_threshold_seconds * 1000} ms for 3 minutes (hard limit 300 ms)."
      comparison  = "GreaterThanThreshold"
      threshold   = var.latency_p99_threshold_seconds
      periods     = 3
      datapoints  = 3
      missing     = "missing"
      metrics = {
        p99 = merge(local.fudo_metric, { metric_name = var.latency_metric_name, stat = "p99" })
      }
      expressions = {}
      returns     = ["p99"]
      band        = null
    }

    # fudo_session_store_degraded is 1 while Redis is unreachable and session writes
    # are buffered. An average of at least 0.5 over a minute means the store was down
    # for about 30 s or more of it (with a scrape interval of 15 s or less).
    session_store_degraded = {
      severity    = "critical"
      description = "fudo's session store (Redis) unreachable for about 30 s or more: session writes are being buffered in the nodes."
      comparison  = "GreaterThanOrEqualToThreshold"
      threshold   = 0.5
      periods     = 1
      datapoints  = 1
      missing     = "notBreaching"
      metrics = {
        degraded = merge(local.fudo_metric, { metric_name = "fudo_session_store_degraded", stat = "Average" })
      }
      expressions = {}
      returns     = ["degraded"]
      band        = null
    }

    session_buffered_writes = {
      severity    = "warning"
      description = "More than ${var.buffered_writes_threshold} session writes buffered in a fudo node while the session store is unreachable."
      comparison  = "GreaterThanThreshold"
      threshold   = var.buffered_writes_threshold
      periods     = 3
      datapoints  = 3
      missing     = "notBreaching"
      metrics = {
        buffered = merge(local.fudo_metric, { metric_name = "fudo_session_store_buffered_writes", stat = "Maximum" })
      }
      expressions = {}
      returns     = ["buffered"]
      band        = null
    }

    # fudo_cluster_member_deaths is exported as a per-peer gauge (a running count),
    # which cannot be summed across pods meaningfully; fudo_cluster_members{state="dead"}
    # says directly that some node sees a peer as dead now.
    cluster_member_dead = {
      severity    = "warning"
      description = "A fudo node declares a cluster peer dead (node, AZ or region loss, or a partition)."
      comparison  = "GreaterThanThreshold"
      threshold   = 0
      periods     = 1
      datapoints  = 1
      missing     = "notBreaching"
      metrics = {
        dead = merge(local.fudo_metric, { metric_name = "fudo_cluster_members", stat = "Maximum", dimensions = merge(local.fudo, { state = "dead" }) })
      }
      expressions = {}
      returns     = ["dead"]
      band        = null
    }

    restart_storm = {
      severity    = "critical"
      description = "More than ${var.restart_storm_threshold} actor restarts in 5 minutes across fudo's nodes: a crash loop, not an isolated shard panic."
      comparison  = "GreaterThanThreshold"
      threshold   = var.restart_storm_threshold
      periods     = 1
      datapoints  = 1
      missing     = "notBreaching"
      metrics = {
        restarts = merge(local.fudo_metric, { metric_name = "fudo_actor_restarts_total", stat = "Sum", period = 300 })
      }
      expressions = {}
      returns     = ["restarts"]
      band        = null
    }

    queue_depth = {
      severity    = "warning"
      description = "More than ${var.queue_depth_threshold} rows queued for a model in a fudo node for 3 minutes: the node is saturated and latency will follow."
      comparison  = "GreaterThanThreshold"
      threshold   = var.queue_depth_threshold
      periods     = 3
      datapoints  = 3
      missing     = "notBreaching"
      metrics = {
        depth = merge(local.fudo_metric, { metric_name = "fudo_queue_depth_rows", stat = "Maximum" })
      }
      expressions = {}
      returns     = ["depth"]
      band        = null
    }

    # "No requests during market hours" without a calendar: an anomaly-detection band
    # learns the daily and weekly shape of the traffic (about two weeks of history),
    # so near-zero traffic overnight is expected while zero traffic at 10:00 JST on a
    # trading day falls far below the band. Pods that are gone send no data; that is
    # the NLB alarms' job, hence notBreaching here.
    traffic_drop = {
      severity    = "critical"
      description = "fudo's request traffic far below what this time of day and week normally sees (e.g. no requests during market hours), 3 minutes in a row."
      comparison  = "LessThanLowerThreshold"
      threshold   = null
      periods     = 3
      datapoints  = 3
      missing     = "notBreaching"
      metrics = {
        requests = merge(local.fudo_metric, { metric_name = "fudo_requests_total", stat = "Sum" })
      }
      expressions = { expected = "ANOMALY_DETECTION_BAND(requests, ${var.traffic_anomaly_band_width})" }
      returns     = ["requests", "expected"]
      band        = "expected"
    }
  }

  ################################################################################
  # ElastiCache: every member of the replication group, the worst node counts
  ################################################################################

  redis_members = var.redis_alarms_enabled ? {
    for i in range(1, var.redis_num_cache_clusters + 1) : "n${i}" => format("%s-%03d", var.redis_replication_group_id, i)
  } : {}

  redis_max = "MAX([${join(", ", keys(local.redis_members))}])"

  redis_alarm_specs = {
    redis_replication_lag = {
      severity    = "critical"
      metric_name = "ReplicationLag"
      description = "A Redis replica lags more than ${var.redis_replication_lag_threshold_seconds} s behind its primary: a failover now would lose that much session state."
      threshold   = var.redis_replication_lag_threshold_seconds
      periods     = 3
    }
    redis_engine_cpu = {
      severity    = "warning"
      metric_name = "EngineCPUUtilization"
      description = "A Redis node's engine thread above ${var.redis_engine_cpu_threshold} % CPU for 5 minutes."
      threshold   = var.redis_engine_cpu_threshold
      periods     = 5
    }
    redis_memory = {
      severity    = "critical"
      metric_name = "DatabaseMemoryUsagePercentage"
      description = "A Redis node above ${var.redis_memory_threshold} % of its memory: evictions may drop session state."
      threshold   = var.redis_memory_threshold
      periods     = 3
    }
  }

  redis_alarms = !var.redis_alarms_enabled ? {} : {
    for key, spec in local.redis_alarm_specs : key => {
      severity    = spec.severity
      description = spec.description
      comparison  = "GreaterThanThreshold"
      threshold   = spec.threshold
      periods     = spec.periods
      datapoints  = spec.periods
      missing     = "notBreaching"
      metrics = {
        for id, member in local.redis_members : id => {
          namespace   = "AWS/ElastiCache"
          metric_name = spec.metric_name
          dimensions  = { CacheClusterId = member }
          stat        = "Maximum"
          period      = 60
        }
      }
      expressions = { worst = local.redis_max }
      returns     = ["worst"]
      band        = null
    }
  }

  ################################################################################
  # NLB: the region's gRPC targets
  ################################################################################

  nlb = { LoadBalancer = var.nlb_arn_suffix, TargetGroup = var.target_group_arn_suffix }

  nlb_alarms = !var.nlb_alarms_enabled ? {} : {
    nlb_unhealthy_targets = {
      severity    = "warning"
      description = "The NLB reports an unhealthy fudo target for 3 minutes (a node failing its gRPC health check; the others carry its traffic)."
      comparison  = "GreaterThanThreshold"
      threshold   = 0
      periods     = 3
      datapoints  = 3
      missing     = "notBreaching"
      metrics = {
        unhealthy = { namespace = "AWS/NetworkELB", metric_name = "UnHealthyHostCount", dimensions = local.nlb, stat = "Maximum", period = 60 }
      }
      expressions = {}
      returns     = ["unhealthy"]
      band        = null
    }

    # No data means no load balancer or no target group: breaching.
    nlb_healthy_targets_low = {
      severity    = "critical"
      description = "Fewer than ${var.nlb_min_healthy_hosts} healthy fudo targets behind this region's NLB for 2 minutes."
      comparison  = "LessThanThreshold"
      threshold   = var.nlb_min_healthy_hosts
      periods     = 2
      datapoints  = 2
      missing     = "breaching"
      metrics = {
        healthy = { namespace = "AWS/NetworkELB", metric_name = "HealthyHostCount", dimensions = local.nlb, stat = "Minimum", period = 60 }
      }
      expressions = {}
      returns     = ["healthy"]
      band        = null
    }
  }

  alarms = merge(local.fudo_alarms, local.redis_alarms, local.nlb_alarms)
}

resource "aws_cloudwatch_metric_alarm" "this" {
  for_each = local.alarms

  alarm_name          = "${var.name}-${replace(each.key, "_", "-")}"
  alarm_description   = each.value.description
  comparison_operator = each.value.comparison
  threshold           = each.value.threshold
  threshold_metric_id = each.value.band
  evaluation_periods  = each.value.periods
  datapoints_to_alarm = each.value.datapoints
  treat_missing_data  = each.value.missing

  actions_enabled = true
  alarm_actions   = [aws_sns_topic.this[each.value.severity].arn]
  ok_actions      = [aws_sns_topic.this[each.value.severity].arn]

  dynamic "metric_query" {
    for_each = each.value.metrics

    content {
      id          = metric_query.key
      return_data = contains(each.value.returns, metric_query.key)

      metric {
        namespace   = metric_query.value.namespace
        metric_name = metric_query.value.metric_name
        dimensions  = metric_query.value.dimensions
        stat        = metric_query.value.stat
        period      = metric_query.value.period
      }
    }
  }

  dynamic "metric_query" {
    for_each = each.value.expressions

    content {
      id          = metric_query.key
      expression  = metric_query.value
      label       = metric_query.key
      return_data = contains(each.value.returns, metric_query.key)
    }
  }

  tags = merge(var.tags, { Severity = each.value.severity })

  lifecycle {
    precondition {
      condition     = !var.nlb_alarms_enabled || (var.nlb_arn_suffix != null && var.target_group_arn_suffix != null)
      error_message = "nlb_alarms_enabled needs both nlb_arn_suffix and target_group_arn_suffix."
    }
    precondition {
      condition     = !var.redis_alarms_enabled || var.redis_replication_group_id != null
      error_message = "redis_alarms_enabled needs redis_replication_group_id."
    }
  }
}

################################################################################
# Region unhealthy: the one signal for "move this region's traffic dial"
#
# The region fails its users (error rate) or has lost too much capacity (healthy NLB
# targets). Global Accelerator already steers away from failed health checks by
# itself; this alarm tells the operator to turn the dial (security module, operator).
################################################################################

resource "aws_cloudwatch_composite_alarm" "region_unhealthy" {
  count = var.nlb_alarms_enabled ? 1 : 0

  alarm_name        = "${var.name}-region-unhealthy"
  alarm_description = "This region is failing fudo's clients (error rate) or has too few healthy targets: consider turning its Global Accelerator traffic dial down."
  alarm_rule = join(" OR ", [
    "ALARM(\"${aws_cloudwatch_metric_alarm.this["error_rate"].alarm_name}\")",
    "ALARM(\"${aws_cloudwatch_metric_alarm.this["nlb_healthy_targets_low"].alarm_name}\")",
  ])

  actions_enabled = true
  alarm_actions   = [aws_sns_topic.this["critical"].arn]
  ok_actions      = [aws_sns_topic.this["critical"].arn]

  tags = merge(var.tags, { Severity = "critical" })
}
