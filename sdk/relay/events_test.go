package relay

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/sdk/openai"
)

func TestEvents(t *testing.T) {
	long := `{"pad":"` + strings.Repeat("x", 200<<10) + `"}`
	tests := []struct {
		name       string
		in         string
		want       []string
		wantStatus int
		wantCode   string
	}{
		{"plain", "data: {\"a\":1}\n\ndata: {\"a\":2}\n\ndata: [DONE]\n\n", []string{`{"a":1}`, `{"a":2}`}, 0, ""},
		{"crlf", "data: {\"a\":1}\r\n\r\ndata: [DONE]\r\n\r\n", []string{`{"a":1}`}, 0, ""},
		{"comments and fields", ": ping\nevent: message\nid: 1\ndata: {\"a\":1}\n\n: keep-alive\n\ndata: [DONE]\n\n", []string{`{"a":1}`}, 0, ""},
		{"multi-line data", "data: {\"a\":\ndata: 1}\n\ndata: [DONE]\n\n", []string{"{\"a\":\n1}"}, 0, ""},
		{"done without newline", "data: {\"a\":1}\n\ndata: [DONE]", []string{`{"a":1}`}, 0, ""},
		{"line longer than the buffer", "data: " + long + "\n\ndata: [DONE]\n\n", []string{long}, 0, ""},
		{"no done", "data: {\"a\":1}\n\n", []string{`{"a":1}`}, http.StatusBadGateway, "upstream_stream_truncated"},
		{"empty body", "", nil, http.StatusBadGateway, "upstream_stream_truncated"},
		{"error event", "data: {\"a\":1}\n\ndata: {\"error\":{\"message\":\"boom\",\"type\":\"server_error\",\"code\":\"overloaded\"}}\n\n", []string{`{"a":1}`}, http.StatusBadGateway, "overloaded"},
		{"error event without code", "data: {\"error\":{\"message\":\"boom\"}}\n\n", nil, http.StatusBadGateway, "upstream_stream_error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := NewEvents("test", strings.NewReader(tt.in))
			defer ev.Release()
			var got []string
			var err error
			for {
				var b []byte
				if b, err = ev.Next(context.Background()); err != nil {
					break
				}
				got = append(got, string(b))
			}
			if tt.wantStatus == 0 && err != io.EOF {
				t.Fatalf("Next ended with %v, want io.EOF", err)
			}
			if tt.wantStatus != 0 {
				var oe *openai.Error
				if !errors.As(err, &oe) || oe.Status != tt.wantStatus || oe.Code != tt.wantCode {
					t.Fatalf("Next ended with %v, want %d %s", err, tt.wantStatus, tt.wantCode)
				}
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("events = %.80q, want %.80q", got, tt.want)
			}
		})
	}
}

func TestEventsBuffered(t *testing.T) {
	tests := []struct {
		name, body string
		want       bool
	}{
		{"next event whole", "data: a\n\ndata: b\n\n", true},
		{"next event whole, CRLF", "data: a\r\n\r\ndata: b\r\n\r\n", true},
		{"next event cut", "data: a\n\ndata: b\n", false},
		{"nothing after", "data: a\n\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := NewEvents("test", strings.NewReader(tt.body))
			defer ev.Release()
			if _, err := ev.Next(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got := ev.Buffered(); got != tt.want {
				t.Errorf("Buffered = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestUpstreamError(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	h := map[string]string{"Retry-After": "7"}
	e := UpstreamError(429, []byte(`{"error":{"message":"slow down","type":"rate_limit_error","code":"rate_limit_exceeded"}}`),
		func(n string) string { return h[n] }, now)
	if e.Status != 429 || e.Code != "rate_limit_exceeded" || e.Message != "slow down" || e.RetryAfter != 7*time.Second {
		t.Errorf("UpstreamError = %+v", e)
	}
	if d := RetryAfter("250", "7", now); d != 250*time.Millisecond {
		t.Errorf("RetryAfter with milliseconds = %v, want 250ms", d)
	}
	if d := RetryAfter("", now.Add(30*time.Second).Format(http.TimeFormat), now); d != 30*time.Second {
		t.Errorf("RetryAfter with a date = %v, want 30s", d)
	}
}

func TestSetModel(t *testing.T) {
	in := []byte(`{"model":"a","messages":[]}`)
	out, err := SetModel(in, "b")
	if err != nil || string(out) != `{"model":"b","messages":[]}` || string(in) != `{"model":"a","messages":[]}` {
		t.Errorf("SetModel = %s, %v (input now %s)", out, err, in)
	}
	if out, _ := SetModel(in, "a"); &out[0] != &in[0] {
		t.Errorf("SetModel copied a body whose model already matched")
	}
}
