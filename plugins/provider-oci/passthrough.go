package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// maxPassthroughBody bounds a transparent-mode request body.
const maxPassthroughBody = 64 << 20

// forwardedRequestHeaders are the client headers transparent mode passes
// upstream. Credentials (Authorization, Date, x-content-sha256) are never
// forwarded: the plugin signs anew.
var forwardedRequestHeaders = []string{"Content-Type", "Accept", "opc-request-id", "opc-retry-token"}

// hopHeaders are response headers not relayed to the client.
var hopHeaders = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Transfer-Encoding": true, "Content-Length": true,
	"Proxy-Authenticate": true, "Trailer": true, "Upgrade": true,
}

// Passthrough implements provider.Passthrougher: a native request (e.g.
// POST /20231130/actions/chat) is forwarded to the instance's inference
// endpoint, signed with the instance's key by oci-go-sdk's signer, and the
// native response, streams included, is relayed as it arrives.
func (o *OCI) Passthrough(w http.ResponseWriter, r *http.Request) {
	s, err := o.settings()
	if err != nil {
		writeOCIError(w, http.StatusServiceUnavailable, "ServiceUnavailable", "the oci provider instance is not configured")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxPassthroughBody))
	if err != nil {
		writeOCIError(w, http.StatusRequestEntityTooLarge, "InvalidParameter", "request body too large or unreadable")
		return
	}
	p := r.URL.EscapedPath()
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	if strings.Contains(p, "/../") || strings.HasSuffix(p, "/..") {
		writeOCIError(w, http.StatusBadRequest, "InvalidParameter", "path must not contain .. segments")
		return
	}
	target, err := url.Parse(strings.TrimRight(s.endpoint.String(), "/") + p)
	if err != nil {
		writeOCIError(w, http.StatusBadRequest, "InvalidParameter", "invalid path")
		return
	}
	target.RawQuery = r.URL.RawQuery
	ctx := r.Context()
	var rd io.Reader
	if len(body) > 0 || r.Method == http.MethodPost || r.Method == http.MethodPut {
		rd = bytes.NewReader(body)
	}
	out, err := http.NewRequestWithContext(ctx, r.Method, target.String(), rd)
	if err != nil {
		writeOCIError(w, http.StatusBadRequest, "InvalidParameter", "invalid request")
		return
	}
	for _, h := range forwardedRequestHeaders {
		if v := r.Header.Values(h); len(v) > 0 {
			out.Header[http.CanonicalHeaderKey(h)] = v
		}
	}
	if rd != nil && out.Header.Get("Content-Type") == "" {
		out.Header.Set("Content-Type", "application/json")
	}
	if err := s.sign(out); err != nil {
		writeOCIError(w, http.StatusBadGateway, "NotAuthenticated", "the instance could not sign the upstream request")
		return
	}
	resp, err := s.client.Do(out)
	if err != nil {
		status := http.StatusBadGateway
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			status = http.StatusGatewayTimeout
		}
		writeOCIError(w, status, "InternalServerError", "upstream request failed")
		return
	}
	defer resp.Body.Close()
	for k, vs := range resp.Header {
		if !hopHeaders[http.CanonicalHeaderKey(k)] {
			w.Header()[k] = vs
		}
	}
	w.WriteHeader(resp.StatusCode)
	relayBody(w, resp.Body)
}

// relayBody copies an upstream body to w, flushing after every read so that
// streams reach the client as they arrive.
func relayBody(w http.ResponseWriter, body io.Reader) {
	flusher, _ := w.(http.Flusher)
	buf := make([]byte, 32<<10)
	for {
		n, err := body.Read(buf)
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

// writeOCIError writes an error in OCI's native shape.
func writeOCIError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(ociError{Code: code, Message: msg})
}
