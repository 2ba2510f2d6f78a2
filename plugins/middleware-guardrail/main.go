// Command llmproxy-middleware-guardrail is a middleware plugin: it
// vetoes chat requests that match deny lists and masks e-mail addresses,
// phone numbers and card numbers in requests and, optionally, answers.
package main

import "github.com/llmproxy/llmproxy/sdk/middleware"

func main() { middleware.Serve(&Guardrail{}) }
