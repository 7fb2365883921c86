################################################################################
# Karpenter interruption handling: EventBridge -> SQS. Karpenter drains a node
# ahead of a spot interruption (2-minute warning), a rebalance recommendation,
# a scheduled AWS Health maintenance or an instance stopping/terminating.
################################################################################

# Encrypted either way: with karpenter_queue_kms_key_arn (whose key policy must let
# events.amazonaws.com use it, as the security module's "sqs" key does) or with SQS-managed SSE.
resource "aws_sqs_queue" "karpenter" {
  name                              = "${var.name}-karpenter"
  message_retention_seconds         = 300
  sqs_managed_sse_enabled           = var.karpenter_queue_kms_key_arn == null ? true : null
  kms_master_key_id                 = var.karpenter_queue_kms_key_arn
  kms_data_key_reuse_period_seconds = var.karpenter_queue_kms_key_arn == null ? null : 300

  tags = var.tags
}

data "aws_iam_policy_document" "karpenter_queue" {
  statement {
    sid       = "EventBridgeWrite"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.karpenter.arn]

    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com", "sqs.amazonaws.com"]
    }
  }

  statement {
    sid       = "DenyHTTP"
    effect    = "Deny"
    actions   = ["sqs:*"]
    resources = [aws_sqs_queue.karpenter.arn]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_sqs_queue_policy" "karpenter" {
  queue_url = aws_sqs_queue.karpenter.url
  policy    = data.aws_iam_policy_document.karpenter_queue.json
}

locals {
  karpenter_events = {
    health = {
      description = "Karpenter interruption: AWS Health Event (scheduled change)"
      pattern = {
        source      = ["aws.health"]
        detail-type = ["AWS Health Event"]
      }
    }
    spot-interruption = {
      description = "Karpenter interruption: EC2 Spot Instance Interruption Warning"
      pattern = {
        source      = ["aws.ec2"]
        detail-type = ["EC2 Spot Instance Interruption Warning"]
      }
    }
    rebalance = {
      description = "Karpenter interruption: EC2 Instance Rebalance Recommendation"
      pattern = {
        source      = ["aws.ec2"]
        detail-type = ["EC2 Instance Rebalance Recommendation"]
      }
    }
    state-change = {
      description = "Karpenter interruption: EC2 Instance State-change Notification"
      pattern = {
        source      = ["aws.ec2"]
        detail-type = ["EC2 Instance State-change Notification"]
      }
    }
  }
}

resource "aws_cloudwatch_event_rule" "karpenter" {
  for_each = local.karpenter_events

  name          = "${var.name}-karpenter-${each.key}"
  description   = each.value.description
  event_pattern = jsonencode(each.value.pattern)

  tags = var.tags
}

resource "aws_cloudwatch_event_target" "karpenter" {
  for_each = local.karpenter_events

  rule      = aws_cloudwatch_event_rule.karpenter[each.key].name
  target_id = "KarpenterInterruptionQueue"
  arn       = aws_sqs_queue.karpenter.arn
}
