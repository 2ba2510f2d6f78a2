package main

import (
	"context"
	"io"
	"testing"

	"github.com/llmproxy/llmproxy/plugins/provider-openai/openaifake"
	"github.com/llmproxy/llmproxy/sdk/provider"
	"github.com/llmproxy/llmproxy/sdk/sdktest"
)

const benchBody = `{"model":"gpt-4o","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Say hello to the benchmark."}],"temperature":0.2}`

// BenchmarkChatCompletion measures one chat completion through the real
// gRPC adapters, the plugin and HTTP to the fake in its zero-overhead
// mode. The fake runs in the same process, so its work is included.
func BenchmarkChatCompletion(b *testing.B) {
	f := newFake(b, openaifake.Options{Fast: true})
	c := sdktest.ConnectProvider(b, newProvider(b, f, nil))
	req := chatRequest(benchBody, "")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.ChatCompletion(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkChatCompletionStream measures a short stream (7 chunks) end to
// end, as BenchmarkChatCompletion does.
func BenchmarkChatCompletionStream(b *testing.B) {
	f := newFake(b, openaifake.Options{Fast: true})
	c := sdktest.ConnectProvider(b, newProvider(b, f, nil))
	req := chatRequest(`{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"Say hello."}]}`, "")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		st, err := c.ChatCompletionStream(ctx, req)
		if err != nil {
			b.Fatal(err)
		}
		for {
			if _, err := st.Recv(); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkPrepareChat measures the plugin's own work on a request body:
// validation and the model check, without and with a model rewrite.
func BenchmarkPrepareChat(b *testing.B) {
	for _, bc := range []struct {
		name  string
		model string
	}{{"same model", "gpt-4o"}, {"rewrite model", "gpt-4.1"}} {
		b.Run(bc.name, func(b *testing.B) {
			req := &provider.Request{Meta: provider.Meta{Model: bc.model}, Body: []byte(benchBody)}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := prepareChat(req, false); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
