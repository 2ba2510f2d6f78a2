package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/plugins/provider-anthropic/anthropicfake"
	"github.com/llmproxy/llmproxy/sdk/provider"
	"github.com/llmproxy/llmproxy/sdk/sdktest"
	"github.com/llmproxy/llmproxy/sdk/sdktest/golden"
)

const nativeBody = `{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"Hi"}]}`

// passthrough sends a native request through the real gRPC adapters and
// returns the status, header and the body pieces as they arrived.
func passthrough(t *testing.T, c *provider.Client, method, path, query string, h http.Header, body string) (int, http.Header, [][]byte) {
	t.Helper()
	st, err := c.Passthrough(context.Background(), &provider.PassthroughRequest{
		Method: method, Path: path, RawQuery: query, Header: h, Body: []byte(body),
	})
	if err != nil {
		t.Fatalf("Passthrough: %v", err)
	}
	var pieces [][]byte
	for {
		b, err := st.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("Recv: %v", err)
		}
		pieces = append(pieces, b)
	}
	return st.Status, st.Header, pieces
}

// direct sends a request straight to the fake, for comparison.
func direct(t *testing.T, f *anthropicfake.Server, body string) []byte {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, f.URL()+"/v1/messages", bytes.NewReader([]byte(body)))
	req.Header.Set("x-api-key", f.APIKey())
	req.Header.Set("anthropic-version", defaultVersion)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPassthrough(t *testing.T) {
	f := startFake(t)
	c := sdktest.ConnectProvider(t, newProvider(t, f))

	t.Run("json with client headers", func(t *testing.T) {
		f.Reset()
		h := http.Header{
			"Authorization":     {"Bearer llmproxy-client-key"},
			"X-Api-Key":         {"llmproxy-client-key"},
			"Anthropic-Version": {"2023-01-01"},
			"Anthropic-Beta":    {"pdfs-2024-09-25"},
			"Content-Type":      {"application/json"},
			"X-Custom":          {"kept"},
		}
		status, rh, pieces := passthrough(t, c, http.MethodPost, "/v1/messages", "", h, nativeBody)
		if status != http.StatusOK || rh.Get("Request-Id") == "" {
			t.Errorf("status %d, request-id %q", status, rh.Get("Request-Id"))
		}
		want := direct(t, f, nativeBody)
		if got := bytes.Join(pieces, nil); !bytes.Equal(got, want) {
			t.Errorf("body changed:\n%s\nwant\n%s", got, want)
		}
		f.Reset()
		passthrough(t, c, http.MethodPost, "/v1/messages", "", h, nativeBody)
		up := f.LastRequest()
		switch {
		case up.Header.Get("X-Api-Key") != f.APIKey():
			t.Errorf("x-api-key was not replaced by the instance key")
		case up.Header.Get("Authorization") != "":
			t.Errorf("the client's Authorization header reached the upstream")
		case up.Header.Get("Anthropic-Version") != "2023-01-01" || up.Header.Get("Anthropic-Beta") != "pdfs-2024-09-25":
			t.Errorf("client anthropic headers not kept: %q %q", up.Header.Get("Anthropic-Version"), up.Header.Get("Anthropic-Beta"))
		case up.Header.Get("X-Custom") != "kept":
			t.Errorf("other client headers not forwarded")
		case up.Path != "/v1/messages" || string(up.Body) != nativeBody:
			t.Errorf("path %q or body %q changed", up.Path, up.Body)
		}
	})

	t.Run("query and default version", func(t *testing.T) {
		f.Reset()
		status, _, pieces := passthrough(t, c, http.MethodGet, "/v1/models", "limit=2", http.Header{}, "")
		if status != http.StatusOK {
			t.Fatalf("status %d: %s", status, bytes.Join(pieces, nil))
		}
		var list struct {
			Data    []json.RawMessage `json:"data"`
			HasMore bool              `json:"has_more"`
		}
		if err := json.Unmarshal(bytes.Join(pieces, nil), &list); err != nil || len(list.Data) != 2 || !list.HasMore {
			t.Errorf("model page: %v %s", err, bytes.Join(pieces, nil))
		}
		if up := f.LastRequest(); up.RawQuery != "limit=2" || up.Header.Get("Anthropic-Version") != defaultVersion {
			t.Errorf("query %q, anthropic-version %q", up.RawQuery, up.Header.Get("Anthropic-Version"))
		}
	})

	t.Run("sse unchanged and flushed", func(t *testing.T) {
		f.Reset()
		f.SetScenario(anthropicfake.Scenario{Content: []anthropicfake.Block{anthropicfake.Text("Streaming through unchanged.")},
			Pings: true, EventDelay: 5 * time.Millisecond})
		body := `{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"Hi"}]}`
		status, rh, pieces := passthrough(t, c, http.MethodPost, "/v1/messages", "", http.Header{"Content-Type": {"application/json"}}, body)
		if status != http.StatusOK || rh.Get("Content-Type") != "text/event-stream; charset=utf-8" {
			t.Errorf("status %d content-type %q", status, rh.Get("Content-Type"))
		}
		if len(pieces) < 5 {
			t.Errorf("stream arrived in %d pieces; it should be relayed event by event", len(pieces))
		}
		want := direct(t, f, body)
		if got := bytes.Join(pieces, nil); !bytes.Equal(got, want) {
			t.Errorf("stream changed:\n%s\nwant\n%s", got, want)
		}
	})

	t.Run("upstream error passed through", func(t *testing.T) {
		f.Reset()
		f.FailNext(1, anthropicfake.Failure{Status: 429, RetryAfter: "3"})
		status, rh, pieces := passthrough(t, c, http.MethodPost, "/v1/messages", "", http.Header{}, nativeBody)
		var eb errorBody
		if err := json.Unmarshal(bytes.Join(pieces, nil), &eb); err != nil || eb.Error.Type != "rate_limit_error" {
			t.Errorf("error body: %v %s", err, bytes.Join(pieces, nil))
		}
		if status != http.StatusTooManyRequests || rh.Get("Retry-After") != "3" {
			t.Errorf("status %d retry-after %q", status, rh.Get("Retry-After"))
		}
	})
}

func TestPassthroughUpstreamDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	a := &Anthropic{}
	cfg := &provider.Config{JSON: []byte(`{"base_url":"http://` + addr + `"}`), Credentials: map[string]string{"api_key": "sk-secret-value"}}
	if err := a.Configure(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	c := sdktest.ConnectProvider(t, a)
	status, _, pieces := passthrough(t, c, http.MethodPost, "/v1/messages", "", http.Header{}, nativeBody)
	body := bytes.Join(pieces, nil)
	var eb errorBody
	if status != http.StatusBadGateway || json.Unmarshal(body, &eb) != nil || eb.Type != "error" || eb.Error.Type != "api_error" {
		t.Errorf("status %d body %s", status, body)
	}
	if bytes.Contains(body, []byte("sk-secret-value")) {
		t.Error("the error leaks the API key")
	}
	if _, err := a.ChatCompletion(context.Background(), &provider.Request{Body: []byte(plainBody)}); golden.Status(err) != http.StatusBadGateway {
		t.Errorf("chat with the upstream down: want 502, got %v", err)
	}
}
