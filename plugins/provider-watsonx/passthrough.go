package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
)

// maxPassthroughBody bounds a native request body; it is held in memory
// so that a call refused for an expired token can be sent again.
const maxPassthroughBody = 32 << 20

// hopHeaders are connection-level headers a proxy must not forward, plus
// the client-side credentials the plugin replaces.
var hopHeaders = []string{
	"Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer",
	"Transfer-Encoding", "Upgrade", "Host", "Content-Length", "Authorization", "X-Api-Key",
}

// Passthrough implements provider.Passthrougher: the native request goes
// to url + path unchanged, with the instance's IAM bearer token (and the
// configured version unless the client set one). The native response,
// streams included, is copied back as it arrives. A call refused with
// authentication_token_expired is sent once more with a new token.
func (w *Watsonx) Passthrough(rw http.ResponseWriter, r *http.Request) {
	s, err := w.settings()
	if err != nil {
		nativeError(rw, http.StatusServiceUnavailable, "service_unavailable", "the watsonx provider is not configured")
		return
	}
	var body []byte
	if r.Body != nil {
		body, err = io.ReadAll(io.LimitReader(r.Body, maxPassthroughBody+1))
		if err != nil {
			nativeError(rw, http.StatusBadRequest, "invalid_request", "reading the request body failed")
			return
		}
		if len(body) > maxPassthroughBody {
			nativeError(rw, http.StatusRequestEntityTooLarge, "request_too_large", "the request body is too large")
			return
		}
	}
	var resp *http.Response
	for attempt := 0; ; attempt++ {
		tok, err := s.tokens.Token(r.Context())
		if err != nil {
			nativeError(rw, http.StatusUnauthorized, "authentication_token_not_obtained", "the gateway could not obtain an IAM token for watsonx.ai")
			return
		}
		u := *s.baseURL
		u.Path = strings.TrimRight(u.Path, "/") + "/" + strings.TrimLeft(r.URL.Path, "/")
		q := r.URL.Query()
		if q.Get("version") == "" {
			q.Set("version", s.version)
		}
		u.RawQuery = q.Encode()
		var rd io.Reader
		if len(body) > 0 {
			rd = bytes.NewReader(body)
		}
		out, err := http.NewRequestWithContext(r.Context(), r.Method, u.String(), rd)
		if err != nil {
			nativeError(rw, http.StatusBadRequest, "invalid_request", "bad native request: "+err.Error())
			return
		}
		out.Header = r.Header.Clone()
		for _, h := range hopHeaders {
			out.Header.Del(h)
		}
		out.Header.Set("Authorization", "Bearer "+tok)
		resp, err = s.client.Do(out)
		if err != nil {
			status := http.StatusBadGateway
			var ne interface{ Timeout() bool }
			if errors.As(err, &ne) && ne.Timeout() {
				status = http.StatusGatewayTimeout
			}
			nativeError(rw, status, "upstream_unreachable", "the watsonx.ai request failed: "+err.Error())
			return
		}
		if resp.StatusCode != http.StatusUnauthorized {
			break
		}
		s.tokens.Invalidate(tok)
		if attempt > 0 {
			break
		}
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		resp.Body.Close()
		if parseErrorBody(resp.StatusCode, raw).code != codeTokenExpired {
			resp.Body = io.NopCloser(bytes.NewReader(raw))
			break
		}
	}
	defer resp.Body.Close()
	for k, vs := range resp.Header {
		if k == "Content-Length" || k == "Connection" || k == "Transfer-Encoding" || k == "Keep-Alive" {
			continue
		}
		rw.Header()[k] = append([]string(nil), vs...)
	}
	rw.WriteHeader(resp.StatusCode)
	flusher, _ := rw.(http.Flusher)
	buf := make([]byte, 32<<10)
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := rw.Write(buf[:n]); werr != nil {
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

// nativeError writes an error in watsonx.ai's own shape.
func nativeError(rw http.ResponseWriter, status int, code, msg string) {
	rw.Header().Set("Content-Type", "application/json")
	rw.WriteHeader(status)
	_ = json.NewEncoder(rw).Encode(errorBody{Errors: []apiError{{Code: code, Message: msg}}, StatusCode: status})
}
