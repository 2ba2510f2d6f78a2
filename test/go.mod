module github.com/llmproxy/llmproxy/test

go 1.26.0

require (
	github.com/llmproxy/llmproxy/plugins/provider-anthropic v0.0.0
	github.com/llmproxy/llmproxy/plugins/provider-azure v0.0.0
	github.com/llmproxy/llmproxy/plugins/provider-bedrock v0.0.0
	github.com/llmproxy/llmproxy/plugins/provider-oci v0.0.0
	github.com/llmproxy/llmproxy/plugins/provider-openai v0.0.0
	github.com/llmproxy/llmproxy/plugins/provider-vertex v0.0.0
	github.com/llmproxy/llmproxy/plugins/provider-watsonx v0.0.0
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
	github.com/coder/websocket v1.8.15 // indirect
	github.com/grpc-ecosystem/grpc-gateway/v2 v2.30.0 // indirect
	github.com/klauspost/compress v1.20.3 // indirect
	github.com/molecule-man/go-brrr v1.3.1 // indirect
	github.com/tidwall/gjson v1.20.2 // indirect
	github.com/tidwall/match v1.1.1 // indirect
	github.com/tidwall/pretty v1.3.0 // indirect
	github.com/tidwall/sjson v1.2.9 // indirect
	github.com/valyala/bytebufferpool v1.0.0 // indirect
	golang.org/x/net v0.62.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
	golang.org/x/text v0.43.0 // indirect
	google.golang.org/genproto/googleapis/api v0.0.0-20260928230214-8a89bd6388cc // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20260928230214-8a89bd6388cc // indirect
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
