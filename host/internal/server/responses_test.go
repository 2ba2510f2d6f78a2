package server

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/valyala/fasthttp"

	"github.com/llmproxy/llmproxy/host/internal/inbound/responses"
	"github.com/llmproxy/llmproxy/sdk/openai"
)

const respCompletion = `{"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`

// TestResponsesDialectStores checks which finished responses are kept,
// for whom and until when.
func TestResponsesDialectStores(t *testing.T) {
	chunk := []byte(`{"model":"m","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}`)
	tests := []struct {
		name   string
		keep   bool
		finish func(d *responsesDialect)
		stored bool
	}{
		{"json answer kept", true, func(d *responsesDialect) { d.Response([]byte(respCompletion)) }, true},
		{"stream kept at its end", true, func(d *responsesDialect) { d.Events(nil, chunk); d.End(nil) }, true},
		{"store false", false, func(d *responsesDialect) { d.Response([]byte(respCompletion)) }, false},
		{"failed stream not kept", true, func(d *responsesDialect) {
			d.Events(nil, chunk)
			d.StreamError(nil, openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "upstream_error", "cut"))
			d.End(nil)
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := responses.Parse([]byte(`{"model":"m","input":"hello"}`))
			if err != nil {
				t.Fatal(err)
			}
			mem := responses.NewMemory(10, 0)
			d := &responsesDialect{
				Converter: responses.NewConverter(req, "resp_1", time.Now(), tt.keep),
				keep:      tt.keep, store: mem, owner: "alice", expiry: time.Hour, log: hclog.NewNullLogger(),
				input: req.Items(),
			}
			tt.finish(d)
			b, err := mem.GetResponse(context.Background(), "resp_1", "alice")
			if stored := err == nil; stored != tt.stored {
				t.Fatalf("stored %v (%v), want %v", stored, err, tt.stored)
			}
			if !tt.stored {
				return
			}
			rec, err := responses.DecodeStored(b)
			if err != nil {
				t.Fatal(err)
			}
			if rec.Response.Status != responses.StatusCompleted || len(rec.Input) != 1 || len(rec.Items()) != 2 {
				t.Errorf("record %s", b)
			}
			if _, err := mem.GetResponse(context.Background(), "resp_1", "bob"); !mem.IsNotFound(err) {
				t.Errorf("another owner read it: %v", err)
			}
		})
	}
}

// FuzzResponsesRequest runs the host's reading of a Responses request on
// arbitrary bytes: the duplicate-key check, the Responses parser and its
// chat translation, then the chat parser. A request the translation
// accepts must become a chat body the chat path accepts, with the same
// model and stream flag.
func FuzzResponsesRequest(f *testing.F) {
	for _, s := range []string{
		`{"model":"m","input":"hi","stream":true}`,
		`{"model":"m","instructions":"be brief","input":[{"type":"function_call","call_id":"c","name":"f","arguments":"{}"},{"type":"function_call_output","call_id":"c","output":"r"}]}`,
		`{"model":"m","input":[{"role":"user","content":[{"type":"input_text","text":"a"}]}],"max_output_tokens":5}`,
		`{"model":"m","Model":"n","input":"x"}`,
	} {
		f.Add([]byte(s))
	}
	s := New(Options{MaxBodyBytes: 1 << 20})
	f.Fuzz(func(t *testing.T, body []byte) {
		ctx := &fasthttp.RequestCtx{}
		ctx.Request.SetBody(body)
		r := &call{s: s, ctx: ctx}
		if !r.canonical() {
			return
		}
		req, err := responses.Parse(body)
		if err != nil {
			return
		}
		chat, err := req.Chat(nil)
		if err != nil {
			return
		}
		ctx.Request.SetBody(chat)
		p, err := r.parse(true)
		if err != nil {
			t.Fatalf("the chat path refuses the translation of %s: %v\n%s", body, err, chat)
		}
		if p.model != req.Model || p.stream != req.Stream {
			t.Fatalf("chat path reads model %q stream %v, the request says %q %v", p.model, p.stream, req.Model, req.Stream)
		}
	})
}
