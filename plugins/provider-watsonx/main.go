// Command llmproxy-provider-watsonx is the provider plugin for IBM
// watsonx.ai: it serves OpenAI chat requests (JSON and streams, tools,
// images, documents as text, JSON mode) and embeddings from foundation
// models and deployments, authenticates with IAM tokens exchanged for an
// IBM Cloud API key, lists the foundation models, and passes native
// requests through in transparent mode with the bearer token injected.
package main

import "github.com/llmproxy/llmproxy/sdk/provider"

func main() { provider.Serve(&Watsonx{}) }
