package main

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/llmproxy/llmproxy/sdk/middleware"
	"github.com/llmproxy/llmproxy/sdk/openai"
)

// FuzzOnRequest checks that any body is answered with valid JSON, a
// 4xx *openai.Error, or left as it is — never a panic.
func FuzzOnRequest(f *testing.F) {
	for _, s := range []string{
		`{"model":"m","messages":[{"role":"user","content":"a@b.io 4111 1111 1111 1111"}]}`,
		`{"messages":[{"content":[{"type":"text","text":"+1 (415) 555-0100"}]}]}`,
		`{"messages":"x"}`, `[]`, `{"messages":[{"content":null}]}`,
	} {
		f.Add([]byte(s))
	}
	g := &Guardrail{}
	if err := g.Configure(context.Background(), &middleware.Config{JSON: []byte(`{"deny_keywords":["forbidden"],"mask_responses":true}`)}); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		out, err := g.OnRequest(context.Background(), &middleware.Call{}, body)
		var oe *openai.Error
		switch {
		case err != nil && (!errors.As(err, &oe) || oe.Status != 400):
			t.Fatalf("OnRequest(%q) = %v; want a 400 or an answer", body, err)
		case out != nil && !json.Valid(out):
			t.Fatalf("OnRequest(%q) = %q, not JSON", body, out)
		}
		if out, err := g.OnResponse(context.Background(), &middleware.Call{}, body); err != nil || (out != nil && !json.Valid(out)) {
			t.Fatalf("OnResponse(%q) = %q, %v", body, out, err)
		}
	})
}
