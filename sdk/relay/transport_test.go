package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// newTransport is a Transport on a pool of its own whose fallback
// counts the requests it carries.
func newTransport(fallbacks *atomic.Int32) *Transport {
	return &Transport{
		Pool: NewPool(4, time.Minute),
		Fallback: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			fallbacks.Add(1)
			return http.DefaultTransport.RoundTrip(r)
		}),
		ResponseHeaderTimeout: 10 * time.Second,
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// countingServer serves h and counts the connections it accepts.
func countingServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &conns
}

// stallingServer answers with header and prefix (none when empty), then
// holds the answer open until the client goes away or the test ends.
func stallingServer(t *testing.T, header http.Header, prefix string) *httptest.Server {
	t.Helper()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if prefix != "" {
			for k, v := range header {
				w.Header()[k] = v
			}
			io.WriteString(w, prefix)
			w.(http.Flusher).Flush()
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	return srv
}

// TestTransportSendsWhatNetHTTPSends: the upstream sees the same request
// line, escaped path, Host, headers and body through Transport as through
// net/http, and the answer reads the same; a kept-alive connection is
// reused.
func TestTransportSendsWhatNetHTTPSends(t *testing.T) {
	type seen struct {
		method, uri, host, ctype, key string
		length                        int64
		body                          string
	}
	got := make(chan seen, 8)
	srv, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, r.RequestURI, r.Host, r.Header.Get("Content-Type"), r.Header.Get("X-Api-Key"), r.ContentLength, string(b)}
		w.Header().Set("Request-Id", "req_1")
		w.Header().Add("X-Multi", "a")
		w.Header().Add("X-Multi", "b")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"ok":true}`)
	})

	var fallbacks atomic.Int32
	lean := newTransport(&fallbacks)
	for i, rt := range []http.RoundTripper{http.DefaultTransport, lean, lean} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/model/anthropic.claude-3%3A0/converse?a=b%20c", strings.NewReader(`{"x":1}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Api-Key", "k")
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatalf("round trip %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 201 || string(b) != `{"ok":true}` || resp.Header.Get("Request-Id") != "req_1" ||
			strings.Join(resp.Header.Values("X-Multi"), ",") != "a,b" || resp.ContentLength != 11 {
			t.Errorf("round trip %d: answer %d %q %v (length %d)", i, resp.StatusCode, b, resp.Header, resp.ContentLength)
		}
		s := <-got
		want := seen{"POST", "/model/anthropic.claude-3%3A0/converse?a=b%20c", strings.TrimPrefix(srv.URL, "http://"), "application/json", "k", 7, `{"x":1}`}
		if s != want {
			t.Errorf("round trip %d: upstream saw %+v; want %+v", i, s, want)
		}
	}
	// net/http's connection, then one for both lean requests.
	if n := conns.Load(); n != 2 {
		t.Errorf("upstream saw %d connections; want 2 (the lean client reuses its connection)", n)
	}
	if n := fallbacks.Load(); n != 0 {
		t.Errorf("%d requests fell back to net/http; want 0", n)
	}
}

// TestTransportStreams: a chunked answer arrives piece by piece while the
// upstream is still writing, and a cancelled context ends a blocked read
// and closes the connection.
func TestTransportStreams(t *testing.T) {
	release := make(chan struct{})
	gone := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: 1\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			close(gone)
			return
		}
		io.WriteString(w, "data: 2\n\n")
	}))
	defer srv.Close()
	defer close(release)

	var fallbacks atomic.Int32
	tr := newTransport(&fallbacks)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, strings.NewReader("{}"))
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 64)
	n, err := resp.Body.Read(buf)
	if err != nil || string(buf[:n]) != "data: 1\n\n" {
		t.Fatalf("first read = %q, %v; want the first event before the upstream wrote the second", buf[:n], err)
	}
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	_, err = resp.Body.Read(buf)
	if err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("read after cancel = %v after %v; want an error at once", err, time.Since(start))
	}
	select {
	case <-gone:
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream did not see the request abandoned")
	}
}

// TestTransportCloseDuringRead: closing the body from another goroutine
// ends a blocked read, as with net/http.
func TestTransportCloseDuringRead(t *testing.T) {
	srv := stallingServer(t, nil, "first")

	var fallbacks atomic.Int32
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	resp, err := newTransport(&fallbacks).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	if n, err := resp.Body.Read(buf); err != nil || string(buf[:n]) != "first" {
		t.Fatalf("first read = %q, %v", buf[:n], err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := resp.Body.Read(buf)
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	resp.Body.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Error("blocked read returned no error after Close")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end a blocked read")
	}
	if _, err := resp.Body.Read(buf); err == nil {
		t.Error("read after Close returned no error")
	}
}

// TestTransportTimeout: an upstream slower than ResponseHeaderTimeout to
// answer fails the call with a net.Error timeout, as net/http's does; a
// body slower than it is not cut.
func TestTransportTimeout(t *testing.T) {
	srv := stallingServer(t, nil, "")

	var fallbacks atomic.Int32
	tr := newTransport(&fallbacks)
	tr.ResponseHeaderTimeout = 100 * time.Millisecond
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	_, err := tr.RoundTrip(req)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("RoundTrip = %v; want a net.Error timeout", err)
	}

	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "a")
		w.(http.Flusher).Flush()
		time.Sleep(300 * time.Millisecond)
		io.WriteString(w, "b")
	}))
	defer slow.Close()
	req, _ = http.NewRequest(http.MethodGet, slow.URL, nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(b) != "ab" {
		t.Errorf("slow body = %q, %v; want \"ab\" (the header timeout does not bound the body)", b, err)
	}
}

// TestTransportEarlyCloseKeepsConnection: a body of known length closed
// right after its last byte (a JSON decoder does not read on to EOF)
// gives its connection back.
func TestTransportEarlyCloseKeepsConnection(t *testing.T) {
	srv, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"a":1}`)
	})
	var fallbacks atomic.Int32
	tr := newTransport(&fallbacks)
	for range 3 {
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		var v struct{ A int }
		if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || v.A != 1 {
			t.Fatalf("decode = %v, %v", v, err)
		}
		resp.Body.Close()
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("upstream saw %d connections; want 1", n)
	}
}

// TestTransportFallback: what a Pool cannot reach goes to Fallback.
func TestTransportFallback(t *testing.T) {
	tests := []string{
		"http://user:pass@example.test/",
		"ftp://example.test/",
	}
	for _, raw := range tests {
		var fallbacks atomic.Int32
		tr := newTransport(&fallbacks)
		tr.Fallback = roundTripFunc(func(r *http.Request) (*http.Response, error) {
			fallbacks.Add(1)
			return nil, fmt.Errorf("fallback")
		})
		req, _ := http.NewRequest(http.MethodGet, raw, nil)
		if _, err := tr.RoundTrip(req); err == nil || err.Error() != "fallback" || fallbacks.Load() != 1 {
			t.Errorf("%s: RoundTrip = %v with %d fallbacks; want the fallback's answer", raw, err, fallbacks.Load())
		}
	}
}

// TestTransportNoBody: HEAD and 204 answers have an empty body and
// return their connection at once.
func TestTransportNoBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "42")
		if r.Method == http.MethodDelete {
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	defer srv.Close()
	var fallbacks atomic.Int32
	tr := newTransport(&fallbacks)
	for _, m := range []string{http.MethodHead, http.MethodDelete, http.MethodHead} {
		req, _ := http.NewRequest(m, srv.URL, nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatalf("%s: %v", m, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || len(b) != 0 {
			t.Errorf("%s: body %q, %v; want none", m, b, err)
		}
	}
}

// TestTransportTimeoutThroughClient: an http.Client's *url.Error around
// a timeout reports Timeout, as it does for net/http's own.
func TestTransportTimeoutThroughClient(t *testing.T) {
	srv := stallingServer(t, nil, "")
	var fallbacks atomic.Int32
	tr := newTransport(&fallbacks)
	tr.ResponseHeaderTimeout = 50 * time.Millisecond
	_, err := (&http.Client{Transport: tr}).Get(srv.URL)
	var ne interface{ Timeout() bool }
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Get = %v; want an error whose Timeout is true", err)
	}
}

// TestTransportStreamClosedAtLastEvent: a stream closed after its last
// event, before the terminating chunk arrives, gives its connection back
// once the terminator comes; one closed with far more left does not.
func TestTransportStreamClosedAtLastEvent(t *testing.T) {
	srv, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: last\n\n")
		w.(http.Flusher).Flush()
		if r.URL.Path == "/long" {
			for range 200 {
				io.WriteString(w, strings.Repeat("x", 1000))
			}
			return
		}
		time.Sleep(20 * time.Millisecond) // the terminator comes late
	})
	var fallbacks atomic.Int32
	tr := newTransport(&fallbacks)
	read := func(path string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader("{}"))
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		if n, err := resp.Body.Read(buf); err != nil || string(buf[:n]) != "data: last\n\n" {
			t.Fatalf("read = %q, %v", buf[:n], err)
		}
		resp.Body.Close()
	}
	waitIdle := func(want int) {
		t.Helper()
		for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			tr.Pool.mu.Lock()
			n := 0
			for _, l := range tr.Pool.idle {
				n += len(l)
			}
			tr.Pool.mu.Unlock()
			if n == want {
				return
			}
		}
		t.Fatalf("idle connections never reached %d", want)
	}
	read("/")
	waitIdle(1)
	read("/")
	waitIdle(1)
	if n := conns.Load(); n != 1 {
		t.Errorf("upstream saw %d connections; want 1 (the stream's connection drained and reused)", n)
	}
	read("/long")
	time.Sleep(drainWait + 50*time.Millisecond)
	read("/")
	if n := conns.Load(); n != 2 {
		t.Errorf("upstream saw %d connections; want 2 (a stream abandoned with much left is not reused)", n)
	}
}

// TestTransportEarlyCloseIsBounded: a body of known length closed early
// while the upstream holds back the rest does not hold Close: the rest is
// waited for a quarter second at most, and the connection is not reused.
func TestTransportEarlyCloseIsBounded(t *testing.T) {
	srv := stallingServer(t, http.Header{"Content-Length": {"100"}}, "0123456789")
	var fallbacks atomic.Int32
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	resp, err := newTransport(&fallbacks).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	resp.Body.Close()
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %v; want at most about %v", d, drainWait)
	}
}

// TestNewTransport: transports made for two configurations share their
// connections.
func TestNewTransport(t *testing.T) {
	srv, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	})
	for _, tr := range []*Transport{NewTransport(time.Second), NewTransport(0)} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("upstream saw %d connections; want 1 (one shared pool)", n)
	}
}
