// Command bareproxy is the baseline of the gateway benchmark: a bare
// fasthttp reverse proxy that forwards every request to one upstream
// without looking at the body. It costs what any HTTP hop costs (accept,
// header parsing, one upstream keep-alive connection per client
// connection, copying bytes), so the difference between it and llmproxy is
// what llmproxy's own work costs.
//
// It prints its URL on the first line of stdout and serves until SIGINT or
// SIGTERM:
//
//	bareproxy -addr 127.0.0.1:0 -upstream http://127.0.0.1:41234
//
// Responses are streamed: a chunked upstream answer (an SSE stream) is
// relayed chunk by chunk as it arrives, the way a production proxy must.
package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bareproxy:", err)
		os.Exit(1)
	}
}

func run() error {
	addr := flag.String("addr", "127.0.0.1:0", "address to listen on")
	upstream := flag.String("upstream", "", "upstream origin, e.g. http://127.0.0.1:41234 (required)")
	maxConns := flag.Int("max-conns", 1024, "most connections to the upstream")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.Parse()

	p, err := newProxy(*upstream, *maxConns)
	if err != nil {
		return err
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return fmt.Errorf("create CPU profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("start CPU profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *addr, err)
	}
	srv := p.server()
	fmt.Printf("http://%s\n", ln.Addr())

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-sigs:
	}
	if err := srv.Shutdown(); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// proxy forwards requests to one upstream.
type proxy struct {
	host   string
	client *fasthttp.HostClient
}

// newProxy returns a proxy to the origin upstream ("http://host:port").
func newProxy(upstream string, maxConns int) (*proxy, error) {
	u, err := url.Parse(upstream)
	if err != nil {
		return nil, fmt.Errorf("upstream %q: %w", upstream, err)
	}
	if u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("upstream %q: want an http://host:port origin", upstream)
	}
	return &proxy{
		host: u.Host,
		client: &fasthttp.HostClient{
			Addr:                     u.Host,
			MaxConns:                 maxConns,
			MaxIdleConnDuration:      time.Minute,
			StreamResponseBody:       true,
			DisablePathNormalizing:   true,
			NoDefaultUserAgentHeader: true,
		},
	}, nil
}

// server returns the fasthttp server that runs p.
func (p *proxy) server() *fasthttp.Server {
	return &fasthttp.Server{
		Handler:                      p.handle,
		Name:                         "bareproxy",
		ReadTimeout:                  5 * time.Minute,
		IdleTimeout:                  2 * time.Minute,
		DisablePreParseMultipartForm: true,
		NoDefaultContentType:         true,
		NoDefaultServerHeader:        true,
		CloseOnShutdown:              true,
	}
}

// hopHeaders are the hop-by-hop headers a proxy must not forward (RFC 9110,
// section 7.6.1).
var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Upgrade"}

// handle forwards the request as it is and relays the answer. The
// response body is the upstream connection's stream: fasthttp writes it to
// the client chunk by chunk and returns the connection to the pool when
// the stream is done.
func (p *proxy) handle(ctx *fasthttp.RequestCtx) {
	req := &ctx.Request
	for _, h := range hopHeaders {
		req.Header.Del(h)
	}
	req.SetHost(p.host)
	if err := p.client.Do(req, &ctx.Response); err != nil {
		ctx.Response.Reset()
		status := fasthttp.StatusBadGateway
		if errors.Is(err, fasthttp.ErrTimeout) {
			status = fasthttp.StatusGatewayTimeout
		}
		ctx.Error("bareproxy: upstream: "+err.Error(), status)
		return
	}
	for _, h := range hopHeaders {
		ctx.Response.Header.Del(h)
	}
}
