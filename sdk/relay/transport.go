package relay

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// Transport is an http.RoundTripper that sends requests on a Pool: the
// lean client for plugins whose upstream calls go through an http.Client
// (a cloud SDK's, or their own), so that they need not be rewritten
// around fasthttp to shed net/http's two goroutines per connection.
//
// A request whose URL a Pool cannot reach (OriginOf reports false: a proxy
// from the environment applies, or the scheme is not http or https) goes
// to Fallback. So does a request whose URL carries user information. The
// request's body is read whole before it is sent, so that a request sent
// on a kept-alive connection the upstream had closed can be sent again;
// the answer's body streams.
//
// Cancellation follows the request's context: when it ends, the
// connection's deadline moves to the past, the blocked write or read
// returns and the connection is closed. Closing the answer's body while
// another goroutine's read is blocked on it does the same. The connection
// goes back to the pool when the body was read to its end, or closed
// early with little left, which is then read within a quarter second.
//
// Transport does not ask for compressed answers and does not decompress
// them: a caller that sets Accept-Encoding reads the encoded body, as
// with net/http.
type Transport struct {
	// Pool holds the connections. Required.
	Pool *Pool
	// Fallback carries what a Pool cannot. Required.
	Fallback http.RoundTripper
	// ResponseHeaderTimeout bounds the wait for the answer's header once
	// the request is being written, as net/http.Transport's does; zero
	// means no bound. The body is bounded only by the request's context,
	// so that a long stream is not cut.
	ResponseHeaderTimeout time.Duration
}

var _ http.RoundTripper = (*Transport)(nil)

// NewTransport returns the Transport a plugin's http.Client should use:
// on the process's pool, SharedPool (so that a new configuration, such as
// a rotated credential, keeps the warm connections), falling back to a
// clone of net/http's default transport, and bounding the wait for an
// answer's header by headerTimeout (zero: no bound). Both keep up to 256
// idle connections per upstream, enough for a busy gateway's concurrency;
// net/http's default of two would open (and close) a connection for
// every other request under load.
func NewTransport(headerTimeout time.Duration) *Transport {
	fallback := http.DefaultTransport.(*http.Transport).Clone()
	fallback.ResponseHeaderTimeout = headerTimeout
	fallback.MaxIdleConnsPerHost = maxIdlePerOrigin
	return &Transport{Pool: SharedPool(), Fallback: fallback, ResponseHeaderTimeout: headerTimeout}
}

// maxIdlePerOrigin is how many idle connections the shared pool and
// NewTransport's fallback keep per upstream.
const maxIdlePerOrigin = 256

// sharedPool backs SharedPool.
var sharedPool = NewPool(maxIdlePerOrigin, 90*time.Second)

// SharedPool returns the process's one pool of upstream connections:
// every Transport made by NewTransport sends on it, and so should code
// that uses a Pool directly (the host's planned calls, the openai
// plugin's), so that all calls to an upstream share its warm
// connections, whichever configuration made them.
func SharedPool() *Pool { return sharedPool }

// RoundTrip sends r and returns the answer with its header read.
func (t *Transport) RoundTrip(r *http.Request) (*http.Response, error) {
	o, ok := OriginOf(r.URL)
	if !ok || r.URL.User != nil {
		return t.Fallback.RoundTrip(r)
	}
	var body []byte
	if r.Body != nil && r.Body != http.NoBody {
		b, err := io.ReadAll(r.Body)
		r.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("relay: read the request body: %w", err)
		}
		body = b
	}
	timeout := t.ResponseHeaderTimeout
	if timeout <= 0 {
		timeout = noTimeout
	}

	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	fillRequest(req, r, body)
	resp := fasthttp.AcquireResponse()
	resp.StreamBody = true
	resp.SkipBody = r.Method == http.MethodHead
	x, err := t.Pool.Send(r.Context(), o, req, resp, timeout, 0)
	if err != nil {
		fasthttp.ReleaseResponse(resp)
		return nil, Timeout(err)
	}
	x.unbound(r.Context())
	return newResponse(r, resp, x), nil
}

// noTimeout stands for no bound where Pool.Send needs one.
const noTimeout = 100 * 365 * 24 * time.Hour

// fillRequest writes r, with body, into req, byte for byte as net/http
// would send it: the escaped path as r.URL holds it (a signature covers
// it), the Host of r, every header but the hop-by-hop framing ones,
// which fasthttp writes from the body.
func fillRequest(req *fasthttp.Request, r *http.Request, body []byte) {
	req.Header.DisableNormalizing()
	req.SetRequestURI(r.URL.String())
	req.URI().DisablePathNormalizing = true
	if r.Host != "" && r.Host != r.URL.Host {
		req.URI().SetHost(r.Host)
	}
	req.Header.SetMethod(r.Method)
	for k, vs := range r.Header {
		switch k {
		case "Host", "Content-Length", "Transfer-Encoding", "Connection":
			continue
		}
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if body != nil {
		req.SetBodyRaw(body)
	}
}

// newResponse is resp, whose header x has read, as an *http.Response
// whose body reads the rest of the exchange.
func newResponse(r *http.Request, resp *fasthttp.Response, x *Exchange) *http.Response {
	h := make(http.Header, resp.Header.Len())
	for k, v := range resp.Header.All() {
		h.Add(string(k), string(v))
	}
	n := int64(resp.Header.ContentLength())
	if n < 0 {
		n = -1
	}
	code := resp.StatusCode()
	var b io.ReadCloser = http.NoBody
	if r.Method != http.MethodHead && code != http.StatusNoContent && code != http.StatusNotModified {
		b = &responseBody{resp: resp, x: x}
	} else {
		x.Finish(resp, true)
		fasthttp.ReleaseResponse(resp)
	}
	return &http.Response{
		Status:        strconv.Itoa(code) + " " + http.StatusText(code),
		StatusCode:    code,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          b,
		ContentLength: n,
		Request:       r,
	}
}

// responseBody reads an answer's body off its exchange. Reads come from
// one goroutine, as io.Reader asks; Close may come from any. The
// exchange ends as soon as the body does: at its end the connection goes
// back to the pool, after a failed read it is closed (the upstream sees
// a cancelled request go away at once, as with net/http).
type responseBody struct {
	mu   sync.Mutex
	resp *fasthttp.Response // nil once the exchange has ended
	x    *Exchange
	err  error // what ended the body: io.EOF, a read error, errClosedBody
}

func (b *responseBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.resp.BodyStream().Read(p)
	if err != nil {
		if !errors.Is(err, io.EOF) {
			err = Timeout(err)
		}
		b.end(err)
	}
	return n, err
}

// Close ends the exchange. A Read blocked in another goroutine returns
// at once: the connection's deadline moves to the past, and the
// connection is not reused.
func (b *responseBody) Close() error {
	if !b.mu.TryLock() {
		b.x.c.SetDeadline(longAgo)
		b.mu.Lock()
	}
	defer b.mu.Unlock()
	if b.err == nil {
		b.end(errClosedBody)
	}
	return nil
}

// end finishes the exchange with err as the body's last word: at its
// end the connection goes back to the pool, after a failed read it is
// closed, and a body closed early has its rest read within a bound
// (finishEarly). b.mu is held.
func (b *responseBody) end(err error) {
	b.err = err
	resp := b.resp
	b.resp = nil
	if err == errClosedBody {
		b.x.finishEarly(resp)
		return
	}
	b.x.Finish(resp, errors.Is(err, io.EOF))
	fasthttp.ReleaseResponse(resp)
}

var errClosedBody = errors.New("relay: read on closed response body")
