package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
)

// The unary calls (chat without streaming, embeddings, models) go through
// a lean HTTP/1.1 client: the calling goroutine writes the request and
// reads the answer itself on a pooled connection, with fasthttp's request
// writer and response parser and pooled request, response and buffers.
// net/http, which the streams, transparent mode and proxied upstreams
// keep using, hands every request to a writer and a reader goroutine of
// its connection; on a small machine those wake-ups cost more than the
// rest of the call.
//
// Cancellation is as prompt as with net/http: when the call's context
// ends, the connection's deadline is moved to the past, the blocked read
// or write returns at once and the connection is closed, so the upstream
// sees the request abandoned.

// fastPool is the plugin's one pool of lean connections, shared by every
// configuration so that a key rotation keeps warm connections.
var fastPool = &connPool{
	idle:        map[string][]*poolConn{},
	maxIdle:     256,
	idleTimeout: 90 * time.Second,
	dialer:      &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second},
}

// poolConn is one upstream connection with its buffers.
type poolConn struct {
	net.Conn
	br       *bufio.Reader
	bw       *bufio.Writer
	lastUsed time.Time
}

// connPool keeps idle keep-alive connections per origin.
type connPool struct {
	mu          sync.Mutex
	idle        map[string][]*poolConn
	maxIdle     int
	idleTimeout time.Duration
	dialer      *net.Dialer
}

// origin is where the lean client sends requests: the dial address and
// whether to speak TLS, with the server name to verify.
type origin struct {
	key        string
	addr       string
	tls        bool
	serverName string
}

// fastOrigin describes u for the lean client; ok is false when requests
// to u must go through net/http (a proxy from the environment applies, or
// the scheme is not http or https).
func fastOrigin(u *url.URL) (origin, bool) {
	if u.Scheme != "http" && u.Scheme != "https" {
		return origin{}, false
	}
	if p, err := http.ProxyFromEnvironment(&http.Request{URL: u}); err != nil || p != nil {
		return origin{}, false
	}
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	addr := net.JoinHostPort(u.Hostname(), port)
	return origin{key: u.Scheme + "://" + addr, addr: addr, tls: u.Scheme == "https", serverName: u.Hostname()}, true
}

// get returns an idle connection to o, or dials one; reused tells which.
func (p *connPool) get(ctx context.Context, o origin) (c *poolConn, reused bool, err error) {
	now := time.Now()
	p.mu.Lock()
	for list := p.idle[o.key]; len(list) > 0; list = p.idle[o.key] {
		c = list[len(list)-1]
		p.idle[o.key] = list[:len(list)-1]
		if now.Sub(c.lastUsed) < p.idleTimeout {
			p.mu.Unlock()
			return c, true, nil
		}
		c.Close()
	}
	p.mu.Unlock()
	var nc net.Conn
	if o.tls {
		d := &tls.Dialer{NetDialer: p.dialer, Config: &tls.Config{ServerName: o.serverName, NextProtos: []string{"http/1.1"}, MinVersion: tls.VersionTLS12}}
		nc, err = d.DialContext(ctx, "tcp", o.addr)
	} else {
		nc, err = p.dialer.DialContext(ctx, "tcp", o.addr)
	}
	if err != nil {
		return nil, false, err
	}
	return &poolConn{Conn: nc, br: bufio.NewReaderSize(nc, 16<<10), bw: bufio.NewWriterSize(nc, 16<<10)}, false, nil
}

// put returns c to the pool, or closes it when the pool is full. The
// connections idle for longer than idleTimeout, at the front of the list
// (get takes from the back), are closed on the way.
func (p *connPool) put(o origin, c *poolConn) {
	c.lastUsed = time.Now()
	var stale []*poolConn
	p.mu.Lock()
	list := p.idle[o.key]
	n := 0
	for n < len(list) && c.lastUsed.Sub(list[n].lastUsed) >= p.idleTimeout {
		n++
	}
	if n > 0 {
		stale = append(stale, list[:n]...)
		list = append(list[:0], list[n:]...)
	}
	full := len(list) >= p.maxIdle
	if !full {
		list = append(list, c)
	}
	p.idle[o.key] = list
	p.mu.Unlock()
	for _, s := range stale {
		s.Close()
	}
	if full {
		c.Close()
	}
}

// longAgo is a deadline in the past: it makes blocked reads and writes
// return at once.
var longAgo = time.Unix(1, 0)

// exchange is one request in flight on a pooled connection.
type exchange struct {
	pool *connPool
	o    origin
	c    *poolConn
	// stop ends the watch of the call's context; false means the context
	// ended and the connection's deadline was moved to the past.
	stop func() bool
}

// send writes req on a connection to o and reads the answer's header
// into resp and, unless resp.StreamBody is set, its body of at most
// maxBody bytes. A request that finds a reused connection closed by the
// upstream before any answer is sent again once on a new connection, as
// net/http does. The exchange must be finished.
func (p *connPool) send(ctx context.Context, o origin, req *fasthttp.Request, resp *fasthttp.Response, timeout time.Duration, maxBody int) (*exchange, error) {
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	for attempt := 0; ; attempt++ {
		c, reused, err := p.get(ctx, o)
		if err != nil {
			return nil, err
		}
		c.SetDeadline(deadline)
		x := &exchange{pool: p, o: o, c: c, stop: context.AfterFunc(ctx, func() { c.SetDeadline(longAgo) })}
		err = req.Write(c.bw)
		if err == nil {
			err = c.bw.Flush()
		}
		if err == nil {
			err = resp.ReadLimitBody(c.br, maxBody)
		}
		if err == nil {
			return x, nil
		}
		cancelled := !x.stop()
		c.Close()
		if cancelled {
			return nil, ctx.Err()
		}
		if reused && attempt == 0 && closedIdle(err) {
			continue
		}
		return nil, err
	}
}

// finish ends the exchange: the connection goes back to the pool when
// the whole answer was read (for a streamed body: to its end, which
// finish reads when little is left) and the upstream keeps it open;
// otherwise it is closed. It reports false when the call's context ended
// first.
func (x *exchange) finish(resp *fasthttp.Response, whole bool) bool {
	live := x.stop()
	if live && whole && resp.StreamBody {
		if bs := resp.BodyStream(); bs != nil {
			n, err := io.Copy(io.Discard, io.LimitReader(bs, 64<<10))
			whole = err == nil && n < 64<<10
		}
	}
	if resp.StreamBody {
		resp.CloseBodyStream()
	}
	if !live || !whole || resp.ConnectionClose() || resp.Header.ContentLength() == -2 {
		x.c.Close()
		return live
	}
	x.c.SetDeadline(time.Time{})
	x.pool.put(x.o, x.c)
	return true
}

// roundTrip sends req and reads the whole answer into resp.
func (p *connPool) roundTrip(ctx context.Context, o origin, req *fasthttp.Request, resp *fasthttp.Response, timeout time.Duration, maxBody int) error {
	x, err := p.send(ctx, o, req, resp, timeout, maxBody)
	if err != nil {
		return err
	}
	if !x.finish(resp, true) {
		return ctx.Err()
	}
	return nil
}

// closedIdle reports whether err is a kept-alive connection the upstream
// had closed: nothing of an answer was read.
func closedIdle(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// fastUnary is unary over the lean client.
func (u *upstream) fastUnary(ctx context.Context, method, target string, body []byte, meta *provider.Meta) (*provider.Response, error) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	u.fastRequest(req, method, target, body, meta, "application/json")
	err := fastPool.roundTrip(ctx, u.fast, req, resp, u.timeout, maxResponseBody)
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		return nil, openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "upstream_response_too_large",
			fmt.Sprintf("the openai upstream answered with more than %d bytes", maxResponseBody))
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
	x, err := fastPool.send(ctx, u.fast, req, resp, u.timeout, maxErrorBody)
	if err != nil {
		return fastError(ctx, err)
	}
	if code := resp.StatusCode(); code/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.BodyStream(), maxErrorBody))
		resp.SetBodyRaw(b)
		x.finish(resp, false)
		return fastUpstreamError(resp)
	}
	if err := provider.StreamHeader(w, fastRelayed(resp)); err != nil {
		x.finish(resp, false)
		return err
	}
	err = relayStream(ctx, fastBody{resp.BodyStream()}, w)
	if !x.finish(resp, err == nil) && err == nil {
		return transportError(ctx, ctx.Err())
	}
	return err
}

// fastBody turns fasthttp's report of a passed deadline into a net.Error
// timeout, which transportError maps to 504.
type fastBody struct{ r io.Reader }

func (b fastBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if errors.Is(err, fasthttp.ErrTimeout) {
		err = fmt.Errorf("%w: %w", os.ErrDeadlineExceeded, err)
	}
	return n, err
}

// fastError maps a failure of the lean client as transportError does.
func fastError(ctx context.Context, err error) error {
	if errors.Is(err, fasthttp.ErrTimeout) {
		// fasthttp reports a passed deadline with its own error.
		err = fmt.Errorf("%w: %w", os.ErrDeadlineExceeded, err)
	}
	return transportError(ctx, err)
}

// fastUpstreamError is upstreamError for a fasthttp response whose body
// has been read.
func fastUpstreamError(resp *fasthttp.Response) error {
	b := resp.Body()
	e := openai.ParseError(resp.StatusCode(), b[:min(len(b), maxErrorBody)])
	e.RetryAfter = retryAfter(fastHeader(resp, "Retry-After-Ms", "Retry-After"), time.Now())
	return e
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

// fastHeader copies the named headers of resp into an http.Header.
func fastHeader(resp *fasthttp.Response, names ...string) http.Header {
	h := http.Header{}
	for _, n := range names {
		if v := resp.Header.Peek(n); len(v) > 0 {
			h.Set(n, string(v))
		}
	}
	return h
}
