// Command llmproxy-provider-anthropic is the provider plugin for the
// Anthropic Messages API: it serves OpenAI chat requests (JSON and
// streams, tools, images, documents, JSON mode) from Claude models, lists
// the models, and passes native requests through in transparent mode.
package main

import "github.com/llmproxy/llmproxy/sdk/provider"

func main() { provider.Serve(&Anthropic{}) }
