// Package relay is the lean HTTP/1.1 upstream client that both the host
// (for calls it forwards on a plugin's plan) and OpenAI-compatible plugins
// use, with the rules both sides must apply identically: how an upstream
// error answer becomes the client's error (UpstreamError), how a
// retry delay is read (RetryAfter), how an OpenAI server-sent event stream
// is read (Events) and how the routed model reaches a body (SetModel).
//
// The calling goroutine writes the request and reads the answer itself on
// a pooled connection, with fasthttp's request writer and response parser.
// net/http hands every request to a writer and a reader goroutine of its
// connection; on a small machine those wake-ups cost more than the rest of
// the call.
//
// Cancellation is as prompt as with net/http: when the call's context
// ends, the connection's deadline is moved to the past, the blocked read
// or write returns at once and the connection is closed, so the upstream
// sees the request abandoned.
package relay

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// Pool keeps idle keep-alive connections per origin. Its zero value is
// not ready; use NewPool.
type Pool struct {
	mu          sync.Mutex
	idle        map[string][]*conn
	maxIdle     int
	idleTimeout time.Duration
	dialer      *net.Dialer
}

// NewPool returns a pool that keeps up to maxIdle idle connections per
// origin, each for at most idleTimeout.
func NewPool(maxIdle int, idleTimeout time.Duration) *Pool {
	return &Pool{
		idle:        map[string][]*conn{},
		maxIdle:     maxIdle,
		idleTimeout: idleTimeout,
		dialer:      &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second},
	}
}

// conn is one upstream connection with its read buffer. Requests are
// written through a pooled writer (writers), which the connection holds
// only while it writes: a process may hold a thousand streams at once.
type conn struct {
	net.Conn
	br       *bufio.Reader
	lastUsed time.Time
}

var writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}

// write writes req to c through a pooled buffer.
func (c *conn) write(req *fasthttp.Request) error {
	bw := writers.Get().(*bufio.Writer)
	bw.Reset(c.Conn)
	err := req.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	bw.Reset(nil)
	writers.Put(bw)
	return err
}

// Origin is where requests go: the dial address and whether to speak
// TLS, with the server name to verify.
type Origin struct {
	key        string
	addr       string
	tls        bool
	serverName string
}

// OriginOf describes the origin of u; ok is false when requests to u must
// not go through a Pool (a proxy from the environment applies, or the
// scheme is not http or https).
func OriginOf(u *url.URL) (o Origin, ok bool) {
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return Origin{}, false
	}
	if p, err := http.ProxyFromEnvironment(&http.Request{URL: u}); err != nil || p != nil {
		return Origin{}, false
	}
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	addr := net.JoinHostPort(u.Hostname(), port)
	return Origin{key: u.Scheme + "://" + addr, addr: addr, tls: u.Scheme == "https", serverName: u.Hostname()}, true
}

// String returns the origin as scheme://host:port.
func (o Origin) String() string { return o.key }

// get returns an idle connection to o, or dials one; reused tells which.
func (p *Pool) get(ctx context.Context, o Origin) (c *conn, reused bool, err error) {
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
	// The reader must hold a whole response header (8 KiB, as most
	// servers bound theirs).
	return &conn{Conn: nc, br: bufio.NewReaderSize(nc, 8<<10)}, false, nil
}

// put returns c to the pool, or closes it when the pool is full. The
// connections idle for longer than idleTimeout, at the front of the list
// (get takes from the back), are closed on the way.
func (p *Pool) put(o Origin, c *conn) {
	c.lastUsed = time.Now()
	var stale []*conn
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

// Exchange is one request in flight on a pooled connection. Finish it.
type Exchange struct {
	pool *Pool
	o    Origin
	c    *conn
	// stop ends the watch of the call's context; false means the context
	// ended and the connection's deadline was moved to the past.
	stop func() bool
}

// Send writes req on a connection to o and reads the answer's header
// into resp and, unless resp.StreamBody is set, its body of at most
// maxBody bytes. The whole exchange is bounded by timeout and by ctx's
// deadline. A request that finds a reused connection closed by the
// upstream before any answer is sent again once on a new connection, as
// net/http does. On success the exchange must be finished.
func (p *Pool) Send(ctx context.Context, o Origin, req *fasthttp.Request, resp *fasthttp.Response, timeout time.Duration, maxBody int) (*Exchange, error) {
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
		x := &Exchange{pool: p, o: o, c: c, stop: context.AfterFunc(ctx, func() { c.SetDeadline(longAgo) })}
		err = c.write(req)
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

// unbound lifts the exchange's timeout for the rest of the answer, which
// only ctx bounds from now on.
func (x *Exchange) unbound(ctx context.Context) {
	d, _ := ctx.Deadline()
	x.c.SetDeadline(d)
	if ctx.Err() != nil {
		// The watch of ctx may have moved the deadline before this.
		x.c.SetDeadline(longAgo)
	}
}

// Buffered returns the bytes of the answer that have arrived and are not
// read yet, as they stand in the connection's buffer (with the transfer
// encoding's framing). It is valid until the next read of the answer.
func (x *Exchange) Buffered() []byte {
	b, _ := x.c.br.Peek(x.c.br.Buffered())
	return b
}

// Finish ends the exchange: the connection goes back to the pool when
// the whole answer was read (for a streamed body: to its end, which
// Finish reads when little is left) and the upstream keeps it open;
// otherwise it is closed. It reports false when the call's context ended
// first.
func (x *Exchange) Finish(resp *fasthttp.Response, whole bool) bool {
	live := x.stop()
	x.end(resp, live && whole)
	return live
}

// end reads what is left of a streamed body when whole (at most 64 KiB:
// more means the caller left early, and the connection is not worth the
// wait), then returns the connection to the pool if the answer ended
// well and the upstream keeps it open, and closes it otherwise.
func (x *Exchange) end(resp *fasthttp.Response, whole bool) {
	if whole && resp.StreamBody {
		if bs := resp.BodyStream(); bs != nil {
			n, err := io.Copy(io.Discard, io.LimitReader(bs, 64<<10))
			whole = err == nil && n < 64<<10
		}
	}
	if resp.StreamBody {
		resp.CloseBodyStream()
	}
	if !whole || resp.ConnectionClose() || resp.Header.ContentLength() == -2 {
		x.c.Close()
		return
	}
	x.c.SetDeadline(time.Time{})
	x.pool.put(x.o, x.c)
}

// drainWait bounds how long the rest of an abandoned answer is read in
// the background before its connection is closed.
const drainWait = 250 * time.Millisecond

// finishEarly ends an exchange whose caller closed a streamed body
// before its end: a JSON decoder stops at the closing brace, a stream's
// reader at the last event. Instead of closing the connection, which
// would make the next call dial, end reads the rest within drainWait: at
// once for a body of known length, whose rest has arrived with it, and
// in the background for a chunked one, whose terminator may follow a
// moment later. resp is released when done.
func (x *Exchange) finishEarly(resp *fasthttp.Response) {
	if !x.stop() {
		x.end(resp, false)
		fasthttp.ReleaseResponse(resp)
		return
	}
	x.c.SetDeadline(time.Now().Add(drainWait))
	if resp.Header.ContentLength() >= 0 {
		x.end(resp, true)
		fasthttp.ReleaseResponse(resp)
		return
	}
	go func() {
		x.end(resp, true)
		fasthttp.ReleaseResponse(resp)
	}()
}

// RoundTrip sends req and reads the whole answer into resp.
func (p *Pool) RoundTrip(ctx context.Context, o Origin, req *fasthttp.Request, resp *fasthttp.Response, timeout time.Duration, maxBody int) error {
	x, err := p.Send(ctx, o, req, resp, timeout, maxBody)
	if err != nil {
		return err
	}
	if !x.Finish(resp, true) {
		return ctx.Err()
	}
	return nil
}

// closedIdle reports whether err is a kept-alive connection the upstream
// had closed: nothing of an answer was read.
func closedIdle(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// Body turns fasthttp's report of a passed deadline, while reading a
// streamed body, into an error that is os.ErrDeadlineExceeded (a
// net.Error timeout).
func Body(r io.Reader) io.Reader { return timeoutReader{r} }

type timeoutReader struct{ r io.Reader }

func (b timeoutReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	return n, Timeout(err)
}

// Timeout returns err as an os.ErrDeadlineExceeded when fasthttp reports
// a passed deadline with its own error, and err otherwise. The error has
// a Timeout method itself, as net/http's errors do, for callers that ask
// an *url.Error wrapping it.
func Timeout(err error) error {
	if errors.Is(err, fasthttp.ErrTimeout) {
		return timeoutError{err}
	}
	return err
}

// timeoutError is a passed deadline reported by fasthttp.
type timeoutError struct{ err error }

func (e timeoutError) Error() string   { return os.ErrDeadlineExceeded.Error() + ": " + e.err.Error() }
func (e timeoutError) Unwrap() []error { return []error{os.ErrDeadlineExceeded, e.err} }
func (e timeoutError) Timeout() bool   { return true }
