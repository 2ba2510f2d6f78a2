package main

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/llmproxy/llmproxy/sdk/openai"
)

// hopHeaders are connection-level headers a proxy does not forward.
var hopHeaders = []string{
	"Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Connection",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// clientAuthHeaders are dropped from native requests: the plugin sends its
// own credential.
var clientAuthHeaders = []string{"Api-Key", "Authorization"}

// Passthrough implements provider.Passthrougher for Azure's native paths
// below /openai/ (deployments, models, the /openai/v1 API). The request
// goes to the resource as it came, with the client's api-key and
// Authorization headers replaced by the instance's credential and the
// configured api-version added when the query has none (except under
// /openai/v1/, which takes none). The response, streams included, is
// copied back unchanged, flushing as it arrives.
func (a *Azure) Passthrough(w http.ResponseWriter, r *http.Request) {
	in, err := a.instance()
	if err != nil {
		writePassthroughError(w, err)
		return
	}
	path := r.URL.Path
	if !strings.HasPrefix(path, "/openai/") || hasDotSegment(path) {
		writePassthroughError(w, openai.NewError(http.StatusNotFound, openai.TypeNotFound, "404",
			"transparent mode serves Azure OpenAI paths below /openai/ only"))
		return
	}
	target := *in.endpoint
	target.Path = in.endpoint.Path + path
	target.RawQuery = r.URL.RawQuery
	if q := r.URL.Query(); q.Get("api-version") == "" && !strings.HasPrefix(path, "/openai/v1/") {
		q.Set("api-version", in.apiVersion)
		target.RawQuery = q.Encode()
	}
	ctx := r.Context()
	req, err := http.NewRequestWithContext(ctx, r.Method, target.String(), r.Body)
	if err != nil {
		writePassthroughError(w, openai.InvalidRequest("", "bad native request: "+err.Error()))
		return
	}
	req.ContentLength = r.ContentLength
	req.Header = r.Header.Clone()
	for _, h := range append(hopHeaders, clientAuthHeaders...) {
		req.Header.Del(h)
	}
	req.Header.Del("Host")
	req.Header.Del("Content-Length")
	if err := in.auth.authorize(ctx, req.Header); err != nil {
		writePassthroughError(w, err)
		return
	}
	resp, err := in.client.Do(req)
	if err != nil {
		writePassthroughError(w, transportError(ctx, "azure request", err))
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized {
		in.auth.invalidate()
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	for _, h := range hopHeaders {
		w.Header().Del(h)
	}
	w.Header().Del("Content-Length")
	w.WriteHeader(resp.StatusCode)
	copyFlushing(w, resp.Body)
}

// copyFlushing copies src to w, flushing after every read so that streamed
// events reach the client as they arrive. It stops when either side fails.
func copyFlushing(w http.ResponseWriter, src io.Reader) {
	flusher, _ := w.(http.Flusher)
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
		if err != nil {
			return
		}
	}
}

// writePassthroughError answers a native request the plugin could not
// forward, in the OpenAI error shape Azure uses too.
func writePassthroughError(w http.ResponseWriter, err error) {
	var oe *openai.Error
	if !errors.As(err, &oe) {
		oe = openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "", err.Error())
	}
	body, _ := json.Marshal(oe.Body())
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(oe.Status)
	w.Write(body)
}

// hasDotSegment reports whether path has a "." or ".." segment.
func hasDotSegment(path string) bool {
	for _, seg := range strings.Split(path, "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}
