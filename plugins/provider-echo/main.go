// Command llmproxy-provider-echo is a provider plugin that needs no
// upstream: it answers every chat request with a reply derived from the
// request, so a fresh llmproxy serves real requests with no cloud account.
package main

import "github.com/llmproxy/llmproxy/sdk/provider"

func main() { provider.Serve(&Echo{}) }
