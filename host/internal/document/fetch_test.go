package document

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/sdk/openai"
)

// mapResolver resolves names from a fixed table, never through DNS.
type mapResolver map[string][]string

func (m mapResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	addrs, ok := m[strings.TrimSuffix(strings.ToLower(host), ".")]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	out := make([]netip.Addr, len(addrs))
	for i, a := range addrs {
		out[i] = netip.MustParseAddr(a)
	}
	return out, nil
}

// countingServer is an httptest server on 127.0.0.1 that counts the
// connections it accepts and the requests it serves.
type countingServer struct {
	*httptest.Server
	conns, requests atomic.Int64
}

func newCountingServer(t testing.TB, h http.Handler) *countingServer {
	t.Helper()
	cs := &countingServer{}
	cs.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cs.requests.Add(1)
		h.ServeHTTP(w, r)
	}))
	cs.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			cs.conns.Add(1)
		}
	}
	cs.Start()
	t.Cleanup(cs.Close)
	return cs
}

func (cs *countingServer) port() string {
	return strconv.Itoa(cs.Listener.Addr().(*net.TCPAddr).Port)
}

// dialRecorder wraps a Fetcher's dial with a record of every address it
// was asked to connect to, and refuses every address outside allowed, so
// that a failing guard can never send a packet anywhere but loopback.
type dialRecorder struct {
	mu      sync.Mutex
	addrs   []string
	allowed map[string]bool
}

func (d *dialRecorder) install(f *Fetcher, allowed ...string) {
	d.allowed = map[string]bool{}
	for _, a := range allowed {
		d.allowed[a] = true
	}
	next := f.dial
	f.dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		d.mu.Lock()
		d.addrs = append(d.addrs, addr)
		d.mu.Unlock()
		if !d.allowed[addr] {
			return nil, fmt.Errorf("test safety net: dial to %s refused", addr)
		}
		return next(ctx, network, addr)
	}
}

func (d *dialRecorder) dialled() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.addrs...)
}

func testFetcher(t *testing.T, cfg Config, res HostResolver) *Fetcher {
	t.Helper()
	f, err := NewFetcher(cfg, res)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestFetchRefusesInternalTargets probes the fetcher with URLs that name,
// resolve to or redirect to non-public addresses. None may be fetched: the
// victim server on 127.0.0.1 must see no connection, and no dial may be
// attempted except to the allow-listed redirector.
func TestFetchRefusesInternalTargets(t *testing.T) {
	victim := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "secret")
	}))
	vp := victim.port()
	redirector := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, r.URL.Query().Get("to"), http.StatusFound)
	}))
	rp := redirector.port()
	res := mapResolver{
		"localhost":   {"127.0.0.1", "::1"},
		"evil.test":   {"127.0.0.1"},
		"meta.test":   {"169.254.169.254"},
		"rebind.test": {"10.0.0.1"},
		"mixed.test":  {"93.184.216.34", "192.168.0.10"},
		"v6.test":     {"::ffff:127.0.0.1"},
		"docs.test":   {"127.0.0.1"},
	}
	f := testFetcher(t, Config{AllowHosts: []string{"docs.test"}}, res)
	var rec dialRecorder
	rec.install(f, "127.0.0.1:"+rp)
	redirect := func(to string) string { return "http://docs.test:" + rp + "/r?to=" + to }

	probes := []string{
		"http://127.0.0.1:" + vp + "/",
		"http://localhost:" + vp + "/",
		"http://localhost.:" + vp + "/",
		"http://[::1]:" + vp + "/",
		"http://169.254.169.254/latest/meta-data",
		"http://meta.test/latest/meta-data",
		"http://10.0.0.1/",
		"http://172.16.0.1/",
		"http://192.168.1.1/",
		"http://2130706433:" + vp + "/",
		"http://0177.0.0.1:" + vp + "/",
		"http://0x7f.0.0.1:" + vp + "/",
		"http://0x7f000001:" + vp + "/",
		"http://127.1:" + vp + "/",
		"http://0:" + vp + "/",
		"http://0.0.0.0:" + vp + "/",
		"http://[::]:" + vp + "/",
		"http://[::ffff:127.0.0.1]:" + vp + "/",
		"http://[::ffff:7f00:1]:" + vp + "/",
		"http://[64:ff9b::7f00:1]:" + vp + "/",
		"http://[2002:7f00:1::]:" + vp + "/",
		"http://[fe80::1]/",
		"http://[fe80::1%25lo]:" + vp + "/",
		"http://[fd00::1]/",
		"http://100.64.0.1/",
		"http://224.0.0.1/",
		"http://evil.test:" + vp + "/",
		"http://rebind.test:" + vp + "/",
		"http://mixed.test/",
		"http://v6.test:" + vp + "/",
		"https://127.0.0.1:" + vp + "/",
		"file:///etc/passwd",
		"gopher://127.0.0.1:" + vp + "/_GET",
		"ftp://127.0.0.1:" + vp + "/",
		"http://example.com@127.0.0.1:" + vp + "/",
		"http://user:pass@docs.test:" + rp + "/",
		redirect("http://127.0.0.1:" + vp + "/"),
		redirect("http://localhost:" + vp + "/"),
		redirect("http://[::1]:" + vp + "/"),
		redirect("http://evil.test:" + vp + "/"),
		redirect("http://2130706433:" + vp + "/"),
		redirect("http://169.254.169.254/latest/meta-data"),
		redirect("file:///etc/passwd"),
	}
	for _, p := range probes {
		t.Run(p, func(t *testing.T) {
			_, err := f.Fetch(context.Background(), p, 1<<20)
			if err == nil {
				t.Fatal("Fetch succeeded, want it refused")
			}
			if got := clientError(err, "p").Status; got != http.StatusBadRequest {
				t.Errorf("status = %d (%v), want 400", got, err)
			}
		})
	}
	if n := victim.conns.Load(); n != 0 {
		t.Errorf("victim accepted %d connections, want 0", n)
	}
	for _, a := range rec.dialled() {
		if a != "127.0.0.1:"+rp {
			t.Errorf("dial attempted to %s", a)
		}
	}
	if n := redirector.requests.Load(); n != 7 {
		t.Errorf("redirector served %d requests, want 7 (one per redirect probe)", n)
	}
	if len(probes) < 20 {
		t.Errorf("only %d probes", len(probes))
	}
}

// TestDialerControlBlocksAfterDNS bypasses the pre-dial check and calls the
// dialer itself: its control hook alone must refuse loopback.
func TestDialerControlBlocksAfterDNS(t *testing.T) {
	victim := newCountingServer(t, http.NotFoundHandler())
	f := testFetcher(t, Config{}, mapResolver{})
	_, err := f.dial(context.Background(), "tcp", victim.Listener.Addr().String())
	var be *BlockedError
	if !errors.As(err, &be) {
		t.Fatalf("dial error = %v, want a *BlockedError", err)
	}
	if n := victim.conns.Load(); n != 0 {
		t.Errorf("victim accepted %d connections, want 0", n)
	}
}

func TestFetch(t *testing.T) {
	srv := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/typed":
			w.Header().Set("Content-Type", "text/markdown; charset=utf-8")
			fmt.Fprint(w, "# Title")
		case "/notes.md":
			w.Header()["Content-Type"] = nil
			fmt.Fprint(w, "# Sniffed by extension")
		case "/noext":
			w.Header()["Content-Type"] = nil
			fmt.Fprint(w, `{"sniffed": true}`)
		case "/binary":
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Write([]byte("%PDF-1.4\n%fake"))
		case "/disposition":
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Content-Disposition", `attachment; filename="../../etc/report.txt"`)
			fmt.Fprint(w, "hello")
		case "/disposition-ext":
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Content-Disposition", `attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.txt`)
			fmt.Fprint(w, "hello")
		case "/big":
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Content-Length", "2048")
			w.Write(make([]byte, 2048))
		case "/big-chunked":
			w.Header().Set("Content-Type", "text/plain")
			for range 4 {
				w.Write(make([]byte, 512))
				w.(http.Flusher).Flush()
			}
		case "/image":
			w.Header().Set("Content-Type", "image/png")
			fmt.Fprint(w, "\x89PNG")
		case "/sniffed-image":
			w.Header()["Content-Type"] = nil
			fmt.Fprint(w, "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
		case "/fail":
			http.Error(w, "boom", http.StatusInternalServerError)
		case "/slow":
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		case "/hop":
			n, _ := strconv.Atoi(r.URL.Query().Get("n"))
			if n == 0 {
				w.Header().Set("Content-Type", "text/plain")
				fmt.Fprint(w, "landed")
				return
			}
			http.Redirect(w, r, fmt.Sprintf("/hop?n=%d", n-1), http.StatusFound)
		case "/nostore":
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Cache-Control", "private, no-store")
			fmt.Fprint(w, "x")
		default:
			http.NotFound(w, r)
		}
	}))
	f := testFetcher(t, Config{AllowCIDRs: []string{"127.0.0.1/32"}, Timeout: "300ms", MaxRedirects: 3}, mapResolver{})
	base := srv.URL
	tests := []struct {
		path     string
		status   int
		name     string
		mimeType string
		data     string
		noStore  bool
	}{
		{path: "/typed", name: "typed", mimeType: MIMEMarkdown, data: "# Title"},
		{path: "/notes.md", name: "notes.md", mimeType: MIMEMarkdown, data: "# Sniffed by extension"},
		{path: "/noext", name: "noext", mimeType: MIMEJSON, data: `{"sniffed": true}`},
		{path: "/binary", name: "binary", mimeType: MIMEPDF, data: "%PDF-1.4\n%fake"},
		{path: "/disposition", name: "report.txt", mimeType: MIMEText, data: "hello"},
		{path: "/disposition-ext", name: "résumé.txt", mimeType: MIMEText, data: "hello"},
		{path: "/hop?n=3", name: "hop", mimeType: MIMEText, data: "landed"},
		{path: "/nostore", name: "nostore", mimeType: MIMEText, data: "x", noStore: true},
		{path: "/hop?n=4", status: http.StatusBadGateway},
		{path: "/big", status: http.StatusRequestEntityTooLarge},
		{path: "/big-chunked", status: http.StatusRequestEntityTooLarge},
		{path: "/image", status: http.StatusUnsupportedMediaType},
		{path: "/sniffed-image", status: http.StatusUnsupportedMediaType},
		{path: "/fail", status: http.StatusBadGateway},
		{path: "/missing", status: http.StatusBadGateway},
		{path: "/slow", status: http.StatusBadGateway},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			got, err := f.Fetch(context.Background(), base+tt.path, 1024)
			if tt.status != 0 {
				var oe *openai.Error
				if !errors.As(err, &oe) || oe.Status != tt.status {
					t.Fatalf("Fetch error = %v, want status %d", err, tt.status)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Name != tt.name || got.MIMEType != tt.mimeType || string(got.Data) != tt.data || got.NoStore != tt.noStore {
				t.Errorf("Fetch = {%q %q %q nostore=%v}, want {%q %q %q nostore=%v}",
					got.Name, got.MIMEType, got.Data, got.NoStore, tt.name, tt.mimeType, tt.data, tt.noStore)
			}
		})
	}
}

func TestFetchErrorsHideQuery(t *testing.T) {
	srv := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "denied", http.StatusForbidden)
	}))
	f := testFetcher(t, Config{AllowCIDRs: []string{"127.0.0.1/32"}}, mapResolver{})
	_, err := f.Fetch(context.Background(), srv.URL+"/doc.pdf?X-Amz-Signature=topsecret", 1024)
	if err == nil || strings.Contains(err.Error(), "topsecret") {
		t.Fatalf("error = %v, want one without the signature", err)
	}
}
