# llmproxy configuration for Kubernetes. The ConfigMap mounts this file as
# a directory at /etc/llmproxy, so that edits reach running pods (a subPath
# mount never would); the host reloads it when it changes (-watch) or on
# SIGHUP. Secrets come from the pod's environment (envFrom the
# llmproxy-secrets Secret) or from files under /var/run/secrets/llmproxy.

server {
  listen          = "0.0.0.0:8080"
  plugins_dir     = "/opt/llmproxy/plugins"
  max_body_bytes  = 33554432
  request_timeout = "10m"
  # terminationGracePeriodSeconds covers drain_delay + shutdown_grace.
  shutdown_grace  = "300s"
  # /readyz answers 503 this long before the listener closes, so that the
  # endpoint leaves the Service before connections are refused.
  drain_delay     = "5s"
  # Replicas share the page token key.
  page_token_secret = env("LLMPROXY_PAGE_TOKEN_SECRET")
}

logging {
  level      = "info"
  format     = "json"
  access_log = true
}

# The client key is kept as its SHA-256 (llmproxy keys hash).
api_key "default" {
  key_sha256  = env("LLMPROXY_API_KEY_SHA256")
  models      = ["*"]
  instances   = ["*"]
  storage_ops = ["*"]
}

# The operators' key: /readyz details.
api_key "ops" {
  key_sha256 = env("LLMPROXY_ADMIN_KEY_SHA256")
  models     = ["echo"]
  admin      = true
}

# Serves model "echo" with no upstream: the smoke test's target.
provider "echo" {
  type = "echo"
  config {
    prefix = "You said: "
  }
}

provider "openai_prod" {
  type    = "openai"
  enabled = env("OPENAI_API_KEY", "") != ""
  credential "api_key" {
    from "env" { name = "OPENAI_API_KEY" }
    from "file" { path = "/var/run/secrets/llmproxy/openai_api_key" }
  }
}

provider "anthropic_direct" {
  type    = "anthropic"
  enabled = env("ANTHROPIC_API_KEY", "") != ""
  credential "api_key" {
    from "env" { name = "ANTHROPIC_API_KEY" }
    from "file" { path = "/var/run/secrets/llmproxy/anthropic_api_key" }
  }
}

# Bedrock through the pod's workload identity (IRSA: the ServiceAccount's
# eks.amazonaws.com/role-arn annotation sets AWS_WEB_IDENTITY_TOKEN_FILE).
provider "bedrock_us1" {
  type        = "bedrock"
  enabled     = env("AWS_WEB_IDENTITY_TOKEN_FILE", "") != ""
  inherit_env = ["AWS_*"]
  config {
    region = "us-east-1"
  }
}

# Uploads and RAG documents in the pod's own volume; replace with an s3,
# gcs or azure instance in production.
storage "scratch" {
  type            = "local"
  allowed_buckets = ["smoke", "uploads"]
  config {
    root           = "/var/lib/llmproxy/storage"
    create_buckets = true
  }
}

route "echo" {
  target "echo" {}
}

route "gpt-*" {
  strategy = "failover"
  target "openai_prod" {}
}

route "claude-*" {
  strategy = "failover"
  target "bedrock_us1" {}
  target "anthropic_direct" {}
}
