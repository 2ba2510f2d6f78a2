module github.com/llmproxy/llmproxy/test

go 1.26.0

require (
	github.com/anthropics/anthropic-sdk-go/v2 v2.17.0
	github.com/chromedp/chromedp v0.23.1
	github.com/hashicorp/go-plugin v1.8.0
	github.com/llmproxy/llmproxy/plugins/provider-anthropic v0.0.0
	github.com/llmproxy/llmproxy/plugins/provider-azure v0.0.0
	github.com/llmproxy/llmproxy/plugins/provider-bedrock v0.0.0
	github.com/llmproxy/llmproxy/plugins/provider-oci v0.0.0
	github.com/llmproxy/llmproxy/plugins/provider-openai v0.0.0
	github.com/llmproxy/llmproxy/plugins/provider-vertex v0.0.0
	github.com/llmproxy/llmproxy/plugins/provider-watsonx v0.0.0
	github.com/llmproxy/llmproxy/plugins/secrets-azure-keyvault v0.0.0
	github.com/llmproxy/llmproxy/plugins/secrets-gcp-secretmanager v0.0.0
	github.com/llmproxy/llmproxy/plugins/secrets-kubernetes v0.0.0
	github.com/llmproxy/llmproxy/plugins/secrets-vault v0.0.0
	github.com/llmproxy/llmproxy/sdk v0.0.0
	github.com/openai/openai-go/v3 v3.98.0
	github.com/valyala/fasthttp v1.78.0
	go.opentelemetry.io/proto/otlp v1.11.0
	google.golang.org/grpc v1.85.0
)

require (
	github.com/aws/aws-sdk-go-v2 v1.48.0
	github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream v1.7.27 // indirect
	github.com/aws/smithy-go v1.28.9 // indirect
)

require (
	cloud.google.com/go/iam v1.14.0 // indirect
	cloud.google.com/go/secretmanager v1.24.0 // indirect
	github.com/agext/levenshtein v1.2.1 // indirect
	github.com/apparentlymart/go-textseg/v15 v15.0.0 // indirect
	github.com/apparentlymart/go-textseg/v17 v17.0.1 // indirect
	github.com/bahlo/generic-list-go v0.2.0 // indirect
	github.com/buger/jsonparser v1.1.2 // indirect
	github.com/cenkalti/backoff/v5 v5.0.3 // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/chromedp/cdproto v0.160.1 // indirect
	github.com/coder/websocket v1.8.15 // indirect
	github.com/fatih/color v1.18.0 // indirect
	github.com/go-json-experiment/json v0.0.0-20260213210345-44df1a37e875 // indirect
	github.com/go-logr/logr v1.4.4 // indirect
	github.com/go-logr/stdr v1.2.2 // indirect
	github.com/golang-jwt/jwt/v5 v5.3.1 // indirect
	github.com/golang/protobuf v1.5.4 // indirect
	github.com/google/uuid v1.6.0 // indirect
	github.com/grpc-ecosystem/grpc-gateway/v2 v2.30.0 // indirect
	github.com/hashicorp/go-hclog v1.6.3 // indirect
	github.com/hashicorp/hcl/v2 v2.25.0 // indirect
	github.com/hashicorp/yamux v0.1.2 // indirect
	github.com/invopop/jsonschema v0.14.0 // indirect
	github.com/klauspost/compress v1.20.3 // indirect
	github.com/mattn/go-colorable v0.1.14 // indirect
	github.com/mattn/go-isatty v0.0.20 // indirect
	github.com/mitchellh/go-wordwrap v1.0.1 // indirect
	github.com/molecule-man/go-brrr v1.3.1 // indirect
	github.com/oklog/run v1.1.0 // indirect
	github.com/pb33f/ordered-map/v2 v2.3.1 // indirect
	github.com/standard-webhooks/standard-webhooks/libraries v0.0.1 // indirect
	github.com/tidwall/gjson v1.20.2 // indirect
	github.com/tidwall/match v1.1.1 // indirect
	github.com/tidwall/pretty v1.3.0 // indirect
	github.com/tidwall/sjson v1.2.9 // indirect
	github.com/valyala/bytebufferpool v1.0.0 // indirect
	github.com/zclconf/go-cty v1.19.0 // indirect
	go.opentelemetry.io/auto/sdk v1.2.1 // indirect
	go.opentelemetry.io/otel v1.47.0 // indirect
	go.opentelemetry.io/otel/exporters/otlp/otlptrace v1.47.0 // indirect
	go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc v1.47.0 // indirect
	go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp v1.47.0 // indirect
	go.opentelemetry.io/otel/log v1.47.0 // indirect
	go.opentelemetry.io/otel/metric v1.47.0 // indirect
	go.opentelemetry.io/otel/sdk v1.47.0 // indirect
	go.opentelemetry.io/otel/trace v1.47.0 // indirect
	go.yaml.in/yaml/v4 v4.0.0-rc.2 // indirect
	golang.org/x/mod v0.42.0 // indirect
	golang.org/x/net v0.62.0 // indirect
	golang.org/x/sync v0.24.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
	golang.org/x/text v0.43.0 // indirect
	golang.org/x/tools v0.51.0 // indirect
	google.golang.org/genproto v0.0.0-20261012220534-4341edf3f941 // indirect
	google.golang.org/genproto/googleapis/api v0.0.0-20261012220534-4341edf3f941 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20261012220534-4341edf3f941 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)

replace github.com/llmproxy/llmproxy/sdk => ../sdk

replace github.com/llmproxy/llmproxy/plugins/provider-openai => ../plugins/provider-openai

replace github.com/llmproxy/llmproxy/plugins/provider-anthropic => ../plugins/provider-anthropic

replace github.com/llmproxy/llmproxy/plugins/provider-azure => ../plugins/provider-azure

replace github.com/llmproxy/llmproxy/plugins/provider-bedrock => ../plugins/provider-bedrock

replace github.com/llmproxy/llmproxy/plugins/provider-watsonx => ../plugins/provider-watsonx

replace github.com/llmproxy/llmproxy/plugins/provider-vertex => ../plugins/provider-vertex

replace github.com/llmproxy/llmproxy/plugins/provider-oci => ../plugins/provider-oci

replace github.com/llmproxy/llmproxy/plugins/secrets-vault => ../plugins/secrets-vault

replace github.com/llmproxy/llmproxy/plugins/secrets-kubernetes => ../plugins/secrets-kubernetes

replace github.com/llmproxy/llmproxy/sdk/relay => ../sdk/relay

replace github.com/llmproxy/llmproxy/plugins/secrets-azure-keyvault => ../plugins/secrets-azure-keyvault

replace github.com/llmproxy/llmproxy/plugins/secrets-gcp-secretmanager => ../plugins/secrets-gcp-secretmanager
