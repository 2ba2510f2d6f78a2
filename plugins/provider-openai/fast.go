package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/llmproxy/llmproxy/sdk/provider"
	"github.com/llmproxy/llmproxy/sdk/relay"
)

// The unary calls (chat without streaming, embeddings, models) and the
// streams go through the lean client of sdk/relay, the one the host uses
// for calls it forwards on the plugin's plan. net/http stays for proxied
// upstreams, transparent mode and while the host traces.

// fastPool is the plugin's one pool of lean connections, shared by every
// configuration so that a key rotation keeps warm connections.
var fastPool = relay.SharedPool()

// fastUnary is unary over the lean client.
func (u *upstream) fastUnary(ctx context.Context, method, target string, body []byte, meta *provider.Meta) (*provider.Response, error) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	u.fastRequest(req, method, target, body, meta, "application/json")
	err := fastPool.RoundTrip(ctx, u.fast, req, resp, u.timeout, maxResponseBody)
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		return nil, relay.TooLarge("openai", maxResponseBody)
	case err != nil:
		return nil, fastError(ctx, err)
	}
	if code := resp.StatusCode(); code/100 != 2 {
		return nil, fastUpstreamError(resp)
	}
	return &provider.Response{Body: append([]byte(nil), resp.Body()...), Header: fastRelayed(resp)}, nil
}

// fastStream is the streamed chat call over the lean client: it relays
// the SSE body as relayStream does.
func (u *upstream) fastStream(ctx context.Context, target string, body []byte, meta *provider.Meta, w provider.ChunkWriter) error {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	u.fastRequest(req, http.MethodPost, target, body, meta, "text/event-stream")
	resp.StreamBody = true
	x, err := fastPool.Send(ctx, u.fast, req, resp, u.timeout, maxErrorBody)
	if err != nil {
		return fastError(ctx, err)
	}
	if code := resp.StatusCode(); code/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.BodyStream(), maxErrorBody))
		resp.SetBodyRaw(b)
		x.Finish(resp, false)
		return fastUpstreamError(resp)
	}
	if err := provider.StreamHeader(w, fastRelayed(resp)); err != nil {
		x.Finish(resp, false)
		return err
	}
	err = relayStream(ctx, relay.Body(resp.BodyStream()), w)
	if !x.Finish(resp, err == nil) && err == nil {
		return transportError(ctx, ctx.Err())
	}
	return err
}

// fastError maps a failure of the lean client as transportError does.
func fastError(ctx context.Context, err error) error {
	return transportError(ctx, relay.Timeout(err))
}

// fastUpstreamError is upstreamError for a fasthttp response whose body
// has been read.
func fastUpstreamError(resp *fasthttp.Response) error {
	return relay.UpstreamError(resp.StatusCode(), resp.Body(), func(name string) string {
		return string(resp.Header.Peek(name))
	}, time.Now())
}

// fastRelayed is relayHeaders for a fasthttp response.
func fastRelayed(resp *fasthttp.Response) map[string]string {
	var relayed map[string]string
	for k, name := range relayedHeaders {
		if v := resp.Header.Peek(k); len(v) > 0 {
			if relayed == nil {
				relayed = make(map[string]string, len(relayedHeaders))
			}
			relayed[name] = string(v)
		}
	}
	return relayed
}

// fastRequest fills req with the upstream request: the configured
// headers, the trace context of meta and body, if any.
func (u *upstream) fastRequest(req *fasthttp.Request, method, target string, body []byte, meta *provider.Meta, accept string) {
	req.SetRequestURI(target)
	req.Header.SetMethod(method)
	req.Header.DisableNormalizing()
	for k, v := range u.header {
		for _, s := range v {
			req.Header.Add(k, s)
		}
	}
	req.Header.Set("Accept", accept)
	if body != nil {
		req.Header.SetContentType("application/json")
		req.SetBodyRaw(body)
	}
	if meta != nil {
		for k, v := range meta.Trace {
			if k = strings.ToLower(k); k == "traceparent" || k == "tracestate" {
				req.Header.Set(k, v)
			}
		}
	}
}
