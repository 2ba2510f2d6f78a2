package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
	"github.com/llmproxy/llmproxy/sdk/relay"
)

// maxErrorBody bounds how much of an upstream error body is read.
const maxErrorBody = relay.MaxErrorBody

// maxResponseBody bounds a non-streamed upstream response.
const maxResponseBody = relay.MaxResponseBody

var (
	acceptJSON  = []string{"application/json"}
	acceptSSE   = []string{"text/event-stream"}
	contentJSON = []string{"application/json"}
)

// do sends one request upstream with the configured headers and the
// trace context of meta. A transport failure comes back as an
// *openai.Error (502, or 504 on timeout) or as the context's error when
// the caller went away.
func (u *upstream) do(ctx context.Context, method, target string, body []byte, meta *provider.Meta, stream bool) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return nil, fmt.Errorf("openai: build upstream request: %w", err)
	}
	h := req.Header
	for k, v := range u.header {
		h[k] = v
	}
	if body != nil {
		h["Content-Type"] = contentJSON
	}
	if stream {
		h["Accept"] = acceptSSE
	} else {
		h["Accept"] = acceptJSON
	}
	if meta != nil {
		for k, v := range meta.Trace {
			if k = strings.ToLower(k); k == "traceparent" || k == "tracestate" {
				h.Set(k, v)
			}
		}
	}
	resp, err := u.client.Do(req)
	if err != nil {
		return nil, transportError(ctx, err)
	}
	return resp, nil
}

// transportError maps a failure to reach or read the upstream: the
// caller's cancellation stays a context error, timeouts become 504 and
// everything else 502.
func transportError(ctx context.Context, err error) error {
	return relay.TransportError(ctx, "openai", err)
}

// upstreamError turns a non-2xx upstream response into the *openai.Error
// the client sees, with relay.UpstreamError: the mapping the host uses
// for calls it forwards on the plan.
func upstreamError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, relay.MaxErrorBody))
	return relay.UpstreamError(resp.StatusCode, body, resp.Header.Get, time.Now())
}

// retryAfter reads retry-after-ms (milliseconds) or Retry-After (seconds
// or an HTTP date) from h; 0 when neither gives a positive delay.
func retryAfter(h http.Header, now time.Time) time.Duration {
	return relay.RetryAfter(h.Get("Retry-After-Ms"), h.Get("Retry-After"), now)
}

// relayedHeaders maps the upstream response headers worth relaying to
// the names the client sees.
var relayedHeaders = map[string]string{
	"X-Request-Id":                   "x-upstream-request-id",
	"X-Ratelimit-Limit-Requests":     "x-ratelimit-limit-requests",
	"X-Ratelimit-Limit-Tokens":       "x-ratelimit-limit-tokens",
	"X-Ratelimit-Remaining-Requests": "x-ratelimit-remaining-requests",
	"X-Ratelimit-Remaining-Tokens":   "x-ratelimit-remaining-tokens",
	"X-Ratelimit-Reset-Requests":     "x-ratelimit-reset-requests",
	"X-Ratelimit-Reset-Tokens":       "x-ratelimit-reset-tokens",
}

// relayHeaders picks the relayed headers out of h; nil when there are
// none.
func relayHeaders(h http.Header) map[string]string {
	var out map[string]string
	for k, v := range h {
		name, ok := relayedHeaders[k]
		if !ok || len(v) == 0 {
			continue
		}
		if out == nil {
			out = make(map[string]string, len(relayedHeaders))
		}
		out[name] = v[0]
	}
	return out
}

// readBody reads a non-streamed response body, sized by Content-Length
// when the upstream sent one.
func readBody(ctx context.Context, resp *http.Response) ([]byte, error) {
	if n := resp.ContentLength; n >= 0 && n <= maxResponseBody {
		buf := make([]byte, n)
		if _, err := io.ReadFull(resp.Body, buf); err != nil {
			return nil, transportError(ctx, err)
		}
		return buf, nil
	}
	buf, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody+1))
	if err != nil {
		return nil, transportError(ctx, err)
	}
	if len(buf) > maxResponseBody {
		return nil, relay.TooLarge("openai", maxResponseBody)
	}
	return buf, nil
}

// asOpenAIError returns err as an *openai.Error, a 502 upstream_error
// when it is not one.
func asOpenAIError(err error) *openai.Error {
	var e *openai.Error
	if errors.As(err, &e) {
		return e
	}
	return openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "upstream_error", err.Error())
}
