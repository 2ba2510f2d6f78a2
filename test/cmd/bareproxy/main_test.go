package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// startProxy serves a proxy to upstream on a fresh loopback port and
// returns its URL.
func startProxy(t *testing.T, upstream string) string {
	t.Helper()
	p, err := newProxy(upstream, 16)
	if err != nil {
		t.Fatalf("newProxy: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := p.server()
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	return "http://" + ln.Addr().String()
}

func TestNewProxyRejectsBadUpstreams(t *testing.T) {
	for _, upstream := range []string{"", "127.0.0.1:80", "https://127.0.0.1:443", "http://", "://x"} {
		if _, err := newProxy(upstream, 1); err == nil {
			t.Errorf("newProxy(%q) accepted an upstream it cannot serve", upstream)
		}
	}
}

func TestForwardsRequestsUnchanged(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Seen-Path", r.URL.RequestURI())
		w.Header().Set("X-Seen-Auth", r.Header.Get("Authorization"))
		w.Header().Set("X-Seen-Host", r.Host)
		w.Header().Set("X-Seen-Connection", r.Header.Get("Keep-Alive"))
		w.WriteHeader(http.StatusTeapot)
		w.Write(append([]byte(r.Method+" "), body...))
	}))
	defer up.Close()
	proxyURL := startProxy(t, up.URL)
	upHost := strings.TrimPrefix(up.URL, "http://")

	tests := []struct {
		name, method, path, body string
	}{
		{"post with body", http.MethodPost, "/v1/chat/completions", `{"model":"gpt-4o","messages":[]}`},
		{"get with query", http.MethodGet, "/v1/models?limit=2&after=x", ""},
		{"delete", http.MethodDelete, "/v1/files/file-1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, proxyURL+tt.path, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer sk-up")
			req.Header.Set("Keep-Alive", "timeout=5")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusTeapot {
				t.Errorf("status %d, want the upstream's %d", resp.StatusCode, http.StatusTeapot)
			}
			if want := tt.method + " " + tt.body; string(got) != want {
				t.Errorf("body %q, want %q", got, want)
			}
			checks := map[string]string{
				"X-Seen-Path":       tt.path,
				"X-Seen-Auth":       "Bearer sk-up",
				"X-Seen-Host":       upHost,
				"X-Seen-Connection": "",
			}
			for h, want := range checks {
				if v := resp.Header.Get(h); v != want {
					t.Errorf("%s = %q, want %q", h, v, want)
				}
			}
		})
	}
}

func TestRelaysStreamsAsTheyArrive(t *testing.T) {
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Write([]byte("data: first\n\n"))
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		w.Write([]byte("data: [DONE]\n\n"))
	}))
	defer up.Close()
	defer close(release)
	proxyURL := startProxy(t, up.URL)

	lines := make(chan string, 1)
	go func() {
		resp, err := http.Post(proxyURL+"/v1/chat/completions", "application/json", strings.NewReader(`{"stream":true}`))
		if err != nil {
			lines <- "error: " + err.Error()
			return
		}
		defer resp.Body.Close()
		line, _ := bufio.NewReader(resp.Body).ReadString('\n')
		lines <- line
	}()
	// The upstream holds the rest of its stream until release is closed,
	// so the first event can only arrive if the proxy relays it at once.
	select {
	case line := <-lines:
		if line != "data: first\n" {
			t.Errorf("first line %q, want %q", line, "data: first\n")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the first event was held back until the upstream finished")
	}
}

func TestUnreachableUpstreamIs502(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	proxyURL := startProxy(t, dead)

	resp, err := http.Get(proxyURL + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "upstream") {
		t.Errorf("status %d body %q, want 502 naming the upstream", resp.StatusCode, body)
	}
}
