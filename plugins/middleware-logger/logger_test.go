package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llmproxy/llmproxy/sdk/middleware"
	"github.com/llmproxy/llmproxy/sdk/sdktest"
)

func TestRedact(t *testing.T) {
	tests := []struct {
		name, in string
		absent   []string
		present  []string
	}{
		{name: "secret keys", in: `{"api_key":"abc123","Authorization":"Bearer zzz","access_token":"t0k","max_tokens":50}`,
			absent: []string{"abc123", "zzz", "t0k"}, present: []string{`"max_tokens":50`}},
		{name: "secrets in text", in: `{"messages":[{"role":"user","content":"my key is sk-proj-ABCDEFGHIJKLMNOP and AKIAABCDEFGHIJKLMNOP"}]}`,
			absent: []string{"sk-proj-ABCDEFGHIJKLMNOP", "AKIAABCDEFGHIJKLMNOP"}, present: []string{"my key is [REDACTED]"}},
		{name: "extra field", in: `{"user":"alice","model":"m"}`, absent: []string{"alice"}, present: []string{`"model":"m"`}},
		{name: "not json", in: `Bearer abcdefghijkl`, absent: []string{"abcdefghijkl"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, _ := json.Marshal(redactJSON([]byte(tt.in), map[string]bool{"user": true}))
			for _, s := range tt.absent {
				if strings.Contains(string(b), s) {
					t.Errorf("%s leaks %q", b, s)
				}
			}
			for _, s := range tt.present {
				if !strings.Contains(string(b), s) {
					t.Errorf("%s lacks %q", b, s)
				}
			}
		})
	}
}

func TestWritesRedactedLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chat.log")
	c := sdktest.ConnectMiddleware(t, &Logger{})
	cfg, _ := json.Marshal(map[string]any{"path": path})
	if diags, err := c.Configure(context.Background(), &middleware.Config{Instance: "log", JSON: cfg}); err != nil || diags.HasErrors() {
		t.Fatalf("Configure: %v %v", diags, err)
	}
	if h := c.Hooks(); strings.Join(h, ",") != "request,response" {
		t.Errorf("hooks = %v, want request,response (chunks is off)", h)
	}
	call := &middleware.Call{RequestID: "req-9", KeyName: "team"}
	req := []byte(`{"model":"m","api_key":"sk-live-1234567890","messages":[{"role":"user","content":"hi"}]}`)
	if out, err := c.OnRequest(context.Background(), call, req); err != nil || string(out) != string(req) {
		t.Fatalf("OnRequest changed the body or failed: %q %v", out, err)
	}
	if _, err := c.OnResponse(context.Background(), call, []byte(`{"choices":[{"message":{"content":"hello"}}]}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.OnChunk(context.Background(), call, 0, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if st, _ := f.Stat(); st.Mode().Perm() != 0o600 {
		t.Errorf("log file mode %v, want 0600", st.Mode().Perm())
	}
	var events []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "sk-live") {
			t.Errorf("line leaks the key: %s", sc.Text())
		}
		var e Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("line is not JSON: %s", sc.Text())
		}
		if e.RequestID != "req-9" || e.Key != "team" {
			t.Errorf("entry %+v", e)
		}
		events = append(events, e.Event)
	}
	if strings.Join(events, ",") != "request,response" {
		t.Errorf("events = %v, want request,response (no chunk lines unless chunks = true)", events)
	}
}
