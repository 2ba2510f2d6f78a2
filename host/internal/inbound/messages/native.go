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

// BedrockChunk appends the SSE event carried by one chunk of
// InvokeModelWithResponseStream, whose payload is {"bytes":"<base64 of
// the Anthropic event>"}.
func BedrockChunk(dst, payload []byte) ([]byte, error) {
	var c struct {
		Bytes []byte `json:"bytes"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return dst, fmt.Errorf("messages: a Bedrock stream chunk is not {\"bytes\":...}: %w", err)
	}
	var ev struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(c.Bytes, &ev); err != nil || ev.Type == "" || strings.ContainsAny(ev.Type, "\r\n") {
		return dst, fmt.Errorf("messages: a Bedrock stream chunk does not hold an Anthropic event")
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, c.Bytes); err != nil {
		return dst, fmt.Errorf("messages: a Bedrock stream chunk: %w", err)
	}
	return event(dst, ev.Type, "", compact.Bytes(), ""), nil
}

// NativeUsage reads the total tokens of a Message body: input, cache
// reads and writes, and output.
func NativeUsage(body []byte) (int64, bool) {
	var m struct {
		Usage *Usage `json:"usage"`
	}
	if json.Unmarshal(body, &m) != nil || m.Usage == nil {
		return 0, false
	}
	u := m.Usage
	return u.InputTokens + u.CacheCreationInputTokens + u.CacheReadInputTokens + u.OutputTokens, true
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

// ChunkException returns the SSE error event for an exception frame of a
// Bedrock stream (throttlingException, modelStreamErrorException…).
func ChunkException(dst []byte, exception string, payload []byte) []byte {
	status := 500
	switch exception {
	case "throttlingException":
		status = 429
	case "validationException":
		status = 400
	case "serviceUnavailableException":
		status = 503
	}
	msg := UpstreamMessage(payload)
	if msg == "" {
		msg = exception
	}
	b, _ := json.Marshal(errorBody{Type: "error", Error: errorObject{Type: ErrorType(status), Message: msg}})
	return event(dst, "error", "", b, "")
}
