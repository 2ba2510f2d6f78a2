package server

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
	"github.com/valyala/fastjson"

	"github.com/llmproxy/llmproxy/host/internal/auth"
	"github.com/llmproxy/llmproxy/host/internal/config"
	"github.com/llmproxy/llmproxy/host/internal/plugins"
	"github.com/llmproxy/llmproxy/host/internal/router"
)

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// logged serves s over an in-memory listener and returns a client and
// the server's log.
func logged(t *testing.T, mutate func(*Server)) (*fasthttp.Client, *fasthttputil.InmemoryListener, *syncBuffer) {
	t.Helper()
	keys, err := auth.New([]config.APIKey{
		{Name: "user", Key: "sk-user", Models: []string{"*"}},
		{Name: "admin", Key: "sk-admin", Admin: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	rtr, err := router.New(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	mgr := plugins.Start(&config.File{}, plugins.Options{Logger: hclog.NewNullLogger()})
	t.Cleanup(mgr.Stop)
	logs := &syncBuffer{}
	log := hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Trace})
	s := New(Options{Keys: keys, Router: rtr, Plugins: mgr, Logger: log, MaxBodyBytes: 1024, RequestTimeout: time.Second, AccessLog: true})
	if mutate != nil {
		mutate(s)
	}
	ln := fasthttputil.NewInmemoryListener()
	hs := s.HTTPServer()
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Shutdown(); ln.Close() })
	return &fasthttp.Client{Dial: func(string) (net.Conn, error) { return ln.Dial() }}, ln, logs
}

func get(t *testing.T, c *fasthttp.Client, path, key string) (int, []byte, string) {
	t.Helper()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://llmproxy" + path)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if err := c.Do(req, resp); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode(), append([]byte(nil), resp.Body()...), string(resp.Header.Peek("X-Request-Id"))
}

// TestPanicRecovered checks that a panic behind the recover stage
// becomes a 500 in the OpenAI shape with the request id, is logged with
// its stack, and leaves the server serving.
func TestPanicRecovered(t *testing.T) {
	c, _, logs := logged(t, func(s *Server) {
		route := s.route
		s.handler = chain(func(r *call) {
			if string(r.ctx.Path()) == "/v1/panic" {
				r.ctx.Response.Header.Set("X-Half-Written", "yes")
				panic("handler bug")
			}
			route(r)
		}, s.recoverPanic, s.withRequestID, s.authenticate, s.observe)
	})
	status, body, id := get(t, c, "/v1/panic", "sk-user")
	if status != 500 || id == "" {
		t.Fatalf("status %d, request id %q: %s", status, id, body)
	}
	var e struct {
		Error struct{ Type, Code, Message string }
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Error.Type != "server_error" || e.Error.Code != "internal_error" {
		t.Fatalf("not an OpenAI server_error: %s", body)
	}
	if strings.Contains(string(body), "handler bug") {
		t.Errorf("the panic value reached the client: %s", body)
	}
	log := logs.String()
	for _, want := range []string{"panic serving request", "handler bug", "request_id=" + id, "chain_test.go"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if status, _, _ := get(t, c, "/healthz", ""); status != 200 {
		t.Errorf("after the panic /healthz answered %d", status)
	}
}

// TestReadyzDetailsForAdmins checks that only an admin key sees instance
// details, and that a draining server answers 503.
func TestReadyzDetailsForAdmins(t *testing.T) {
	var srv *Server
	c, _, _ := logged(t, func(s *Server) { srv = s })
	tests := []struct {
		name, key string
		details   bool
	}{
		{"anonymous", "", false},
		{"plain key", "sk-user", false},
		{"wrong key", "sk-nope", false},
		{"admin key", "sk-admin", true},
	}
	for _, tt := range tests {
		_, body, _ := get(t, c, "/readyz", tt.key)
		var out map[string]any
		if err := json.Unmarshal(body, &out); err != nil {
			t.Fatalf("%s: %s", tt.name, body)
		}
		if _, has := out["instances"]; has != tt.details {
			t.Errorf("%s: instances shown = %v, want %v: %s", tt.name, has, tt.details, body)
		}
	}
	srv.Drain()
	status, body, _ := get(t, c, "/readyz", "sk-admin")
	if status != 503 || !strings.Contains(string(body), `"status":"draining"`) {
		t.Errorf("draining: %d %s", status, body)
	}
}

// TestMalformedRequestSecrets sends requests fasthttp cannot parse, each
// with a key in its headers: neither the response nor the log may
// contain it.
func TestMalformedRequestSecrets(t *testing.T) {
	const secret = "sk-live-0123456789abcdef"
	_, ln, logs := logged(t, nil)
	requests := []string{
		"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + secret + "\r\nContent-Length: zz\r\n\r\n",
		"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + secret + "\r\nBroken header line\r\n\r\n",
		"BAD\x00 /v1 HTTP/1.1\r\nAuthorization: Bearer " + secret + "\r\n\r\n",
		"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-API-Key: " + secret + "\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
	}
	for i, raw := range requests {
		conn, err := ln.Dial()
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		conn.Write([]byte(raw))
		var resp fasthttp.Response
		if err := resp.Read(bufio.NewReader(conn)); err != nil {
			t.Fatalf("request %d: no response: %v", i, err)
		}
		conn.Close()
		if resp.StatusCode() < 400 {
			t.Errorf("request %d: status %d", i, resp.StatusCode())
		}
		if strings.Contains(resp.String(), secret) {
			t.Errorf("request %d: the response echoes the key:\n%s", i, resp.String())
		}
		if !bytes.HasPrefix(resp.Body(), []byte(`{"error":`)) {
			t.Errorf("request %d: not an OpenAI error: %s", i, resp.Body())
		}
	}
	time.Sleep(50 * time.Millisecond)
	if log := logs.String(); strings.Contains(log, secret) || strings.Contains(log, "0123456789abcdef") {
		t.Errorf("the log contains the key:\n%s", log)
	}
}

func TestDuplicateKey(t *testing.T) {
	tests := []struct {
		body, want string
	}{
		{`{"model":"a","messages":[]}`, ""},
		{`{"model":"a","model":"b"}`, "model"},
		{`{"model":"a","messages":[{"role":"user"},{"content":[{"type":"text","type":"file"}]}]}`, "messages[1].content[0].type"},
		{`{"a":{"b":1,"c":{"d":1,"d":2}}}`, "a.c.d"},
		{`{"a":{"b":1},"b":1}`, ""},
		{`{"mod\u0065l":"a","model":"b"}`, "model"},
		{`not json`, ""},
		{`[{"x":1,"x":2}]`, "[0].x"},
		// encoding/json fills Model from "MODEL" too, and folds the
		// Kelvin sign (U+212A) and the long s (U+017F) to k and s.
		{`{"model":"a","MODEL":"b"}`, "MODEL"},
		{`{"stream":false,"\u017ftream":true}`, "ſtream"},
		{`{"a":{"key":1,"\u212aey":2}}`, "a.\u212aey"},
	}
	var pool fastjson.ParserPool
	for _, tt := range tests {
		got, dup := duplicateKey(&pool, []byte(tt.body))
		if got != tt.want || dup != (tt.want != "") {
			t.Errorf("duplicateKey(%s) = %q %v, want %q", tt.body, got, dup, tt.want)
		}
	}
}

// TestInexactField: a top-level key that only a case-insensitive reader
// takes for a field the host decides on is refused, since the host would
// not see it.
func TestInexactField(t *testing.T) {
	tests := []struct {
		body, want string
	}{
		{`{"model":"a","stream":true,"messages":[]}`, ""},
		{`{"model":"a","StreAm":true}`, "StreAm"},
		{`{"Model":"a"}`, "Model"},
		{`{"model":"a","messages":[{"Stream":1}]}`, ""},
		{`{"model":"a","temperature":1}`, ""},
		{`not json`, ""},
	}
	var pool fastjson.ParserPool
	for _, tt := range tests {
		got, bad := inexactField(&pool, []byte(tt.body))
		if got != tt.want || bad != (tt.want != "") {
			t.Errorf("inexactField(%s) = %q %v, want %q", tt.body, got, bad, tt.want)
		}
	}
}

func TestLoneSurrogate(t *testing.T) {
	tests := map[string]bool{
		`{"a":"x"}`:                  false,
		`{"a":"\ud83d\ude00"}`:       false,
		`{"a":"\\ud800"}`:            false,
		`{"a":"\u00e9\u4e2d"}`:       false,
		`{"a":"\ud800"}`:             true,
		`{"a":"\udc00x"}`:            true,
		`{"a":"\ud800\u0041"}`:       true,
		`{"a":"\\\ud800"}`:           true,
		`{"a":"\ud83d\ude00\udc00"}`: true,
	}
	for body, want := range tests {
		if got := loneSurrogate([]byte(body)); got != want {
			t.Errorf("loneSurrogate(%s) = %v, want %v", body, got, want)
		}
	}
}
