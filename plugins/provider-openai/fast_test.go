package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/plugins/provider-openai/openaifake"
)

// TestFastCancellationReachesUpstream cancels a non-streamed call while
// the upstream is still working: the call returns at once and the
// upstream sees its client go away.
func TestFastCancellationReachesUpstream(t *testing.T) {
	f := newFake(t, openaifake.Options{})
	f.SetScenario(openaifake.Scenario{ChunkDelay: 3 * time.Second})
	p := newProvider(t, f, nil)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err := p.ChatCompletion(ctx, chatRequest(`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`, ""))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("the call returned %v after it was cancelled", d)
	}
	if !f.WaitCancelled(5 * time.Second) {
		t.Fatal("the fake did not see the client go away")
	}
}

// TestFastDeadline bounds a call by its context's deadline when it is
// shorter than the configured timeout: 504 upstream_timeout.
func TestFastDeadline(t *testing.T) {
	f := newFake(t, openaifake.Options{})
	f.SetScenario(openaifake.Scenario{ChunkDelay: 3 * time.Second})
	p := newProvider(t, f, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := p.ChatCompletion(ctx, chatRequest(`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`, ""))
	wantError(t, err, http.StatusGatewayTimeout, "upstream_timeout")
}

// TestFastConnectionReuse checks that keep-alive connections are reused,
// that one the upstream closed while idle is replaced without an error,
// and that an answer with Connection: close is not kept.
func TestFastConnectionReuse(t *testing.T) {
	var conns atomic.Int32
	closeNext := atomic.Bool{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if closeNext.Swap(false) {
			w.Header().Set("Connection", "close")
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"object":"chat.completion","choices":[]}`))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	p := &OpenAI{}
	if err := p.Configure(context.Background(), configFor(srv.URL+"/v1", testKey, nil)); err != nil {
		t.Fatal(err)
	}
	call := func() {
		t.Helper()
		if _, err := p.ChatCompletion(context.Background(), chatRequest(`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`, "")); err != nil {
			t.Fatal(err)
		}
	}
	call()
	call()
	if n := conns.Load(); n != 1 {
		t.Errorf("two calls opened %d connections, want 1", n)
	}
	srv.CloseClientConnections()
	call()
	if n := conns.Load(); n != 2 {
		t.Errorf("after the upstream closed the idle connection: %d connections, want 2", n)
	}
	closeNext.Store(true)
	call()
	call()
	if n := conns.Load(); n != 3 {
		t.Errorf("after Connection: close: %d connections, want 3", n)
	}
}

// TestFastStreamReusesConnection reads two streams one after the other:
// both arrive whole, and the second reuses the first one's connection.
func TestFastStreamReusesConnection(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for _, ev := range []string{`{"choices":[{"delta":{"content":"a"}}]}`, `{"choices":[{"delta":{"content":"b"}}]}`, "[DONE]"} {
			w.Write([]byte("data: " + ev + "\n\n"))
			w.(http.Flusher).Flush()
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	p := &OpenAI{}
	if err := p.Configure(context.Background(), configFor(srv.URL+"/v1", testKey, nil)); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		var got chunks
		err := p.ChatCompletionStream(context.Background(), chatRequest(`{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}`, ""), &got)
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		if len(got) != 2 {
			t.Fatalf("stream %d relayed %q, want 2 chunks", i, got)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("two streams opened %d connections, want 1", n)
	}
}
