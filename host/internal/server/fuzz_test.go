package server

import (
	"encoding/json"
	"testing"

	"github.com/valyala/fasthttp"
)

// FuzzChatRequest runs the host's reading of a chat request body (the
// duplicate-key check, then the parser that picks model and stream) on
// arbitrary bytes. Besides not panicking, a body the host accepts must
// name the same model and stream flag for every JSON reader: here, Go's
// encoding/json, which the plugins use, and which keeps the last of
// repeated keys where the host's parser keeps the first.
func FuzzChatRequest(f *testing.F) {
	s := New(Options{MaxBodyBytes: 1 << 20})
	f.Fuzz(func(t *testing.T, body []byte) {
		ctx := &fasthttp.RequestCtx{}
		ctx.Request.SetBody(body)
		r := &call{s: s, ctx: ctx}
		if !r.canonical() {
			if ctx.Response.StatusCode() != 400 {
				t.Fatalf("refused with %d", ctx.Response.StatusCode())
			}
			return
		}
		p, err := r.parse(true)
		if err != nil {
			return
		}
		var std struct {
			Model  *string          `json:"model"`
			Stream *json.RawMessage `json:"stream"`
		}
		if err := json.Unmarshal(body, &std); err != nil {
			// fastjson accepts a few inputs encoding/json does not
			// (invalid UTF-8 in strings, say); those never carry a
			// model a plugin would read differently.
			return
		}
		if std.Model == nil || *std.Model != p.model {
			t.Fatalf("host routes model %q, encoding/json reads %v", p.model, std.Model)
		}
		if (std.Stream != nil && string(*std.Stream) == "true") != p.stream {
			t.Fatalf("host reads stream=%v, encoding/json reads %s", p.stream, *std.Stream)
		}
	})
}
