package openaifake

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// chatRequest is the part of a chat request the fake looks at.
type chatRequest struct {
	Model               string          `json:"model"`
	Messages            []chatMessage   `json:"messages"`
	Stream              bool            `json:"stream"`
	StreamOptions       *streamOptions  `json:"stream_options"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	Stop                json.RawMessage `json:"stop"`
	ResponseFormat      *struct {
		Type string `json:"type"`
	} `json:"response_format"`
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

type chatMessage struct {
	Role       string          `json:"role"`
	Content    json.RawMessage `json:"content"`
	ToolCallID string          `json:"tool_call_id"`
}

type contentPart struct {
	Type     string `json:"type"`
	Text     string `json:"text"`
	ImageURL *struct {
		URL string `json:"url"`
	} `json:"image_url"`
	File *struct {
		Filename string `json:"filename"`
		FileData string `json:"file_data"`
		FileID   string `json:"file_id"`
	} `json:"file"`
}

// message is a decoded chat message: its text and a note of what else it
// carried.
type message struct {
	role        string
	text        string
	attachments []string
}

// answer is what the fake model says to a request.
type answer struct {
	id        string
	model     string
	text      string
	toolCalls []ToolCall
	finish    string
	prompt    int
	// cached and reasoning are the usage details the scenario reports.
	cached, reasoning int
}

func (s *Server) serveChat(w http.ResponseWriter, r *http.Request, body []byte, sc Scenario) {
	var req chatRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, apiError{Type: typeInvalidRequest,
			Message: "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly.)"})
		return
	}
	msgs, aerr := validateChat(&req)
	if aerr != nil {
		writeError(w, http.StatusBadRequest, *aerr)
		return
	}
	if !s.models[req.Model] {
		writeError(w, http.StatusNotFound, apiError{Type: typeInvalidRequest, Code: "model_not_found",
			Message: "The model `" + req.Model + "` does not exist or you do not have access to it."})
		return
	}
	a := reply(&req, msgs, body, sc)
	if req.Stream {
		s.streamChat(w, r, &req, a, sc)
		return
	}
	if !s.wait(r, sc.ChunkDelay) {
		return
	}
	writeJSON(w, http.StatusOK, completionJSON(a))
}

// validateChat checks a chat request the way OpenAI does and decodes its
// messages.
func validateChat(req *chatRequest) ([]message, *apiError) {
	if req.Model == "" {
		return nil, &apiError{Type: typeInvalidRequest, Param: "model", Message: "you must provide a model parameter"}
	}
	if len(req.Messages) == 0 {
		return nil, &apiError{Type: typeInvalidRequest, Param: "messages", Code: "empty_array",
			Message: "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead."}
	}
	out := make([]message, 0, len(req.Messages))
	for i, m := range req.Messages {
		switch m.Role {
		case "system", "developer", "user", "assistant", "tool", "function":
		default:
			return nil, &apiError{Type: typeInvalidRequest, Param: fmt.Sprintf("messages[%d].role", i), Code: "invalid_value",
				Message: fmt.Sprintf("Invalid value: '%s'. Supported values are: 'system', 'assistant', 'user', 'function', 'tool', and 'developer'.", m.Role)}
		}
		if m.Role == "tool" && m.ToolCallID == "" {
			return nil, &apiError{Type: typeInvalidRequest, Param: fmt.Sprintf("messages[%d].tool_call_id", i),
				Message: "Missing required parameter: 'messages[" + strconv.Itoa(i) + "].tool_call_id'."}
		}
		msg, aerr := decodeContent(i, m)
		if aerr != nil {
			return nil, aerr
		}
		out = append(out, msg)
	}
	return out, nil
}

func decodeContent(i int, m chatMessage) (message, *apiError) {
	msg := message{role: m.Role}
	c := bytes.TrimSpace(m.Content)
	switch {
	case len(c) == 0 || string(c) == "null":
		return msg, nil
	case c[0] == '"':
		if err := json.Unmarshal(c, &msg.text); err != nil {
			return msg, &apiError{Type: typeInvalidRequest, Param: fmt.Sprintf("messages[%d].content", i), Message: "Invalid content string."}
		}
		return msg, nil
	}
	var parts []contentPart
	if err := json.Unmarshal(c, &parts); err != nil {
		return msg, &apiError{Type: typeInvalidRequest, Param: fmt.Sprintf("messages[%d].content", i), Code: "invalid_type",
			Message: "Invalid type for 'messages[" + strconv.Itoa(i) + "].content': expected one of a string or array of objects."}
	}
	var text strings.Builder
	for j, p := range parts {
		param := fmt.Sprintf("messages[%d].content[%d]", i, j)
		switch p.Type {
		case "text", "refusal":
			text.WriteString(p.Text)
		case "image_url":
			if p.ImageURL == nil || p.ImageURL.URL == "" {
				return msg, &apiError{Type: typeInvalidRequest, Param: param + ".image_url", Message: "Missing required parameter: '" + param + ".image_url.url'."}
			}
			msg.attachments = append(msg.attachments, "image")
		case "input_audio", "audio":
			msg.attachments = append(msg.attachments, "audio")
		case "file":
			name, aerr := checkFile(param, p)
			if aerr != nil {
				return msg, aerr
			}
			msg.attachments = append(msg.attachments, "file "+name)
		default:
			return msg, &apiError{Type: typeInvalidRequest, Param: param + ".type", Code: "invalid_value",
				Message: fmt.Sprintf("Invalid value: '%s'. Supported values are: 'text', 'image_url', 'input_audio', 'refusal', 'audio', and 'file'.", p.Type)}
		}
	}
	msg.text = text.String()
	return msg, nil
}

// checkFile validates a file part: a file_id, or file_data holding a
// base64 data URL. It returns a description of the file.
func checkFile(param string, p contentPart) (string, *apiError) {
	if p.File == nil || (p.File.FileData == "" && p.File.FileID == "") {
		return "", &apiError{Type: typeInvalidRequest, Param: param + ".file", Message: "Expected file_data or file_id in '" + param + ".file'."}
	}
	if p.File.FileID != "" {
		return p.File.FileID, nil
	}
	mime, payload, ok := strings.Cut(strings.TrimPrefix(p.File.FileData, "data:"), ";base64,")
	if !strings.HasPrefix(p.File.FileData, "data:") || !ok || mime == "" {
		return "", &apiError{Type: typeInvalidRequest, Param: param + ".file.file_data", Code: "invalid_value",
			Message: "Invalid file data: expected a base64-encoded data URL."}
	}
	data, err := base64.StdEncoding.DecodeString(payload)
	if err != nil {
		return "", &apiError{Type: typeInvalidRequest, Param: param + ".file.file_data", Code: "invalid_value",
			Message: "Invalid base64 in file data."}
	}
	if p.File.Filename == "" {
		return "", &apiError{Type: typeInvalidRequest, Param: param + ".file.filename", Message: "Missing required parameter: '" + param + ".file.filename'."}
	}
	return fmt.Sprintf("%s (%s, %d bytes)", p.File.Filename, mime, len(data)), nil
}

// reply decides the fake model's answer.
func reply(req *chatRequest, msgs []message, body []byte, sc Scenario) *answer {
	sum := sha256.Sum256(body)
	a := &answer{id: "chatcmpl-" + hex.EncodeToString(sum[:10]), model: req.Model, finish: "stop",
		cached: sc.CachedTokens, reasoning: sc.ReasoningTokens}
	for _, m := range msgs {
		a.prompt += 3 + words(m.text) + 10*len(m.attachments)
	}
	a.prompt += a.cached
	if len(sc.ToolCalls) > 0 {
		a.toolCalls = sc.ToolCalls
		a.finish = "tool_calls"
		if sc.FinishReason != "" {
			a.finish = sc.FinishReason
		}
		return a
	}
	a.text = sc.Reply
	if a.text == "" {
		a.text = defaultReply(msgs)
	}
	if req.ResponseFormat != nil && (req.ResponseFormat.Type == "json_object" || req.ResponseFormat.Type == "json_schema") {
		b, _ := json.Marshal(map[string]string{"reply": a.text})
		a.text = string(b)
	}
	for _, stop := range stops(req.Stop) {
		if i := strings.Index(a.text, stop); stop != "" && i >= 0 {
			a.text = a.text[:i]
		}
	}
	limit := 0
	switch {
	case req.MaxCompletionTokens != nil:
		limit = *req.MaxCompletionTokens
	case req.MaxTokens != nil:
		limit = *req.MaxTokens
	}
	if limit > 0 {
		if pieces := strings.SplitAfter(a.text, " "); len(pieces) > limit {
			a.text = strings.Join(pieces[:limit], "")
			a.finish = "length"
		}
	}
	if sc.FinishReason != "" {
		a.finish = sc.FinishReason
	}
	return a
}

// defaultReply answers the last message: a tool result is acknowledged,
// a user message echoed with a note of its attachments.
func defaultReply(msgs []message) string {
	last := msgs[len(msgs)-1]
	if last.role == "tool" {
		return "The tool said: " + last.text
	}
	for i := len(msgs) - 1; i >= 0; i-- {
		m := msgs[i]
		if m.role != "user" {
			continue
		}
		out := "You said: " + m.text
		if len(m.attachments) > 0 {
			out += " [with " + strings.Join(m.attachments, "; ") + "]"
		}
		return out
	}
	return "Hello!"
}

func stops(raw json.RawMessage) []string {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}
	}
	var many []string
	_ = json.Unmarshal(raw, &many)
	return many
}

func words(s string) int { return len(strings.Fields(s)) }

func (a *answer) completionTokens() int {
	n := words(a.text)
	for _, tc := range a.toolCalls {
		n += 5 + len(tc.Arguments)/4
	}
	return n
}

// Wire shapes of responses.
type (
	usageJSON struct {
		PromptTokens            int `json:"prompt_tokens"`
		CompletionTokens        int `json:"completion_tokens"`
		TotalTokens             int `json:"total_tokens"`
		PromptTokensDetails     any `json:"prompt_tokens_details"`
		CompletionTokensDetails any `json:"completion_tokens_details"`
	}
	functionJSON struct {
		Name      string `json:"name,omitempty"`
		Arguments string `json:"arguments"`
	}
	toolCallJSON struct {
		Index    *int         `json:"index,omitempty"`
		ID       string       `json:"id,omitempty"`
		Type     string       `json:"type,omitempty"`
		Function functionJSON `json:"function"`
	}
	messageJSON struct {
		Role        string         `json:"role"`
		Content     *string        `json:"content"`
		Refusal     *string        `json:"refusal"`
		ToolCalls   []toolCallJSON `json:"tool_calls,omitempty"`
		Annotations []any          `json:"annotations"`
	}
	choiceJSON struct {
		Index        int         `json:"index"`
		Message      messageJSON `json:"message"`
		Logprobs     any         `json:"logprobs"`
		FinishReason string      `json:"finish_reason"`
	}
	completionJSONBody struct {
		ID                string       `json:"id"`
		Object            string       `json:"object"`
		Created           int64        `json:"created"`
		Model             string       `json:"model"`
		Choices           []choiceJSON `json:"choices"`
		Usage             usageJSON    `json:"usage"`
		ServiceTier       string       `json:"service_tier"`
		SystemFingerprint string       `json:"system_fingerprint"`
	}
	deltaJSON struct {
		Role      string         `json:"role,omitempty"`
		Content   *string        `json:"content,omitempty"`
		ToolCalls []toolCallJSON `json:"tool_calls,omitempty"`
	}
	chunkChoiceJSON struct {
		Index        int       `json:"index"`
		Delta        deltaJSON `json:"delta"`
		Logprobs     any       `json:"logprobs"`
		FinishReason *string   `json:"finish_reason"`
	}
	chunkJSON struct {
		ID                string            `json:"id"`
		Object            string            `json:"object"`
		Created           int64             `json:"created"`
		Model             string            `json:"model"`
		SystemFingerprint string            `json:"system_fingerprint"`
		Choices           []chunkChoiceJSON `json:"choices"`
		Usage             json.RawMessage   `json:"usage,omitempty"`
	}
)

func (a *answer) usage() usageJSON {
	c := a.completionTokens() + a.reasoning
	return usageJSON{
		PromptTokens: a.prompt, CompletionTokens: c, TotalTokens: a.prompt + c,
		PromptTokensDetails:     map[string]int{"cached_tokens": a.cached, "audio_tokens": 0},
		CompletionTokensDetails: map[string]int{"reasoning_tokens": a.reasoning, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
	}
}

func completionJSON(a *answer) []byte {
	msg := messageJSON{Role: "assistant", Annotations: []any{}}
	if len(a.toolCalls) == 0 {
		t := a.text
		msg.Content = &t
	}
	for _, tc := range a.toolCalls {
		msg.ToolCalls = append(msg.ToolCalls, toolCallJSON{ID: tc.ID, Type: "function",
			Function: functionJSON{Name: tc.Name, Arguments: tc.Arguments}})
	}
	b, _ := json.Marshal(completionJSONBody{
		ID: a.id, Object: "chat.completion", Created: Created, Model: a.model,
		Choices:     []choiceJSON{{Index: 0, Message: msg, FinishReason: a.finish}},
		Usage:       a.usage(),
		ServiceTier: "default", SystemFingerprint: "fp_fake",
	})
	return b
}

// chunks returns the data payloads of a's stream, without [DONE].
func (a *answer) chunks(includeUsage bool) [][]byte {
	var out [][]byte
	add := func(choices []chunkChoiceJSON, usage json.RawMessage) {
		if includeUsage && usage == nil {
			usage = json.RawMessage("null")
		}
		b, _ := json.Marshal(chunkJSON{ID: a.id, Object: "chat.completion.chunk", Created: Created, Model: a.model,
			SystemFingerprint: "fp_fake", Choices: choices, Usage: usage})
		out = append(out, b)
	}
	delta := func(d deltaJSON) {
		add([]chunkChoiceJSON{{Delta: d}}, nil)
	}
	if len(a.toolCalls) == 0 {
		empty := ""
		delta(deltaJSON{Role: "assistant", Content: &empty})
		for _, piece := range strings.SplitAfter(a.text, " ") {
			if piece == "" {
				continue
			}
			p := piece
			delta(deltaJSON{Content: &p})
		}
	}
	for i, tc := range a.toolCalls {
		d := deltaJSON{ToolCalls: []toolCallJSON{{Index: &i, ID: tc.ID, Type: "function", Function: functionJSON{Name: tc.Name}}}}
		if i == 0 {
			d.Role = "assistant"
		}
		delta(d)
		half := len(tc.Arguments) / 2
		for half > 0 && !utf8.RuneStart(tc.Arguments[half]) {
			half--
		}
		for _, piece := range []string{tc.Arguments[:half], tc.Arguments[half:]} {
			if piece != "" {
				delta(deltaJSON{ToolCalls: []toolCallJSON{{Index: &i, Function: functionJSON{Arguments: piece}}}})
			}
		}
	}
	finish := a.finish
	add([]chunkChoiceJSON{{Delta: deltaJSON{}, FinishReason: &finish}}, nil)
	if includeUsage {
		u, _ := json.Marshal(a.usage())
		add([]chunkChoiceJSON{}, u)
	}
	return out
}

func (s *Server) streamChat(w http.ResponseWriter, r *http.Request, req *chatRequest, a *answer, sc Scenario) {
	flusher, _ := w.(http.Flusher)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	if flusher != nil {
		flusher.Flush()
	}
	write := func(event []byte) bool {
		if !s.wait(r, sc.ChunkDelay) {
			return false
		}
		if sc.SplitEvents && len(event) > 1 {
			half := len(event) / 2
			if _, err := w.Write(event[:half]); err != nil {
				s.cancelled.Add(1)
				return false
			}
			if flusher != nil {
				flusher.Flush()
			}
			time.Sleep(2 * time.Millisecond)
			event = event[half:]
		}
		if _, err := w.Write(event); err != nil {
			s.cancelled.Add(1)
			return false
		}
		if flusher != nil {
			flusher.Flush()
		}
		return true
	}
	for i, c := range a.chunks(req.StreamOptions != nil && req.StreamOptions.IncludeUsage) {
		if sc.Break != BreakNone && i == sc.BreakAfter {
			if sc.Break == BreakError {
				write(sseEvent(errorBody(apiError{Type: typeServer, Code: "server_error",
					Message: "The server had an error while processing your request. Sorry about that!"})))
			}
			return
		}
		if !write(sseEvent(c)) {
			return
		}
	}
	write([]byte("data: [DONE]\n\n"))
}

func sseEvent(data []byte) []byte {
	out := make([]byte, 0, len(data)+8)
	out = append(out, "data: "...)
	out = append(out, data...)
	return append(out, "\n\n"...)
}
