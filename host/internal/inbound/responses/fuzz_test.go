package responses

import (
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	"github.com/llmproxy/llmproxy/sdk/openai"
)

// FuzzParse feeds request bodies to Parse and Chat: they never panic,
// refuse with a 400 in the OpenAI shape, and what they accept becomes a
// chat body with a model and at least one message.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{"model":"m","input":"hi"}`,
		`{"model":"m","instructions":"x","input":[{"role":"user","content":[{"type":"input_text","text":"a"},{"type":"input_image","image_url":"data:image/png;base64,AA=="}]}]}`,
		`{"model":"m","input":[{"type":"function_call","call_id":"c","name":"f","arguments":"{}"},{"type":"function_call_output","call_id":"c","output":"r"}]}`,
		`{"model":"m","input":"x","tools":[{"type":"function","name":"f","parameters":{"type":"object"}}],"tool_choice":{"type":"function","name":"f"}}`,
		`{"model":"m","input":"x","text":{"format":{"type":"json_schema","name":"n","schema":{"type":"object"}}},"reasoning":{"effort":"low"}}`,
		`{"model":"m","previous_response_id":"resp_1"}`,
		`{"model":"m","input":[{"role":"assistant","content":[{"type":"refusal","refusal":"no"}]}]}`,
		`{"model":"m","input":[{"type":"reasoning","id":"r"}]}`,
		`{"model":"m","input":"x","tools":[{"type":"web_search"}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := Parse(body)
		if err != nil {
			var e *openai.Error
			if !errors.As(err, &e) || e.Status != http.StatusBadRequest {
				t.Fatalf("Parse error %v is not a 400", err)
			}
			return
		}
		chat, err := req.Chat(nil)
		if err != nil {
			var e *openai.Error
			if !errors.As(err, &e) || e.Status != http.StatusBadRequest {
				t.Fatalf("Chat error %v is not a 400", err)
			}
			return
		}
		var c struct {
			Model    string            `json:"model"`
			Messages []json.RawMessage `json:"messages"`
		}
		if err := json.Unmarshal(chat, &c); err != nil {
			t.Fatalf("chat body is not JSON: %v\n%s", err, chat)
		}
		if c.Model == "" || len(c.Messages) == 0 {
			t.Fatalf("chat body without model or messages: %s", chat)
		}
		// The converter writes a response for any request it accepted.
		conv := NewConverter(req, "resp_f", created, false)
		if events := parseSSE(t, conv.End(nil)); len(events) != 3 {
			t.Fatalf("an empty stream gave %d events", len(events))
		}
	})
}

// FuzzEvents feeds chat chunks to a stream converter: it never panics,
// and the stream it writes keeps its invariants (see checkStream).
func FuzzEvents(f *testing.F) {
	f.Add([]byte(chunk(`{"content":"a"}`, "")), []byte(chunk(`{"tool_calls":[{"index":0,"id":"c","function":{"name":"f","arguments":"{}"}}]}`, "tool_calls")))
	f.Add([]byte(chunk(`{"tool_calls":[{"function":{"arguments":"x"}}]}`, "")), []byte(usageChunk))
	f.Add([]byte(chunk(`{"refusal":"r"}`, "length")), []byte(chunk(`{"tool_calls":[{"index":99999999,"function":{"arguments":"1"}}]}`, "")))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		req, _ := Parse([]byte(`{"model":"m","input":"x","stream":true}`))
		c := NewConverter(req, "resp_f", created, false)
		var out []byte
		for _, ch := range [][]byte{a, b} {
			next, err := c.Events(out, ch)
			if err != nil {
				continue
			}
			out = next
		}
		out = c.End(out)
		final := c.Final()
		if final == nil {
			t.Fatal("no final response after End")
		}
		// Arguments need not be JSON here: the chunks are arbitrary.
		for i := range final.Output {
			if final.Output[i].Type == "function_call" {
				final.Output[i].Arguments = ""
			}
		}
		events := parseSSE(t, out)
		if last := events[len(events)-1].name; last != "response.completed" && last != "response.incomplete" {
			t.Fatalf("stream ends with %s", last)
		}
	})
}
