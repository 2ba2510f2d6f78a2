// Command llmproxy-provider-azure is the Azure OpenAI provider plugin: it
// serves OpenAI chat completions, embeddings, model lists and transparent
// mode from an Azure OpenAI resource's deployments, authenticated with a
// resource key or a Microsoft Entra ID token.
package main

import "github.com/llmproxy/llmproxy/sdk/provider"

func main() { provider.Serve(&Azure{}) }
