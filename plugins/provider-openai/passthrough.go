package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httputil"
	"sync"

	"github.com/llmproxy/llmproxy/sdk/provider"
)

// Passthrough implements provider.Passthrougher (transparent mode). The
// native request, e.g. POST /v1/chat/completions, goes to the origin of
// base_url with the upstream key in place of the client's credentials and
// the configured organization, project and extra headers; the upstream's
// status, headers and body come back unchanged, flushed as they arrive so
// that SSE streams stream.
func (p *OpenAI) Passthrough(w http.ResponseWriter, r *http.Request) {
	u, err := p.settings()
	if err != nil {
		writeError(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), u.timeout)
	defer cancel()
	u.proxy.ServeHTTP(w, r.WithContext(ctx))
}

// clientCredentialHeaders are request headers that carry a caller's
// credentials or account selection; the upstream's own replace them.
var clientCredentialHeaders = []string{"Authorization", "Api-Key", "X-Api-Key", "Openai-Organization", "Openai-Project", "Cookie"}

// newProxy builds the reverse proxy of transparent mode for u.
func (u *upstream) newProxy() *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u.origin)
			h := pr.Out.Header
			for _, k := range clientCredentialHeaders {
				delete(h, k)
			}
			for k, v := range u.header {
				h[k] = v
			}
		},
		Transport:     provider.Transport(transport),
		FlushInterval: -1,
		BufferPool:    proxyBuffers{},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(r.Context().Err(), context.Canceled) {
				// The client went away; nobody reads an answer.
				return
			}
			writeError(w, transportError(r.Context(), err))
		},
	}
}

// writeError writes err as an OpenAI error body.
func writeError(w http.ResponseWriter, err error) {
	e := asOpenAIError(err)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.Status)
	_, _ = w.Write(e.JSON())
}

// proxyBuffers pools the copy buffers of the reverse proxy.
type proxyBuffers struct{}

var proxyBufferPool = sync.Pool{New: func() any {
	b := make([]byte, 32<<10)
	return &b
}}

// Get implements httputil.BufferPool.
func (proxyBuffers) Get() []byte { return *proxyBufferPool.Get().(*[]byte) }

// Put implements httputil.BufferPool.
func (proxyBuffers) Put(b []byte) { proxyBufferPool.Put(&b) }
