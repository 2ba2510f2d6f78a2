// Command llmproxy-extractor-document is an extractor plugin: it turns
// PDF and HTML documents into plain text in a process of its own, so
// that hostile documents are never parsed inside the llmproxy host.
package main

import "github.com/llmproxy/llmproxy/sdk/extractor"

func main() { extractor.Serve(&Document{}) }
