// Package e2e drives the built llmproxy and plugin binaries over HTTP the
// way clients do: plain HTTP, the official OpenAI SDKs for Go and Node,
// plugin crashes, checksum pins and host death.
package e2e
