package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
)

// bodyBuffer hands net/http a private copy of each request body. The AWS
// SDK's event-stream operations may close the body they passed down as soon
// as the response starts; when that races with net/http finishing the
// request write, closing the body fails and net/http tears the connection
// down, response stream included ("use of closed network connection" in
// the middle of a ConverseStream). Request bodies here are JSON of bounded
// size (the host limits them), so a copy is cheap.
type bodyBuffer struct {
	next http.RoundTripper
}

var _ http.RoundTripper = bodyBuffer{}

// RoundTrip implements http.RoundTripper.
func (b bodyBuffer) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return b.next.RoundTrip(r)
	}
	data, err := io.ReadAll(r.Body)
	r.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("read request body: %w", err)
	}
	c := r.Clone(r.Context())
	c.Body = io.NopCloser(bytes.NewReader(data))
	c.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
	return b.next.RoundTrip(c)
}
