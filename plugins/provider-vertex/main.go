// Command llmproxy-provider-vertex is the provider plugin for Google
// Vertex AI Gemini: it serves OpenAI chat requests (JSON and streams,
// tools, images, documents, JSON mode) from Gemini models through
// :generateContent and :streamGenerateContent, embeddings through
// :predict, lists the models, and passes native requests through in
// transparent mode with the instance's access token.
package main

import "github.com/llmproxy/llmproxy/sdk/provider"

func main() { provider.Serve(&Vertex{}) }
