// Command llmproxy-middleware-logger is a middleware plugin: it writes
// one redacted JSON line per chat request and per response to a file or
// to the host's log. API keys and secrets are never written.
package main

import "github.com/llmproxy/llmproxy/sdk/middleware"

func main() { middleware.Serve(&Logger{}) }
