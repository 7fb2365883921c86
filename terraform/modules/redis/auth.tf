################################################################################
# AUTH token: generated here, handed to fudo only through Secrets Manager (KMS-encrypted).
# It is in the Terraform state (as every generated secret is): the state must be encrypted
# and access-controlled. It is never an output.
################################################################################

resource "random_password" "auth" {
  # ElastiCache AUTH tokens: 16-128 printable characters without spaces, '/', '"' or '@'.
  # Letters and digits only, so the token can be put into a redis:// URL unescaped.
  length  = 64
  special = false

  keepers = {
    rotation = var.auth_token_rotation
  }
}

resource "aws_secretsmanager_secret" "auth" {
  #checkov:skip=CKV2_AWS_57:Rotation is Terraform's: changing auth_token_rotation makes a new token, applied to ElastiCache with the ROTATE strategy and written here; ElastiCache has no Secrets Manager rotation function for AUTH tokens
  name        = "${var.name}/redis/auth"
  description = "AUTH token and TLS endpoint of the fudo session store ${var.name}"
  kms_key_id  = var.kms_key_arn

  tags = local.tags
}

resource "aws_secretsmanager_secret_version" "auth" {
  secret_id = aws_secretsmanager_secret.auth.id

  # url is what fudo's sessions.redis_url takes (rediss:// = TLS). On a Global Datastore
  # secondary the endpoint is read-only until the secondary is promoted.
  secret_string = jsonencode({
    auth_token            = random_password.auth.result
    host                  = local.replication_group.primary_endpoint_address
    reader_host           = local.replication_group.reader_endpoint_address
    port                  = local.port
    global_datastore_role = var.global_datastore_role
    url                   = "rediss://:${random_password.auth.result}@${local.replication_group.primary_endpoint_address}:${local.port}/0"
  })
}
