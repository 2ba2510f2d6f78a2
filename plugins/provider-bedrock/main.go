// Command llmproxy-provider-bedrock is the llmproxy provider plugin for
// Amazon Bedrock Runtime: Converse and ConverseStream for chat, InvokeModel
// for Anthropic models and for Titan and Cohere embeddings, and transparent
// mode with SigV4 re-signing.
package main

import "github.com/llmproxy/llmproxy/sdk/provider"

func main() { provider.Serve(New()) }
