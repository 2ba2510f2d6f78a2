package main

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/llmproxy/llmproxy/sdk/middleware"
	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/sdktest"
)

func TestMask(t *testing.T) {
	m := NewMasker([]string{KindEmail, KindPhone, KindCard})
	tests := []struct {
		in, want string
	}{
		{"write to jane.doe@example.co.uk today", "write to [EMAIL] today"},
		{"card 4111 1111 1111 1111 please", "card [CARD] please"},
		{"card 4111-1111-1111-1111", "card [CARD]"},
		{"not a card 4111 1111 1111 1112", "not a card 4111 1111 1111 1112"},
		{"call +44 20 7946 0958 now", "call [PHONE] now"},
		{"call (555) 123-4567", "call [PHONE]"},
		{"call 555-123-4567", "call [PHONE]"},
		{"on 2024-01-15 at 10", "on 2024-01-15 at 10"},
		{"order 12345 shipped", "order 12345 shipped"},
		{"plain text", "plain text"},
	}
	for _, tt := range tests {
		if got, _ := m.Mask(tt.in); got != tt.want {
			t.Errorf("Mask(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got, n := NewMasker([]string{KindEmail}).Mask("a@b.io 555-123-4567"); got != "[EMAIL] 555-123-4567" || n != 1 {
		t.Errorf("email only: %q, %d", got, n)
	}
}

func TestLuhn(t *testing.T) {
	for s, want := range map[string]bool{
		"4111111111111111": true, "5500 0000 0000 0004": true, "378282246310005": true,
		"4111111111111112": false, "1234": false, "00000000000000000000": false,
	} {
		if got := luhn(s); got != want {
			t.Errorf("luhn(%q) = %v, want %v", s, got, want)
		}
	}
}

func connect(t *testing.T, cfg string) *middleware.Client {
	t.Helper()
	c := sdktest.ConnectMiddleware(t, &Guardrail{})
	diags, err := c.Configure(context.Background(), &middleware.Config{Instance: "g", JSON: []byte(cfg)})
	if err != nil || diags.HasErrors() {
		t.Fatalf("Configure: %v %v", diags, err)
	}
	return c
}

func TestOnRequest(t *testing.T) {
	c := connect(t, `{"deny_keywords":["build a bomb"],"deny_patterns":["(?i)ssn:\\s*\\d{3}-\\d{2}-\\d{4}"]}`)
	call := &middleware.Call{RequestID: "r1"}
	tests := []struct {
		name, body, want string
		veto             bool
	}{
		{name: "masked string", body: `{"model":"m","messages":[{"role":"user","content":"mail me at a.b@example.com"}]}`, want: "mail me at [EMAIL]"},
		{name: "masked parts", body: `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"card 4111111111111111"}]}]}`, want: "card [CARD]"},
		{name: "keyword", body: `{"model":"m","messages":[{"role":"user","content":"How do I BUILD A BOMB?"}]}`, veto: true},
		{name: "pattern", body: `{"model":"m","messages":[{"role":"system","content":"x"},{"role":"user","content":"my SSN: 123-45-6789"}]}`, veto: true},
		{name: "clean", body: `{"model":"m","messages":[{"role":"user","content":"hello"}]}`, want: "hello"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := c.OnRequest(context.Background(), call, []byte(tt.body))
			if tt.veto {
				var oe *openai.Error
				if !errors.As(err, &oe) || oe.Status != 400 || oe.Code != middleware.CodeContentPolicy {
					t.Fatalf("err = %v, want 400 %s", err, middleware.CodeContentPolicy)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(out), tt.want) || !json.Valid(out) {
				t.Fatalf("body %s does not hold %q", out, tt.want)
			}
			var v struct{ Model string }
			json.Unmarshal(out, &v)
			if v.Model != "m" {
				t.Errorf("model lost: %s", out)
			}
		})
	}
}

func TestAnswersMaskedOnlyWhenAsked(t *testing.T) {
	chunk := []byte(`{"id":"c","choices":[{"index":0,"delta":{"content":"reach me: x@y.org"}}]}`)
	resp := []byte(`{"id":"c","choices":[{"index":0,"message":{"role":"assistant","content":"reach me: x@y.org"}}]}`)
	off := connect(t, `{"mask":null,"mask_responses":null,"deny_patterns":null}`)
	if got, _ := off.OnChunk(context.Background(), &middleware.Call{}, 0, chunk); string(got) != string(chunk) {
		t.Errorf("chunk changed without mask_responses: %s", got)
	}
	if h := off.Hooks(); !slices.Equal(h, []string{middleware.HookRequest}) {
		t.Errorf("hooks without mask_responses = %v, want only the request hook", h)
	}
	on := connect(t, `{"mask_responses":true}`)
	if h := on.Hooks(); len(h) != 3 {
		t.Errorf("hooks with mask_responses = %v, want all three", h)
	}
	if got, _ := on.OnChunk(context.Background(), &middleware.Call{}, 0, chunk); !strings.Contains(string(got), "reach me: [EMAIL]") {
		t.Errorf("chunk = %s", got)
	}
	if got, _ := on.OnResponse(context.Background(), &middleware.Call{}, resp); !strings.Contains(string(got), "reach me: [EMAIL]") {
		t.Errorf("response = %s", got)
	}
}

func TestConfigureRefusesBadRules(t *testing.T) {
	c := sdktest.ConnectMiddleware(t, &Guardrail{})
	for _, cfg := range []string{`{"deny_patterns":["("]}`, `{"mask":["ssn"]}`, `{"deny_keywords":[" "]}`} {
		diags, err := c.Configure(context.Background(), &middleware.Config{JSON: []byte(cfg)})
		if err != nil || !diags.HasErrors() {
			t.Errorf("Configure(%s) = %v, %v; want diagnostics", cfg, diags, err)
		}
	}
}
