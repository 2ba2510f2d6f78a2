package main

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/llmproxy/llmproxy/sdk/openai"
)

// hopHeaders are connection-level headers a proxy must not forward, plus
// the client-side credentials the plugin replaces.
var hopHeaders = []string{
	"Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer",
	"Transfer-Encoding", "Upgrade", "Host", "Content-Length",
	"Authorization", "X-Goog-Api-Key", "X-Api-Key",
}

// Passthrough implements provider.Passthrougher: a native Vertex AI
// request (e.g. POST /v1/projects/p/locations/l/publishers/google/models/m:generateContent)
// goes to the endpoint unchanged with the instance's access token (or API
// key); the native response, streams included, is copied back as it
// arrives. Only /v1/... and /v1beta1/... paths are forwarded.
func (v *Vertex) Passthrough(w http.ResponseWriter, r *http.Request) {
	s, err := v.settings()
	if err != nil {
		nativeError(w, http.StatusServiceUnavailable, "UNAVAILABLE", err.Error())
		return
	}
	p := "/" + strings.TrimLeft(r.URL.Path, "/")
	if !strings.HasPrefix(p, "/v1/") && !strings.HasPrefix(p, "/v1beta1/") || strings.Contains(p, "/../") || strings.HasSuffix(p, "/..") {
		nativeError(w, http.StatusNotFound, "NOT_FOUND", "transparent mode forwards only /v1/... and /v1beta1/... paths")
		return
	}
	u := *s.baseURL
	u.Path = strings.TrimRight(u.Path, "/") + p
	u.RawPath = ""
	u.RawQuery = r.URL.RawQuery
	out, err := http.NewRequestWithContext(r.Context(), r.Method, u.String(), r.Body)
	if err != nil {
		nativeError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "bad native request: "+err.Error())
		return
	}
	out.ContentLength = r.ContentLength
	out.Header = r.Header.Clone()
	for _, h := range hopHeaders {
		out.Header.Del(h)
	}
	if err := s.auth.authorize(r.Context(), out); err != nil {
		status := http.StatusBadGateway
		var oe *openai.Error
		if errors.As(err, &oe) {
			status = oe.Status
		}
		nativeError(w, status, "UNAUTHENTICATED", "could not obtain an access token for the instance")
		return
	}
	resp, err := s.client.Do(out)
	if err != nil {
		status := http.StatusBadGateway
		var ne interface{ Timeout() bool }
		if errors.As(err, &ne) && ne.Timeout() {
			status = http.StatusGatewayTimeout
		}
		nativeError(w, status, "UNAVAILABLE", "upstream request failed")
		return
	}
	defer resp.Body.Close()
	for k, vs := range resp.Header {
		if k == "Content-Length" || k == "Connection" || k == "Transfer-Encoding" || k == "Keep-Alive" {
			continue
		}
		w.Header()[k] = append([]string(nil), vs...)
	}
	w.WriteHeader(resp.StatusCode)
	flusher, _ := w.(http.Flusher)
	buf := make([]byte, 32<<10)
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
		if rerr != nil {
			return
		}
	}
}

// nativeError writes an error in the google.rpc shape.
func nativeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(errorEnvelope{Error: &rpcStatus{Code: status, Message: msg, Status: code}})
}
