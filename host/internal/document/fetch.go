package document

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// HostResolver looks up the addresses of a host name; *net.Resolver
// implements it. Tests and the host may substitute their own.
type HostResolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

var _ HostResolver = (*net.Resolver)(nil)

// Fetched is a document downloaded by the Fetcher.
type Fetched struct {
	// URL is the final URL, after redirects.
	URL      string
	Name     string
	MIMEType string
	Data     []byte
	// NoStore is set when the response said Cache-Control: no-store.
	NoStore bool
}

// Fetcher downloads documents over http and https without reaching
// addresses the Policy refuses. Every connection of every redirect hop is
// checked on the address actually dialled, after DNS resolution, which
// defeats DNS rebinding and redirects to internal hosts. A Fetcher is safe
// for concurrent use.
type Fetcher struct {
	policy       *Policy
	resolver     HostResolver
	client       *http.Client
	timeout      time.Duration
	maxRedirects int
	mime         mimeSet
	// dial connects to one checked IP address; tests wrap it to count
	// connection attempts.
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// NewFetcher returns a Fetcher configured by cfg. A nil resolver means
// net.DefaultResolver.
func NewFetcher(cfg Config, resolver HostResolver) (*Fetcher, error) {
	s, err := cfg.settings()
	if err != nil {
		return nil, err
	}
	return newFetcher(s, resolver), nil
}

func newFetcher(s settings, resolver HostResolver) *Fetcher {
	if resolver == nil {
		resolver = net.DefaultResolver
	}
	f := &Fetcher{
		policy:       s.policy,
		resolver:     resolver,
		timeout:      s.timeout,
		maxRedirects: s.maxRedirects,
		mime:         s.mime,
	}
	d := &net.Dialer{Timeout: s.connectTimeout, KeepAlive: 30 * time.Second, ControlContext: s.policy.control}
	f.dial = d.DialContext
	transport := &http.Transport{
		// Never a proxy: the proxy would do the dialling the guard checks.
		Proxy:                 nil,
		DialContext:           f.dialContext,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   s.connectTimeout,
		ResponseHeaderTimeout: s.timeout,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
	}
	f.client = &http.Client{Transport: transport, CheckRedirect: f.checkRedirect}
	return f
}

// dialContext resolves the host of addr, refuses it when any of its
// addresses is not allowed, and connects to the checked addresses in turn.
// The dialer's control hook checks each address once more as it connects.
func (f *Fetcher) dialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	port, err := parsePort(portStr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	allowed := f.policy.HostAllowed(host)
	var ips []netip.Addr
	if ip, perr := netip.ParseAddr(host); perr == nil {
		ips = []netip.Addr{ip}
	} else {
		if endsInNumber(host) {
			return nil, &BlockedError{Host: host, Reason: "numeric hosts must be written as canonical IP addresses"}
		}
		ips, err = f.resolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return nil, fmt.Errorf("resolve %s: %w", host, err)
		}
		if len(ips) == 0 {
			return nil, fmt.Errorf("resolve %s: no addresses", host)
		}
	}
	if !allowed {
		for _, ip := range ips {
			if err := f.policy.CheckAddr(host, ip); err != nil {
				return nil, err
			}
		}
	}
	ctx = withDialInfo(ctx, host, allowed)
	var errs []error
	for _, ip := range ips {
		conn, err := f.dial(ctx, network, netip.AddrPortFrom(ip.Unmap(), port).String())
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("dial %s: %w", host, errors.Join(errs...))
}

func parsePort(s string) (uint16, error) {
	var p uint16
	if _, err := fmt.Sscanf(s, "%d", &p); err != nil || p == 0 {
		return 0, fmt.Errorf("invalid port %q", s)
	}
	return p, nil
}

func (f *Fetcher) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > f.maxRedirects {
		return fmt.Errorf("stopped after %d redirects", f.maxRedirects)
	}
	return f.policy.CheckURL(req.URL)
}

// ParseURL parses raw and checks it with the policy (see Policy.CheckURL).
func (f *Fetcher) ParseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return nil, errInvalid("document URL is not valid: %v", err)
	}
	if err := f.policy.CheckURL(u); err != nil {
		return nil, err
	}
	return u, nil
}

// Fetch downloads raw, reading at most limit bytes. Errors are
// *openai.Error values ready for the client (or a *BlockedError, which
// the Resolver reports as 400): 413 past limit, 415 for a type that is not
// allowed, 502 when the fetch fails or the server answers non-2xx.
func (f *Fetcher) Fetch(ctx context.Context, raw string, limit int64) (*Fetched, error) {
	u, err := f.ParseURL(raw)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, errInvalid("document URL is not valid: %v", err)
	}
	req.Header.Set("User-Agent", "llmproxy-documents/1")
	req.Header.Set("Accept", "*/*")
	resp, err := f.client.Do(req)
	if err != nil {
		var be *BlockedError
		if errors.As(err, &be) {
			return nil, be
		}
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
			return nil, errFetch("fetching document from %s timed out after %s", host(u), f.timeout)
		}
		return nil, errFetch("fetching document from %s failed: %v", host(u), unwrapURLError(err))
	}
	defer resp.Body.Close()
	final := resp.Request.URL
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, errFetch("fetching document from %s: server answered %s", host(u), resp.Status)
	}
	name := fileName(resp.Header.Get("Content-Disposition"), final)
	declared := NormalizeMIME(resp.Header.Get("Content-Type"))
	if declared != "" && declared != mimeBinary && !f.mime.allows(declared) {
		return nil, errUnsupported(name, declared)
	}
	if resp.ContentLength > limit {
		return nil, errTooLarge("document %q is %d bytes, more than the %d allowed", name, resp.ContentLength, limit)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		if ctx.Err() != nil {
			return nil, errFetch("fetching document from %s timed out after %s", host(u), f.timeout)
		}
		return nil, errFetch("reading document from %s failed: %v", host(u), err)
	}
	if int64(len(data)) > limit {
		return nil, errTooLarge("document %q is more than the %d bytes allowed", name, limit)
	}
	mt := DetectMIME(declared, name, data)
	if !f.mime.allows(mt) {
		return nil, errUnsupported(name, mt)
	}
	return &Fetched{
		URL:      final.String(),
		Name:     name,
		MIMEType: mt,
		Data:     data,
		NoStore:  strings.Contains(strings.ToLower(resp.Header.Get("Cache-Control")), "no-store"),
	}, nil
}

// host names u's host for messages; query strings may hold signatures.
func host(u *url.URL) string { return u.Scheme + "://" + u.Host }

// unwrapURLError drops the *url.Error wrapper, whose text repeats the URL
// with its query string.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
