// Command llmproxy-provider-oci is the provider plugin for Oracle OCI
// Generative AI inference: it serves OpenAI chat requests (JSON and
// streams, tools, images, documents, JSON mode) from the GENERIC and
// COHERE chat formats, embeddings from embedText, and passes native
// requests through in transparent mode, re-signed with the instance's key.
package main

import "github.com/llmproxy/llmproxy/sdk/provider"

func main() { provider.Serve(&OCI{}) }
