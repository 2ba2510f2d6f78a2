package messages

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/llmproxy/llmproxy/sdk/openai"
)

// FuzzRequest checks that any body either translates into a valid chat
// request that names the model and max_tokens, or fails with a 400
// *openai.Error; never a panic.
func FuzzRequest(f *testing.F) {
	for _, s := range []string{
		`{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}]}`,
		`{"model":"m","max_tokens":9,"system":[{"type":"text","text":"s"}],"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"AA=="}},{"type":"tool_result","tool_use_id":"toolu_llmpb_YQ","content":[{"type":"text","text":"r"}]}]},{"role":"assistant","content":[{"type":"tool_use","id":"t","name":"f","input":{"a":1}}]}],"tools":[{"name":"f","input_schema":{}}],"tool_choice":{"type":"tool","name":"f"}}`,
		`{"model":"m","max_tokens":5000,"thinking":{"type":"enabled","budget_tokens":2000},"messages":[{"role":"user","content":[{"type":"document","source":{"type":"content","content":[{"type":"text","text":"t"}]}}]}]}`,
		`{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"document","source":{"type":"text","data":"d"}}]}],"stream":true}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		chat, info, err := Request(body)
		if err != nil {
			var e *openai.Error
			if !errors.As(err, &e) || e.Status != 400 {
				t.Fatalf("error %v is not a 400", err)
			}
			return
		}
		var cr openai.ChatRequest
		if err := json.Unmarshal(chat, &cr); err != nil {
			t.Fatalf("chat body does not decode: %v: %s", err, chat)
		}
		if cr.Model != info.Model || cr.Model == "" || cr.MaxTokens == nil || *cr.MaxTokens < 1 || len(cr.Messages) == 0 || cr.Stream != info.Stream {
			t.Fatalf("chat body %s does not match %+v", chat, info)
		}
	})
}

// FuzzStream feeds arbitrary chunks to a Stream: it must not panic, and
// what it writes must end with message_stop.
func FuzzStream(f *testing.F) {
	f.Add([]byte(`{"id":"c","choices":[{"index":0,"delta":{"content":"a"}}]}`), []byte(`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"x","function":{"name":"f","arguments":"{"}}]},"finish_reason":"tool_calls"}]}`))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		s := NewStream()
		out, _ := s.Events(nil, a)
		out, _ = s.Events(out, b)
		out = s.End(out)
		if len(out) == 0 {
			t.Fatal("no events")
		}
	})
}

// FuzzMeter feeds arbitrary bytes, cut anywhere, to a Meter: it must not
// panic, and the usage it reports must not be negative for input whose
// counts are not.
func FuzzMeter(f *testing.F) {
	f.Add([]byte("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":3}}}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":5}}\n\n"), 5)
	f.Fuzz(func(t *testing.T, b []byte, cut int) {
		var m Meter
		if cut > 0 && cut < len(b) {
			m.Write(b[:cut])
			m.Write(b[cut:])
		} else {
			m.Write(b)
		}
		m.Total()
		if !json.Valid(m.Chat()) {
			t.Fatal("Chat is not JSON")
		}
	})
}
