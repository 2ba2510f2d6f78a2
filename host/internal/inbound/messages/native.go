package messages

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// BedrockVersion is the anthropic_version Claude on Bedrock requires in
// the body of InvokeModel.
const BedrockVersion = "bedrock-2023-05-31"

// NativeBody returns a Messages request body for Anthropic's own API,
// unchanged but for the model, which becomes the route target's.
func NativeBody(body []byte, model string) ([]byte, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, fmt.Errorf("messages: the request body is not an object: %w", err)
	}
	m, err := json.Marshal(model)
	if err != nil {
		return nil, err
	}
	top["model"] = m
	return json.Marshal(top)
}

// BedrockBody returns a Messages request body the way Claude on Bedrock
// takes it through InvokeModel: without model and stream (the path names
// the model and the operation streams or not), with anthropic_version,
// and with the anthropic-beta header's values as anthropic_beta.
func BedrockBody(body []byte, betas string) ([]byte, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, fmt.Errorf("messages: the request body is not an object: %w", err)
	}
	delete(top, "model")
	delete(top, "stream")
	top["anthropic_version"] = json.RawMessage(`"` + BedrockVersion + `"`)
	var list []string
	for _, b := range strings.Split(betas, ",") {
		if b = strings.TrimSpace(b); b != "" {
			list = append(list, b)
		}
	}
	if len(list) > 0 {
		b, err := json.Marshal(list)
		if err != nil {
			return nil, err
		}
		top["anthropic_beta"] = b
	}
	return json.Marshal(top)
}

// UpstreamMessage extracts the message of an upstream error body:
// Anthropic's {"error":{"message"}} or AWS's {"message"} ({"Message"}).
// Anything else gives "".
func UpstreamMessage(body []byte) string {
	var e struct {
		Error *struct {
			Message string `json:"message"`
		} `json:"error"`
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &e) != nil {
		return ""
	}
	if e.Error != nil && e.Error.Message != "" {
		return e.Error.Message
	}
	return e.Message
}

// Meter reads what a native answer says of itself — id, model and usage —
// from a Message body (Body) or from the SSE events of a stream as they
// pass (Write), so that the gateway can settle token limits and record
// the usage in chat completions terms (Chat).
type Meter struct {
	id, model string
	usage     Usage
	known     bool
	// ended is set once message_stop or an error event has passed.
	ended bool
	// line holds the start of an SSE line cut between two writes.
	line []byte
}

// maxMeterLine bounds the SSE line a Meter buffers; longer lines (a huge
// delta) are skipped, never a usage event.
const maxMeterLine = 1 << 20

// Body reads a Message body.
func (m *Meter) Body(b []byte) {
	var msg struct {
		ID    string `json:"id"`
		Model string `json:"model"`
		Usage *Usage `json:"usage"`
	}
	if json.Unmarshal(b, &msg) != nil {
		return
	}
	m.id, m.model = msg.ID, msg.Model
	if msg.Usage != nil {
		m.usage, m.known = *msg.Usage, true
	}
}

// Write reads a piece of an SSE stream; it never fails.
func (m *Meter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if len(m.line)+len(p) <= maxMeterLine {
				m.line = append(m.line, p...)
			} else {
				m.line = append(m.line[:0], "skip"...)
			}
			break
		}
		line := p[:i]
		if len(m.line) > 0 {
			line = append(m.line, line...)
			m.line = m.line[:0]
		}
		m.event(bytes.TrimSuffix(line, []byte("\r")))
		p = p[i+1:]
	}
	return n, nil
}

// event reads one SSE line: the data of message_start and message_delta
// carry the usage; message_delta's counts are totals that replace.
func (m *Meter) event(line []byte) {
	data, ok := bytes.CutPrefix(line, []byte("data:"))
	if !ok || !bytes.Contains(data, []byte(`"message_`)) && !bytes.Contains(data, []byte(`"error"`)) {
		return
	}
	var ev struct {
		Type    string `json:"type"`
		Message *struct {
			ID    string `json:"id"`
			Model string `json:"model"`
			Usage *Usage `json:"usage"`
		} `json:"message"`
		Usage *struct {
			InputTokens              *int64 `json:"input_tokens"`
			CacheCreationInputTokens *int64 `json:"cache_creation_input_tokens"`
			CacheReadInputTokens     *int64 `json:"cache_read_input_tokens"`
			OutputTokens             *int64 `json:"output_tokens"`
		} `json:"usage"`
	}
	if json.Unmarshal(bytes.TrimSpace(data), &ev) != nil {
		return
	}
	switch {
	case ev.Type == "message_stop" || ev.Type == "error":
		m.ended = true
	case ev.Type == "message_start" && ev.Message != nil:
		m.id, m.model = ev.Message.ID, ev.Message.Model
		if ev.Message.Usage != nil {
			m.usage, m.known = *ev.Message.Usage, true
		}
	case ev.Type == "message_delta" && ev.Usage != nil:
		m.known = true
		for _, f := range []struct {
			from *int64
			to   *int64
		}{
			{ev.Usage.InputTokens, &m.usage.InputTokens},
			{ev.Usage.CacheCreationInputTokens, &m.usage.CacheCreationInputTokens},
			{ev.Usage.CacheReadInputTokens, &m.usage.CacheReadInputTokens},
			{ev.Usage.OutputTokens, &m.usage.OutputTokens},
		} {
			if f.from != nil {
				*f.to = *f.from
			}
		}
	}
}

// Ended reports whether the stream's last event, message_stop or error,
// has passed: a stream that stops before it was cut.
func (m *Meter) Ended() bool { return m.ended }

// Pending reports whether the stream so far ends inside a line.
func (m *Meter) Pending() bool { return len(m.line) > 0 }

// Total returns every token of the answer — input, cache reads and
// writes, output — and whether the answer reported its usage.
func (m *Meter) Total() (int64, bool) {
	u := m.usage
	return u.InputTokens + u.CacheCreationInputTokens + u.CacheReadInputTokens + u.OutputTokens, m.known
}

// Chat returns the answer's id, model and usage as a chat completions
// body ({"id","model","usage":{...}}), the terms the gateway records
// usage in: prompt_tokens counts the cached tokens too.
func (m *Meter) Chat() []byte {
	u := m.usage
	type details struct {
		CachedTokens     int64 `json:"cached_tokens"`
		CacheWriteTokens int64 `json:"cache_write_tokens"`
	}
	prompt := u.InputTokens + u.CacheReadInputTokens + u.CacheCreationInputTokens
	b, _ := json.Marshal(map[string]any{
		"id": m.id, "object": "chat.completion", "model": m.model,
		"usage": map[string]any{
			"prompt_tokens": prompt, "completion_tokens": u.OutputTokens, "total_tokens": prompt + u.OutputTokens,
			"prompt_tokens_details": details{CachedTokens: u.CacheReadInputTokens, CacheWriteTokens: u.CacheCreationInputTokens},
		},
	})
	return b
}
