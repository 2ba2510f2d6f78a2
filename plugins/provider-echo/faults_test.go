package main

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
)

type chunks [][]byte

func (c *chunks) WriteChunk(b []byte) error {
	*c = append(*c, bytes.Clone(b))
	return nil
}

func faultRequest(model string) *provider.Request {
	return &provider.Request{
		Meta: provider.Meta{Model: model},
		Body: []byte(`{"model":"` + model + `","messages":[{"role":"user","content":"hi"}]}`),
	}
}

func TestFaults(t *testing.T) {
	on := &Echo{}
	if err := on.Configure(context.Background(), &provider.Config{JSON: []byte(`{"faults":true}`)}); err != nil {
		t.Fatal(err)
	}
	off := &Echo{}

	// Off: fault models are ordinary names.
	if _, err := off.ChatCompletion(context.Background(), faultRequest("fault-unauthorized")); err != nil {
		t.Errorf("faults off: %v", err)
	}

	for _, tt := range []struct {
		model  string
		status int
	}{{"fault-unauthorized", 401}, {"fault-forbidden", 403}} {
		_, err := on.ChatCompletion(context.Background(), faultRequest(tt.model))
		var e *openai.Error
		if !errors.As(err, &e) || e.Status != tt.status {
			t.Errorf("%s: %v, want status %d", tt.model, err, tt.status)
		}
	}

	func() {
		defer func() {
			if recover() == nil {
				t.Error("fault-panic did not panic")
			}
		}()
		on.ChatCompletion(context.Background(), faultRequest("fault-panic"))
	}()

	var got chunks
	if err := on.ChatCompletionStream(context.Background(), faultRequest("fault-newline"), &got); err != nil {
		t.Fatal(err)
	}
	if len(got) == 0 || !bytes.Contains(got[0], []byte("\n")) {
		t.Errorf("fault-newline chunks have no raw newline: %q", got)
	}

	if err := on.Health(context.Background()); err != nil {
		t.Fatalf("healthy echo: %v", err)
	}
	if _, err := on.ChatCompletion(context.Background(), faultRequest("fault-sick-300ms")); err != nil {
		t.Fatal(err)
	}
	if err := on.Health(context.Background()); err == nil {
		t.Error("healthy right after fault-sick-300ms")
	}
	time.Sleep(300 * time.Millisecond)
	if err := on.Health(context.Background()); err != nil {
		t.Errorf("still sick after 300ms: %v", err)
	}

	start := time.Now()
	got = nil
	if err := on.ChatCompletionStream(context.Background(), faultRequest("fault-silent-200ms"), &got); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 200*time.Millisecond || len(got) == 0 {
		t.Errorf("fault-silent-200ms answered after %v with %d chunks", d, len(got))
	}
}
