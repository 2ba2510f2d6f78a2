package server

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

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
