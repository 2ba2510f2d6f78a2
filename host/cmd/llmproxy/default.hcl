# llmproxy configuration — the embedded default (`make run` serves it).
#
# It runs on a fresh machine with no cloud account: model "echo" is served
# by the echo plugin, and every real provider instance below stays disabled
# until its credentials are present in the environment. Copy this file,
# edit it, and start `llmproxy -config your.hcl`.
#
# Expressions may call env("NAME"), env("NAME", "default") and file("path").

# Every server attribute is optional; these are the defaults.
server {
  listen = env("LLMPROXY_LISTEN", "127.0.0.1:8080")
  # Plugin binaries are looked for in the "plugins" directory beside the
  # llmproxy binary (bin/plugins after `make build`). A relative path here
  # is relative to this file; -plugins-dir on the command line overrides it.
  # plugins_dir = "/opt/llmproxy/plugins"
  # Largest accepted request body, in bytes.
  max_body_bytes  = 33554432
  request_timeout = "10m"
  shutdown_grace  = "30s"

  # Supervision: every plugin is asked for its health each interval and
  # must answer within the timeout. An unhealthy answer marks the instance
  # "degraded" in /readyz (routes then try it after healthy targets); a
  # plugin that misses health_failures answers in a row is killed and
  # replaced.
  health_interval = "10s"
  health_timeout  = "2s"
  health_failures = 3

  # Each attempt against a route target is bounded, so that a failover
  # route moves on in seconds (routes and targets may override these):
  # connect_timeout until the plugin confirms it is running the call,
  # first_byte_timeout (unset: none) until the answer or the first chunk
  # begins. A stream silent for stream_keepalive gets an SSE comment; the
  # first one starts the response and ends failover for that request.
  connect_timeout  = "3s"
  stream_keepalive = "15s"

  # After SIGTERM, /readyz answers 503 for drain_delay while requests are
  # still served, then the listener closes.
  drain_delay = "0s"
  # Headers and bodies up to max_body_bytes must arrive within
  # read_timeout; larger (streamed) uploads may take as long as they need
  # as long as no read waits longer than read_idle_timeout.
  read_timeout      = "5m"
  read_idle_timeout = "60s"
  # Storage list page tokens are sealed; replicas behind one load balancer
  # need the same secret (at least 16 bytes) to accept each other's.
  # page_token_secret = env("LLMPROXY_PAGE_TOKEN_SECRET")
}

logging {
  level      = env("LLMPROXY_LOG_LEVEL", "info")
  format     = "text" # or "json"
  access_log = false
}

# DEVELOPMENT ONLY: the default key is public, so the host accepts it only
# on a loopback listener and refuses to start otherwise. Set
# LLMPROXY_API_KEY, or better, replace `key` by
# `key_sha256 = "<hex sha-256 of the key>"`.
#
# Rights fail closed: a missing or empty list grants nothing, "*" grants
# everything of its kind.
#   models      model names or patterns usable under /v1/
#   passthrough provider instances usable in transparent mode
#               (/-{type}/{instance}/{native path}), e.g. ["openai_prod"]
#   instances   storage instances, over the storage API and as document
#               references in chats
#   storage_ops put | get | head | list | delete | presign, or "*"; a
#               presign also needs the right of the method it signs
#   admin       true: /readyz shows per-instance details, and the admin
#               API (/admin/v1/keys, /admin/v1/usage) answers
api_key "dev" {
  key         = env("LLMPROXY_API_KEY", "sk-llmproxy-dev")
  models      = ["*"]
  passthrough = ["*"]
  instances   = ["*"]
  storage_ops = ["*"]
  admin       = true
}

# A narrower key: two model families, reads of the dev storage, no
# transparent mode.
# api_key "reader" {
#   key_sha256  = "<hex sha-256 of the key>"
#   models      = ["echo", "gpt-*"]
#   instances   = ["dev"]
#   storage_ops = ["get", "head", "list"]
# }

# Keys managed at run time (docs/keys.md): with a store, admin keys
# create, change and revoke keys through /admin/v1/keys, and every AI
# request leaves a usage record (/admin/v1/usage). SQLite is a file beside
# this config; replicas share PostgreSQL. Without the block, only the keys
# above authenticate.
#
# store {
#   driver = "sqlite"          # or "postgres" with url = env("LLMPROXY_DATABASE_URL")
#   path   = "llmproxy.db"
# }

# Plugin binaries are found in plugins_dir as llmproxy-provider-<type> and
# llmproxy-storage-<type>. Pin one to a checksum (or another path) like so:
#
# plugin "provider-openai" {
#   sha256 = "3f1c…"             # the host refuses a binary that differs
#   path   = "/opt/llmproxy/llmproxy-provider-openai"
# }

# ---------------------------------------------------------------- providers
# An instance whose credentials are missing does not stop the host: it is
# reported as failed, with the reason, in /readyz, and logged at INFO with
# the variable that enables it. Instances that rely on ambient cloud
# identity are switched on by `enabled` instead. `llmproxy validate` checks
# every instance's config block against its plugin's schema.

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

# Secret stores are plugins too (llmproxy-secrets-<type>): a `secrets` block
# declares one, and a credential source names it with from "<block name>".
# A chain tries its sources in order: a source that has nothing here
# ("unavailable") passes to the next; one that fails (Vault refuses the
# login) stops the chain and is reported. /readyz shows, per credential,
# what each source said, never a value. Leased values are resolved again at
# about two thirds of their lifetime and pushed to the running plugin;
# file sources are watched, so a Kubernetes secret volume update is seen
# at once. Off until VAULT_ADDR is set.
secrets "vault" {
  type    = "vault"
  enabled = env("VAULT_ADDR", "") != ""
  config {
    address = env("VAULT_ADDR", "https://vault.internal:8200")
    auth    = "kubernetes"
    role    = "llmproxy"
  }
}

# Secrets read through the Kubernetes API with the pod's service account,
# in the pod's namespace only. Off outside a pod.
secrets "kubernetes" {
  type        = "kubernetes"
  enabled     = env("KUBERNETES_SERVICE_HOST", "") != ""
  inherit_env = ["KUBERNETES_SERVICE_*"]
}

# OpenAI with its key in Vault's KV v2, else in a Kubernetes secret, else in
# the environment; a store that is switched off counts as unavailable.
provider "openai_stores" {
  type    = "openai"
  enabled = env("VAULT_ADDR", "") != "" || env("KUBERNETES_SERVICE_HOST", "") != ""
  credential "api_key" {
    from "vault" {
      path  = "secret/data/llm/openai"
      field = "api_key"
    }
    from "kubernetes" {
      secret = "openai-api-key"
      key    = "api_key"
    }
    from "env" { name = "OPENAI_API_KEY" }
  }
}

# Bedrock on short-lived keys from Vault's AWS secrets engine: one read (one
# lease) serves the three credentials, re-read before the lease ends.
provider "bedrock_vault" {
  type    = "bedrock"
  enabled = env("VAULT_ADDR", "") != ""
  credential "access_key_id" {
    from "vault" {
      path  = "aws/creds/bedrock"
      field = "access_key"
    }
  }
  credential "secret_access_key" {
    from "vault" {
      path  = "aws/creds/bedrock"
      field = "secret_key"
    }
  }
  credential "session_token" {
    from "vault" {
      path  = "aws/creds/bedrock"
      field = "security_token"
    }
  }
  config {
    region = "us-east-1"
  }
}

# Vertex AI: a service-account key file through ADC (or GKE workload
# identity with enabled = true); the project defaults to the key's.
provider "vertex_us" {
  type        = "vertex"
  enabled     = env("GOOGLE_APPLICATION_CREDENTIALS", "") != ""
  inherit_env = ["GOOGLE_*"]
  config {
    location = "us-central1"
  }
}

# IBM watsonx.ai: an IBM Cloud API key, exchanged for IAM tokens inside
# the plugin (type = "ibm" is accepted too).
provider "ibm_watsonx" {
  type    = "watsonx"
  enabled = env("WATSONX_API_KEY", "") != ""
  credential "api_key" {
    from "env" { name = "WATSONX_API_KEY" }
  }
  config {
    url        = env("WATSONX_URL", "https://us-south.ml.cloud.ibm.com")
    project_id = env("WATSONX_PROJECT_ID", "")
  }
}

# OCI Generative AI: requests signed with the key of an OCI config file
# (type = "oracle" is accepted too). Use absolute paths in that file.
provider "oracle_ai" {
  type        = "oci"
  enabled     = env("OCI_CONFIG_FILE", "") != "" && env("OCI_COMPARTMENT_ID", "") != ""
  inherit_env = ["OCI_*"]
  config {
    auth           = "config_file"
    config_file    = env("OCI_CONFIG_FILE", "")
    profile        = env("OCI_CLI_PROFILE", "DEFAULT")
    compartment_id = env("OCI_COMPARTMENT_ID", "")
    region         = env("OCI_REGION", "")
  }
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
  # Largest object one upload may store (413 beyond it).
  max_object_bytes = 1073741824
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

# OpenTelemetry traces and metrics (README, "Observability"). Off unless an
# endpoint is set here or in OTEL_EXPORTER_OTLP_ENDPOINT; /metrics is always on.
#
# telemetry {
#   endpoint     = "localhost:4317"
#   protocol     = "grpc"
#   insecure     = true
#   sample_ratio = 1
# }

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
  # Move on to the next target when Bedrock sends nothing for 20 s.
  first_byte_timeout = "20s"
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

route "meta.*" {
  target "oracle_ai" {}
}

# Traffic control (docs/traffic.md): rate limits per key, model or instance,
# in memory or shared by every replica through Redis, and circuit breaking.
#
# limits {
#   redis = env("LIMITS_REDIS_URL", "")   # in memory when empty
#   limit "per-key" {
#     key = "*"
#     rpm = 600
#     tpm = 100000
#   }
# }
# circuit_breaker {
#   consecutive_failures = 5
#   cooldown             = "5s"
# }

# Stored responses of POST /v1/responses (docs/responses.md): kept for
# previous_response_id and GET/DELETE /v1/responses/{id}, each for the key
# that created it. Without this block nothing is kept and
# previous_response_id is refused.
#
# responses {
#   store     = "memory"   # per replica, lost on restart
#   retention = "24h"      # default 720h
# }
