package main

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
)

// hopHeaders are connection-level headers a proxy must not forward, plus
// the client-side credentials the plugin replaces.
var hopHeaders = []string{
	"Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer",
	"Transfer-Encoding", "Upgrade", "Host", "Content-Length",
	"Authorization", "X-Api-Key",
}

// Passthrough implements provider.Passthrougher: the native request goes
// to base_url + path unchanged with the instance's x-api-key, and an
// anthropic-version (and anthropic-beta) unless the client sent its own.
// The native response, streams included, is copied back as it arrives.
func (a *Anthropic) Passthrough(w http.ResponseWriter, r *http.Request) {
	s, err := a.settings()
	if err != nil {
		nativeError(w, http.StatusServiceUnavailable, "api_error", err.Error())
		return
	}
	u := *s.baseURL
	u.Path = strings.TrimRight(u.Path, "/") + "/" + strings.TrimLeft(r.URL.Path, "/")
	u.RawQuery = r.URL.RawQuery
	out, err := http.NewRequestWithContext(r.Context(), r.Method, u.String(), r.Body)
	if err != nil {
		nativeError(w, http.StatusBadRequest, "invalid_request_error", "bad native request: "+err.Error())
		return
	}
	out.ContentLength = r.ContentLength
	out.Header = r.Header.Clone()
	for _, h := range hopHeaders {
		out.Header.Del(h)
	}
	out.Header.Set("x-api-key", s.apiKey)
	if out.Header.Get("anthropic-version") == "" {
		out.Header.Set("anthropic-version", s.version)
	}
	if out.Header.Get("anthropic-beta") == "" && s.beta != "" {
		out.Header.Set("anthropic-beta", s.beta)
	}
	resp, err := s.client.Do(out)
	if err != nil {
		status := http.StatusBadGateway
		var ne interface{ Timeout() bool }
		if errors.As(err, &ne) && ne.Timeout() {
			status = http.StatusGatewayTimeout
		}
		nativeError(w, status, "api_error", "upstream request failed: "+err.Error())
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

// nativeError writes an error in the Messages API's own shape.
func nativeError(w http.ResponseWriter, status int, typ, msg string) {
	var eb errorBody
	eb.Type = "error"
	eb.Error.Type = typ
	eb.Error.Message = msg
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(eb)
}
