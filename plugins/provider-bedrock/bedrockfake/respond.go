package bedrockfake

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
)

// event is one event-stream message the fake sends.
type event struct {
	typ     string
	payload any
	// exception marks an exception frame (typ is the exception type).
	exception bool
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	writeBody(w, v)
}

func writeBody(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		b = []byte(`{"message":"fake encoding error"}`)
	}
	_, _ = w.Write(b)
}

// rawInput returns a tool input as JSON, {} when empty.
func rawInput(t *ToolUse) json.RawMessage {
	if strings.TrimSpace(t.Input) == "" {
		return json.RawMessage("{}")
	}
	return json.RawMessage(t.Input)
}

func converseUsage(u Usage) map[string]int {
	m := map[string]int{"inputTokens": u.Input, "outputTokens": u.Output, "totalTokens": u.Input + u.Output + u.CacheRead + u.CacheWrite}
	if u.Cache {
		m["cacheReadInputTokens"] = u.CacheRead
		m["cacheWriteInputTokens"] = u.CacheWrite
	}
	return m
}

// converseResponse is the Converse JSON answer for a reply.
func converseResponse(r Reply) map[string]any {
	var content []map[string]any
	for _, b := range r.Blocks {
		if b.ToolUse != nil {
			content = append(content, map[string]any{"toolUse": map[string]any{"toolUseId": b.ToolUse.ID, "name": b.ToolUse.Name, "input": rawInput(b.ToolUse)}})
		} else {
			content = append(content, map[string]any{"text": b.Text})
		}
	}
	return map[string]any{
		"output":     map[string]any{"message": map[string]any{"role": "assistant", "content": content}},
		"stopReason": r.StopReason,
		"usage":      converseUsage(r.Usage),
		"metrics":    map[string]int{"latencyMs": 42},
	}
}

// pieces splits s into chunks of at most n bytes without splitting runes.
func pieces(s string, n int) []string {
	if n <= 0 {
		n = 8
	}
	var out []string
	for len(s) > n {
		cut := n
		for cut > 0 && !utf8Start(s[cut]) {
			cut--
		}
		if cut == 0 {
			cut = n
		}
		out = append(out, s[:cut])
		s = s[cut:]
	}
	if s != "" {
		out = append(out, s)
	}
	return out
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

// converseEvents are the ConverseStream events of a reply. Text blocks get
// no contentBlockStart, as on Bedrock; payloads carry the padding field p.
func converseEvents(r Reply) []event {
	evs := []event{{typ: "messageStart", payload: map[string]any{"role": "assistant", "p": "abcdefgh"}}}
	for i, b := range r.Blocks {
		if b.ToolUse != nil {
			evs = append(evs, event{typ: "contentBlockStart", payload: map[string]any{"contentBlockIndex": i,
				"start": map[string]any{"toolUse": map[string]any{"toolUseId": b.ToolUse.ID, "name": b.ToolUse.Name}}}})
			for _, p := range pieces(string(rawInput(b.ToolUse)), r.ChunkSize) {
				evs = append(evs, event{typ: "contentBlockDelta", payload: map[string]any{"contentBlockIndex": i,
					"delta": map[string]any{"toolUse": map[string]any{"input": p}}}})
			}
		} else {
			for _, p := range pieces(b.Text, r.ChunkSize) {
				evs = append(evs, event{typ: "contentBlockDelta", payload: map[string]any{"contentBlockIndex": i,
					"delta": map[string]any{"text": p}, "p": "abc"}})
			}
		}
		evs = append(evs, event{typ: "contentBlockStop", payload: map[string]any{"contentBlockIndex": i}})
	}
	evs = append(evs,
		event{typ: "messageStop", payload: map[string]any{"stopReason": r.StopReason}},
		event{typ: "metadata", payload: map[string]any{"usage": converseUsage(r.Usage), "metrics": map[string]int{"latencyMs": 42}}},
	)
	return evs
}

// stream writes evs as an application/vnd.amazon.eventstream body,
// applying the reply's exception, cut and split controls.
func (f *Fake) stream(w http.ResponseWriter, r Reply, evs []event) {
	if r.Exception != "" && r.ExceptionAfter >= 0 && r.ExceptionAfter <= len(evs) {
		evs = append(evs[:r.ExceptionAfter:r.ExceptionAfter], event{typ: r.Exception, exception: true,
			payload: map[string]string{"message": "The fake model stream failed: " + r.Exception}})
	}
	w.Header().Set("Content-Type", "application/vnd.amazon.eventstream")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	flush := func() {
		if flusher != nil {
			flusher.Flush()
		}
	}
	flush()
	enc := eventstream.NewEncoder()
	for i, ev := range evs {
		frame, err := encodeFrame(enc, ev)
		if err != nil {
			panic(http.ErrAbortHandler)
		}
		if r.CutAfter > 0 && i == r.CutAfter {
			_, _ = w.Write(frame[:len(frame)/2])
			flush()
			panic(http.ErrAbortHandler)
		}
		if r.SplitFrames {
			half := len(frame) / 2
			_, _ = w.Write(frame[:half])
			flush()
			_, _ = w.Write(frame[half:])
		} else {
			_, _ = w.Write(frame)
		}
		flush()
	}
}

// encodeFrame encodes one event-stream message with the SDK's encoder.
func encodeFrame(enc *eventstream.Encoder, ev event) ([]byte, error) {
	payload, err := json.Marshal(ev.payload)
	if err != nil {
		return nil, err
	}
	msg := eventstream.Message{Payload: payload}
	if ev.exception {
		msg.Headers.Set(":message-type", eventstream.StringValue("exception"))
		msg.Headers.Set(":exception-type", eventstream.StringValue(ev.typ))
	} else {
		msg.Headers.Set(":message-type", eventstream.StringValue("event"))
		msg.Headers.Set(":event-type", eventstream.StringValue(ev.typ))
	}
	msg.Headers.Set(":content-type", eventstream.StringValue("application/json"))
	var buf bytes.Buffer
	if err := enc.Encode(&buf, msg); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// invoke serves InvokeModel and InvokeModelWithResponseStream for
// Anthropic chat models and Titan and Cohere embedding models.
func (f *Fake) invoke(w http.ResponseWriter, op, model string, body []byte, r Reply) {
	switch {
	case strings.Contains(model, "anthropic."):
		if fl := validateAnthropic(body); fl != nil {
			writeError(w, "", *fl)
			return
		}
		if op == "invoke" {
			writeJSON(w, anthropicMessage(model, r))
			return
		}
		var evs []event
		for _, e := range anthropicEvents(model, r) {
			b, _ := json.Marshal(e)
			evs = append(evs, event{typ: "chunk", payload: map[string][]byte{"bytes": b}})
		}
		f.stream(w, r, evs)
	case op != "invoke":
		writeError(w, "", *invalid("The model %s does not support response streaming.", model))
	case strings.Contains(model, "titan-embed"):
		f.titan(w, body)
	case strings.Contains(model, "cohere.embed"):
		f.cohere(w, body)
	default:
		writeError(w, "", *invalid("The provided model identifier is invalid."))
	}
}

func anthropicUsage(u Usage, output int) map[string]int {
	m := map[string]int{"input_tokens": u.Input, "output_tokens": output}
	if u.Cache {
		m["cache_read_input_tokens"] = u.CacheRead
		m["cache_creation_input_tokens"] = u.CacheWrite
	}
	return m
}

// anthropicMessage is the Anthropic message object of a reply.
func anthropicMessage(model string, r Reply) map[string]any {
	var content []map[string]any
	for _, b := range r.Blocks {
		if b.ToolUse != nil {
			content = append(content, map[string]any{"type": "tool_use", "id": b.ToolUse.ID, "name": b.ToolUse.Name, "input": rawInput(b.ToolUse)})
		} else {
			content = append(content, map[string]any{"type": "text", "text": b.Text})
		}
	}
	return map[string]any{"id": "msg_bdrk_fake", "type": "message", "role": "assistant", "model": model,
		"content": content, "stop_reason": r.StopReason, "stop_sequence": nil, "usage": anthropicUsage(r.Usage, r.Usage.Output)}
}

// anthropicEvents are the Anthropic stream events of a reply.
func anthropicEvents(model string, r Reply) []map[string]any {
	start := anthropicMessage(model, Reply{Usage: r.Usage})
	start["content"], start["stop_reason"] = []any{}, nil
	start["usage"] = anthropicUsage(r.Usage, 1)
	evs := []map[string]any{{"type": "message_start", "message": start}}
	for i, b := range r.Blocks {
		if b.ToolUse != nil {
			evs = append(evs, map[string]any{"type": "content_block_start", "index": i,
				"content_block": map[string]any{"type": "tool_use", "id": b.ToolUse.ID, "name": b.ToolUse.Name, "input": map[string]any{}}})
			for _, p := range pieces(string(rawInput(b.ToolUse)), r.ChunkSize) {
				evs = append(evs, map[string]any{"type": "content_block_delta", "index": i, "delta": map[string]any{"type": "input_json_delta", "partial_json": p}})
			}
		} else {
			evs = append(evs, map[string]any{"type": "content_block_start", "index": i, "content_block": map[string]any{"type": "text", "text": ""}})
			for _, p := range pieces(b.Text, r.ChunkSize) {
				evs = append(evs, map[string]any{"type": "content_block_delta", "index": i, "delta": map[string]any{"type": "text_delta", "text": p}})
			}
		}
		evs = append(evs, map[string]any{"type": "content_block_stop", "index": i})
	}
	return append(evs,
		map[string]any{"type": "message_delta", "delta": map[string]any{"stop_reason": r.StopReason, "stop_sequence": nil}, "usage": map[string]int{"output_tokens": r.Usage.Output}},
		map[string]any{"type": "message_stop", "amazon-bedrock-invocationMetrics": map[string]int{
			"inputTokenCount": r.Usage.Input, "outputTokenCount": r.Usage.Output, "invocationLatency": 42, "firstByteLatency": 7}},
	)
}

// vector is a deterministic unit vector for text.
func vector(text string, dims int) []float64 {
	v := make([]float64, dims)
	var norm float64
	for i := range v {
		sum := sha256.Sum256([]byte(strconv.Itoa(i) + ":" + text))
		x := float64(int16(binary.BigEndian.Uint16(sum[:2]))) / math.MaxInt16
		v[i] = x
		norm += x * x
	}
	for i := range v {
		v[i] = math.Round(v[i]/math.Sqrt(norm)*1e6) / 1e6
	}
	return v
}

func tokenCount(text string) int { return len(strings.Fields(text)) + 1 }

func (f *Fake) titan(w http.ResponseWriter, body []byte) {
	var req struct {
		InputText  *string `json:"inputText"`
		Dimensions *int    `json:"dimensions"`
	}
	if err := json.Unmarshal(body, &req); err != nil || req.InputText == nil || *req.InputText == "" {
		writeError(w, "", *invalid("Malformed input request: #: required key [inputText] not found, please reformat your input and try again."))
		return
	}
	dims := f.opts.EmbeddingDimensions
	if req.Dimensions != nil {
		if d := *req.Dimensions; d != 256 && d != 512 && d != 1024 {
			writeError(w, "", *invalid("Malformed input request: #/dimensions: %d is not a valid enum value, please reformat your input and try again.", d))
			return
		}
		dims = *req.Dimensions
	}
	n := tokenCount(*req.InputText)
	w.Header().Set("X-Amzn-Bedrock-Input-Token-Count", strconv.Itoa(n))
	writeJSON(w, map[string]any{"embedding": vector(*req.InputText, dims), "inputTextTokenCount": n})
}

func (f *Fake) cohere(w http.ResponseWriter, body []byte) {
	var req struct {
		Texts     []string `json:"texts"`
		InputType string   `json:"input_type"`
	}
	if err := json.Unmarshal(body, &req); err != nil || len(req.Texts) == 0 {
		writeError(w, "", *invalid("Malformed input request: #: required key [texts] not found, please reformat your input and try again."))
		return
	}
	if len(req.Texts) > 96 {
		writeError(w, "", *invalid("Malformed input request: #/texts: expected maximum item count: 96, found: %d, please reformat your input and try again.", len(req.Texts)))
		return
	}
	switch req.InputType {
	case "search_document", "search_query", "classification", "clustering":
	default:
		writeError(w, "", *invalid("Malformed input request: #: required key [input_type] not found, please reformat your input and try again."))
		return
	}
	var vecs [][]float64
	n := 0
	for _, t := range req.Texts {
		vecs = append(vecs, vector(t, f.opts.EmbeddingDimensions))
		n += tokenCount(t)
	}
	w.Header().Set("X-Amzn-Bedrock-Input-Token-Count", strconv.Itoa(n))
	writeJSON(w, map[string]any{"embeddings": vecs, "id": "emb-fake", "response_type": "embeddings_floats", "texts": req.Texts})
}
