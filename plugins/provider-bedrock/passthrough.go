package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// maxPassthroughBody bounds a transparent-mode request body.
const maxPassthroughBody = 64 << 20

// forwardedRequestHeaders are the client headers transparent mode passes
// upstream, besides X-Amzn-Bedrock-* ones. Credentials (Authorization,
// X-Amz-*) are never forwarded: the plugin re-signs.
var forwardedRequestHeaders = []string{"Content-Type", "Accept", "Content-Encoding"}

// hopHeaders are response headers not relayed to the client.
var hopHeaders = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Transfer-Encoding": true, "Content-Length": true,
	"Proxy-Authenticate": true, "Trailer": true, "Upgrade": true,
}

// Passthrough implements provider.Passthrougher: a native runtime request
// (e.g. POST /model/{id}/converse-stream) is forwarded to the instance's
// endpoint, re-signed with SigV4 for service "bedrock" in the instance's
// region (or given the Bedrock API key), and the native response, event
// streams included, is relayed unchanged as it arrives — except that
// InvokeModelWithResponseStream asked for with Accept: text/event-stream
// is relayed as server-sent events (see wantsSSE).
func (b *Bedrock) Passthrough(w http.ResponseWriter, r *http.Request) {
	inst, err := b.current()
	if err != nil {
		writeAWSError(w, http.StatusServiceUnavailable, "ServiceUnavailableException", "the bedrock provider instance is not configured")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxPassthroughBody))
	if err != nil {
		writeAWSError(w, http.StatusRequestEntityTooLarge, "ValidationException", "request body too large or unreadable")
		return
	}
	ctx, cancel := inst.withTimeout(r.Context())
	defer cancel()
	out, err := inst.upstreamRequest(ctx, r, body)
	if err != nil {
		writeAWSError(w, http.StatusBadRequest, "ValidationException", err.Error())
		return
	}
	if err := inst.authorize(ctx, out, body, b.clock()); err != nil {
		writeAWSError(w, http.StatusBadGateway, "InternalServerException", "cannot authorize the upstream request: "+err.Error())
		return
	}
	resp, err := inst.http.Do(out)
	if err != nil {
		status := http.StatusBadGateway
		if errors.Is(err, context.DeadlineExceeded) {
			status = http.StatusGatewayTimeout
		}
		writeAWSError(w, status, "InternalServerException", "upstream request failed: "+err.Error())
		return
	}
	defer resp.Body.Close()
	sse := wantsSSE(r) && resp.StatusCode == http.StatusOK
	for k, vs := range resp.Header {
		if !hopHeaders[http.CanonicalHeaderKey(k)] {
			w.Header()[k] = vs
		}
	}
	if sse {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		w.WriteHeader(resp.StatusCode)
		relaySSE(w, resp.Body)
		return
	}
	w.WriteHeader(resp.StatusCode)
	relayBody(w, resp.Body)
}

// upstreamRequest builds the forwarded request for r below the endpoint.
func (inst *instance) upstreamRequest(ctx context.Context, r *http.Request, body []byte) (*http.Request, error) {
	p := r.URL.EscapedPath()
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	if strings.Contains(p, "/../") || strings.HasSuffix(p, "/..") {
		return nil, errors.New("path must not contain .. segments")
	}
	target, err := url.Parse(inst.endpoint + p)
	if err != nil {
		return nil, err
	}
	target.RawQuery = r.URL.RawQuery
	out, err := http.NewRequestWithContext(ctx, r.Method, target.String(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	for _, h := range forwardedRequestHeaders {
		if v := r.Header.Values(h); len(v) > 0 {
			out.Header[h] = v
		}
	}
	if wantsSSE(r) {
		out.Header.Set("Accept", "application/vnd.amazon.eventstream")
	}
	for k, v := range r.Header {
		if strings.HasPrefix(http.CanonicalHeaderKey(k), "X-Amzn-Bedrock-") {
			out.Header[http.CanonicalHeaderKey(k)] = v
		}
	}
	return out, nil
}

// authorize adds the instance's credentials to an upstream request: the
// API key as a bearer token, or a SigV4 signature for service "bedrock" in
// the instance's region.
func (inst *instance) authorize(ctx context.Context, req *http.Request, body []byte, now time.Time) error {
	if inst.apiKey != "" {
		if req.URL.Scheme != "https" && !isLoopback(req.URL.Hostname()) {
			return fmt.Errorf("refusing to send the API key over plain HTTP to %s", req.URL.Host)
		}
		req.Header.Set("Authorization", "Bearer "+inst.apiKey)
		return nil
	}
	creds, err := inst.creds.Retrieve(ctx)
	if err != nil {
		return fmt.Errorf("resolve AWS credentials: %w", err)
	}
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), signingService, inst.Region, now); err != nil {
		return fmt.Errorf("sign request: %w", err)
	}
	return nil
}

// relayBody copies an upstream body to w, flushing after every read so that
// event streams reach the client as they arrive.
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

// writeAWSError writes an error in Bedrock's native shape.
func writeAWSError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-ErrorType", code)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": msg})
}
