// Command llmproxy-provider-openai is the llmproxy provider plugin for the
// OpenAI API (and servers that speak it). It forwards OpenAI-format
// requests with the configured key, relays streams chunk by chunk, maps
// document parts to OpenAI file and text parts, and serves transparent
// mode by proxying native requests to the upstream origin.
package main

import "github.com/llmproxy/llmproxy/sdk/provider"

func main() { provider.Serve(&OpenAI{}) }
