output "critical_topic_arn" {
  description = "ARN of the critical (paging) SNS topic."
  value       = aws_sns_topic.this["critical"].arn
}

output "warning_topic_arn" {
  description = "ARN of the warning SNS topic."
  value       = aws_sns_topic.this["warning"].arn
}

output "alarm_arns" {
  description = "ARNs of the metric alarms by key (error_rate, latency_p99, session_store_degraded, ..., plus redis_* and nlb_* when configured)."
  value       = { for key, alarm in aws_cloudwatch_metric_alarm.this : key => alarm.arn }
}

output "alarm_names" {
  description = "Names of the metric alarms by key."
  value       = { for key, alarm in aws_cloudwatch_metric_alarm.this : key => alarm.alarm_name }
}

output "region_unhealthy_alarm_arn" {
  description = "ARN of the composite region-unhealthy alarm (null without an NLB)."
  value       = one(aws_cloudwatch_composite_alarm.region_unhealthy[*].arn)
}
