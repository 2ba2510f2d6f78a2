# llmproxy configuration — the embedded default (`make run` serves it).
#
# It runs on a fresh machine with no cloud account: model "echo" is served
# by the echo plugin, and every real provider instance below stays disabled
# until its credentials are present in the environment. Copy this file,
# edit it, and start `llmproxy -config your.hcl`.
#
# Expressions may call env("NAME"), env("NAME", "default") and file("path").

server {
  listen      = env("LLMPROXY_LISTEN", "127.0.0.1:8080")
  plugins_dir = env("LLMPROXY_PLUGINS_DIR", "bin/plugins")
  # Largest accepted request body, in bytes.
  max_body_bytes  = 33554432
  request_timeout = "10m"
  shutdown_grace  = "30s"
}

logging {
  level      = env("LLMPROXY_LOG_LEVEL", "info")
  format     = "text" # or "json"
  access_log = false
}

# DEVELOPMENT ONLY: the default key is public. Set LLMPROXY_API_KEY, or
# better, replace `key` by `key_sha256 = "<hex sha-256 of the key>"`.
api_key "dev" {
  key       = env("LLMPROXY_API_KEY", "sk-llmproxy-dev")
  models    = ["*"]
  instances = ["*"]
}

# Plugin binaries are found in plugins_dir as llmproxy-provider-<type> and
# llmproxy-storage-<type>. Pin one to a checksum (or another path) like so:
#
# plugin "provider-openai" {
#   sha256 = "3f1c…"             # the host refuses a binary that differs
#   path   = "/opt/llmproxy/llmproxy-provider-openai"
# }

# ---------------------------------------------------------------- providers
# An instance whose credentials are missing does not stop the host: it is
# reported as failed, with the reason, in /readyz and the log. Instances that
# rely on ambient cloud identity are switched on by `enabled` instead.

provider "echo" {
  type = "echo"
  config {
    prefix = "You said: "
  }
}

provider "openai_prod" {
  type    = "openai"
  credential "api_key" {
    from "env" { name = "OPENAI_API_KEY" }
    from "file" { path = "/var/run/secrets/llmproxy/openai_api_key" }
  }
  config {
    base_url = env("OPENAI_BASE_URL", "https://api.openai.com/v1")
  }
}

provider "anthropic_direct" {
  type    = "anthropic"
  credential "api_key" {
    from "env" { name = "ANTHROPIC_API_KEY" }
  }
}

provider "azure_eastus" {
  type    = "azure"
  credential "api_key" {
    from "env" { name = "AZURE_OPENAI_API_KEY" }
  }
  config {
    endpoint = env("AZURE_OPENAI_ENDPOINT", "https://example-eastus.openai.azure.com")
  }
}

# Bedrock uses the AWS default credential chain (env, shared config, IRSA,
# instance role) inside the plugin when no credential block is given.
provider "bedrock_us1" {
  type        = "bedrock"
  enabled     = env("AWS_ACCESS_KEY_ID", "") != "" || env("AWS_WEB_IDENTITY_TOKEN_FILE", "") != ""
  inherit_env = ["AWS_*"]
  config {
    region = "us-east-1"
  }
}

provider "bedrock_eu1" {
  type        = "bedrock"
  enabled     = env("AWS_ACCESS_KEY_ID", "") != "" || env("AWS_WEB_IDENTITY_TOKEN_FILE", "") != ""
  inherit_env = ["AWS_*"]
  config {
    region = "eu-central-1"
  }
}

provider "vertex_us" {
  type        = "vertex"
  enabled     = env("GOOGLE_APPLICATION_CREDENTIALS", "") != ""
  inherit_env = ["GOOGLE_*"]
}

provider "ibm_watsonx" {
  type    = "watsonx"
  credential "api_key" {
    from "env" { name = "WATSONX_API_KEY" }
  }
}

provider "oracle_ai" {
  type        = "oci"
  enabled     = env("OCI_CONFIG_FILE", "") != ""
  inherit_env = ["OCI_*"]
}

# ------------------------------------------------------------------ storage
# Objects through the gateway: /-{type}/{instance}/{op}/{bucket}/{key...},
# op = put | get | head | list | delete | presign. E.g.
#   curl -X PUT --data-binary @quantum.md -H 'Authorization: Bearer sk-llmproxy-dev' \
#        localhost:8080/-local/dev/put/rag-docs/quantum.md
#   curl -H 'Authorization: Bearer sk-llmproxy-dev' \
#        'localhost:8080/-local/dev/presign/rag-docs/quantum.md?ttl=600'

storage "dev" {
  type            = "local"
  allowed_buckets = ["rag-docs", "uploads"]
  denied_prefixes = ["secret/", "internal/", "credentials/"]
  presign {
    default_ttl = "1h"
    min_ttl     = "60s"
    max_ttl     = "24h"
  }
  config {
    root           = env("LLMPROXY_DATA_DIR", "data/objects")
    create_buckets = true
  }
}

# storage "prod" {
#   type            = "s3"
#   allowed_buckets = ["rag-docs"]
#   denied_prefixes = ["secret/", "internal/", "credentials/"]
#   credential "access_key_id"     { from "env" { name = "AWS_ACCESS_KEY_ID" } }
#   credential "secret_access_key" { from "env" { name = "AWS_SECRET_ACCESS_KEY" } }
#   config { region = "us-east-1" }
# }

# ---------------------------------------------------------------- documents
# Chat messages may carry document parts — {"type":"document","source":
# {"type":"url","url":...}} or {"source":{"type":"storage","storage":"dev",
# "bucket":"rag-docs","key":"quantum.md"}} or OpenAI "file" parts. The host
# fetches them (private and loopback addresses refused unless allowed),
# caches and extracts them, and hands them to the provider plugin.

documents {
  max_bytes     = 20971520
  max_documents = 8
  timeout       = "20s"
  cache {
    backend   = "memory" # or "redis" with redis_url
    max_bytes = 268435456
    ttl       = "1h"
  }
  # PDF and HTML are parsed only by extractor plugins (every
  # llmproxy-extractor-* in plugins_dir unless `extractors` lists types),
  # never by llmproxy itself. Each process reads one document at a time
  # under these limits; one that exceeds them is killed and replaced, and
  # the request gets 422 document_unreadable.
  extract {
    processes    = 2
    timeout      = "20s"     # wall clock per document
    cpu_seconds  = 20        # CPU time per document
    memory_bytes = 536870912 # per process
  }
}

# ------------------------------------------------------------------- routes
# Exact names first, then patterns, then aliases. A route with several
# targets fails over (or round-robins, or weighs) between instances; each
# target may name the model as that instance knows it.

route "echo" {
  aliases = ["echo-1"]
  target "echo" {}
}

route "echo-embed" {
  target "echo" {}
}

route "claude-3-sonnet-20240229" {
  strategy = "failover"
  aliases  = ["sonnet"]
  target "bedrock_us1" { model = "anthropic.claude-3-sonnet-20240229-v1:0" }
  target "bedrock_eu1" { model = "anthropic.claude-3-sonnet-20240229-v1:0" }
  target "anthropic_direct" {}
}

route "claude-*" {
  target "anthropic_direct" {}
}

route "gpt-*" {
  strategy = "failover"
  target "openai_prod" {}
  target "azure_eastus" {}
}

route "text-embedding-*" {
  target "openai_prod" {}
}

route "gemini-*" {
  target "vertex_us" {}
}

route "ibm/*" {
  target "ibm_watsonx" {}
}

route "cohere.*" {
  target "oracle_ai" {}
}
