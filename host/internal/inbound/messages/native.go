package messages

import (
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
