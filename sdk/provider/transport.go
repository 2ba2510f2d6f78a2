package provider

import (
	"net/http"

	"github.com/llmproxy/llmproxy/sdk/internal/tracing"
)

// Transport wraps base (nil: http.DefaultTransport) for a plugin's
// upstream HTTP client, so that requests made with a call's context
// continue the host's trace: each carries the W3C traceparent header and,
// when the host has tracing on, is recorded as a client span with
// server.address under the plugin's span for the call. Neither the URL's
// query nor any header is recorded. With tracing off the wrapper only
// checks a flag and calls base.
//
//	client := &http.Client{Transport: provider.Transport(myTransport)}
//	req, _ := http.NewRequestWithContext(ctx, ...) // ctx: the call's
func Transport(base http.RoundTripper) http.RoundTripper { return tracing.Transport(base) }

// Tracing reports whether the host has tracing on for this plugin. A
// plugin with an upstream client of its own (not an http.Client wrapped by
// Transport) sends its requests through a wrapped client while Tracing is
// true, so that they carry the trace.
func Tracing() bool { return tracing.Enabled() }
