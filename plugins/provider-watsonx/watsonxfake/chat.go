package watsonxfake

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"
)

// chatFields are the body fields the text chat API knows; anything else
// is refused, as the API's schema validation does.
var chatFields = map[string]bool{
	"model_id": true, "project_id": true, "space_id": true, "messages": true, "tools": true,
	"tool_choice_option": true, "tool_choice": true, "frequency_penalty": true, "logprobs": true,
	"top_logprobs": true, "max_tokens": true, "max_completion_tokens": true, "n": true,
	"presence_penalty": true, "response_format": true, "seed": true, "stop": true,
	"stop_sequences": true, "temperature": true, "top_p": true, "time_limit": true,
	"reasoning_effort": true, "include_reasoning": true, "repetition_penalty": true,
	"length_penalty": true, "context": true, "chat_template_kwargs": true, "guided_json": true,
	"guided_regex": true, "guided_choice": true, "guided_grammar": true, "parameters": true,
}

// chatRequest is the part of a chat body the fake reads after validation.
type chatRequest struct {
	ModelID  string `json:"model_id"`
	Messages []struct {
		Role       string          `json:"role"`
		Content    json.RawMessage `json:"content"`
		ToolCallID string          `json:"tool_call_id"`
		ToolCalls  []struct {
			ID       string `json:"id"`
			Type     string `json:"type"`
			Function struct {
				Name      string          `json:"name"`
				Arguments json.RawMessage `json:"arguments"`
			} `json:"function"`
		} `json:"tool_calls"`
	} `json:"messages"`
	Tools []struct {
		Type     string `json:"type"`
		Function struct {
			Name       string          `json:"name"`
			Parameters json.RawMessage `json:"parameters"`
		} `json:"function"`
	} `json:"tools"`
	ToolChoiceOption *string         `json:"tool_choice_option"`
	ToolChoice       json.RawMessage `json:"tool_choice"`
	ResponseFormat   json.RawMessage `json:"response_format"`
}

// validateChat checks a chat body the way the API does and returns the
// reason it is refused.
func (s *Server) validateChat(body []byte, deployment string) (*chatRequest, string) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, "Json document validation error: the body is not a JSON object"
	}
	for k := range top {
		if !chatFields[k] {
			return nil, fmt.Sprintf("Json document validation error: unknown field '%s'", k)
		}
	}
	var req chatRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, "Json document validation error: " + err.Error()
	}
	str := func(k string) string {
		var v string
		_ = json.Unmarshal(top[k], &v)
		return v
	}
	if deployment != "" {
		for _, k := range []string{"model_id", "project_id", "space_id"} {
			if _, ok := top[k]; ok {
				return nil, fmt.Sprintf("Json document validation error: '%s' is not allowed when calling a deployment", k)
			}
		}
	} else {
		if req.ModelID == "" {
			return nil, "Json document validation error: 'model_id' is a required property"
		}
		project, space := str("project_id"), str("space_id")
		switch {
		case project == "" && space == "":
			return nil, "Either 'project_id' or 'space_id' must be specified"
		case project != "" && space != "":
			return nil, "Only one of 'project_id' and 'space_id' may be specified"
		case s.opts.ProjectID != "" && project != "" && project != s.opts.ProjectID,
			s.opts.SpaceID != "" && space != "" && space != s.opts.SpaceID:
			return nil, "The project or space does not exist or is not accessible"
		}
	}
	if len(req.Messages) == 0 {
		return nil, "Json document validation error: 'messages' must contain at least one message"
	}
	calls := map[string]bool{}
	for i, m := range req.Messages {
		switch m.Role {
		case "system", "user", "assistant", "tool":
		default:
			return nil, fmt.Sprintf("Json document validation error: messages[%d].role '%s' is not one of system, user, assistant, tool", i, m.Role)
		}
		if reason := validateContent(i, m.Role, m.Content, len(m.ToolCalls) > 0); reason != "" {
			return nil, reason
		}
		for j, tc := range m.ToolCalls {
			if m.Role != "assistant" || tc.ID == "" || tc.Type != "function" || tc.Function.Name == "" ||
				len(tc.Function.Arguments) == 0 || tc.Function.Arguments[0] != '"' {
				return nil, fmt.Sprintf("Json document validation error: messages[%d].tool_calls[%d] needs id, type function, function.name and function.arguments as a string", i, j)
			}
			calls[tc.ID] = true
		}
		if m.Role == "tool" && !calls[m.ToolCallID] {
			return nil, fmt.Sprintf("Json document validation error: messages[%d].tool_call_id '%s' answers no earlier tool call", i, m.ToolCallID)
		}
	}
	for i, t := range req.Tools {
		if t.Type != "function" || t.Function.Name == "" {
			return nil, fmt.Sprintf("Json document validation error: tools[%d] needs type function and function.name", i)
		}
		if len(t.Function.Parameters) > 0 && t.Function.Parameters[0] != '{' {
			return nil, fmt.Sprintf("Json document validation error: tools[%d].function.parameters must be an object", i)
		}
	}
	if o := req.ToolChoiceOption; o != nil && *o != "none" && *o != "auto" && *o != "required" {
		return nil, "Json document validation error: 'tool_choice_option' must be one of none, auto, required"
	}
	if len(req.ToolChoice) > 0 {
		var tc struct {
			Type     string `json:"type"`
			Function struct {
				Name string `json:"name"`
			} `json:"function"`
		}
		if req.ToolChoice[0] != '{' || json.Unmarshal(req.ToolChoice, &tc) != nil || tc.Type != "function" || tc.Function.Name == "" {
			return nil, "Json document validation error: 'tool_choice' must be an object {\"type\":\"function\",\"function\":{\"name\":...}}; use 'tool_choice_option' for none, auto and required"
		}
		if req.ToolChoiceOption != nil {
			return nil, "Only one of 'tool_choice' and 'tool_choice_option' may be specified"
		}
	}
	if len(req.ResponseFormat) > 0 {
		var rf struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(req.ResponseFormat, &rf) != nil || (rf.Type != "text" && rf.Type != "json_object" && rf.Type != "json_schema") {
			return nil, "Json document validation error: 'response_format.type' must be one of text, json_object, json_schema"
		}
	}
	return &req, ""
}

// validateContent checks one message's content.
func validateContent(i int, role string, raw json.RawMessage, hasCalls bool) string {
	if len(raw) == 0 || string(raw) == "null" {
		if role == "assistant" && hasCalls {
			return ""
		}
		return fmt.Sprintf("Json document validation error: messages[%d].content is required", i)
	}
	if raw[0] == '"' {
		return ""
	}
	if role != "user" || raw[0] != '[' {
		return fmt.Sprintf("Json document validation error: messages[%d].content must be a string", i)
	}
	var parts []struct {
		Type     string `json:"type"`
		Text     *string
		ImageURL *struct {
			URL string `json:"url"`
		} `json:"image_url"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return fmt.Sprintf("Json document validation error: messages[%d].content: %v", i, err)
	}
	for j, p := range parts {
		switch {
		case p.Type == "text" && p.Text != nil:
		case p.Type == "image_url" && p.ImageURL != nil &&
			(strings.HasPrefix(p.ImageURL.URL, "data:image/") || strings.HasPrefix(p.ImageURL.URL, "https://")):
		default:
			return fmt.Sprintf("Json document validation error: messages[%d].content[%d] must be a text part or an image_url part with a data:image/ or https URL", i, j)
		}
	}
	return ""
}

// chat serves the chat endpoints.
func (s *Server) chat(w http.ResponseWriter, r *http.Request, body []byte, deployment string, stream bool) {
	model := ""
	if deployment != "" {
		if s.opts.Deployments != nil {
			m, ok := s.opts.Deployments[deployment]
			if !ok {
				writeError(w, http.StatusNotFound, "deployment_not_found", fmt.Sprintf("Deployment with id '%s' does not exist", deployment))
				return
			}
			model = m
		} else {
			model = "deployed/" + deployment
		}
	}
	req, reason := s.validateChat(body, deployment)
	if reason != "" {
		writeError(w, http.StatusBadRequest, "json_validation_error", reason)
		return
	}
	if model == "" {
		model = req.ModelID
	}
	s.mu.Lock()
	sc := s.scenario
	s.mu.Unlock()
	if sc.ResponseDelay > 0 {
		select {
		case <-r.Context().Done():
			return
		case <-time.After(sc.ResponseDelay):
		}
	}
	if sc.ToolResultText != "" && req.Messages[len(req.Messages)-1].Role == "tool" {
		sc.Text, sc.ToolCalls, sc.FinishReason = sc.ToolResultText, nil, ""
	}
	a := newAnswer(sc, model)
	if !stream {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(a.response())
		return
	}
	s.stream(r.Context(), w, sc, a)
}

// answer is a prepared chat answer.
type answer struct {
	id, model, text, finish string
	calls                   []ToolCall
	usage                   Usage
}

func newAnswer(sc Scenario, model string) *answer {
	a := &answer{id: sc.ID, model: sc.Model, text: sc.Text, calls: sc.ToolCalls, finish: sc.FinishReason, usage: sc.Usage}
	if a.id == "" {
		a.id = DefaultID
	}
	if a.model == "" {
		a.model = model
	}
	if a.text == "" && len(a.calls) == 0 {
		a.text = "Hello! How can I help you today?"
	}
	if a.finish == "" {
		a.finish = "stop"
		if len(a.calls) > 0 {
			a.finish = "tool_calls"
		}
	}
	if a.usage == (Usage{}) {
		a.usage = Usage{PromptTokens: 12, CompletionTokens: 9}
	}
	return a
}

func (a *answer) usageJSON() map[string]any {
	u := map[string]any{"completion_tokens": a.usage.CompletionTokens, "prompt_tokens": a.usage.PromptTokens,
		"total_tokens": a.usage.PromptTokens + a.usage.CompletionTokens}
	if a.usage.CachedTokens > 0 {
		u["prompt_tokens_details"] = map[string]int{"cached_tokens": a.usage.CachedTokens}
	}
	if a.usage.ReasoningTokens > 0 {
		u["completion_tokens_details"] = map[string]int{"reasoning_tokens": a.usage.ReasoningTokens}
	}
	return u
}

// envelope is the fields every response and chunk carries.
func (a *answer) envelope() map[string]any {
	return map[string]any{"id": a.id, "model_id": a.model, "model": a.model, "created": DefaultCreated,
		"model_version": "3.3.0", "created_at": time.Unix(DefaultCreated, 0).UTC().Format("2006-01-02T15:04:05.000Z")}
}

func (a *answer) response() map[string]any {
	msg := map[string]any{"role": "assistant", "content": a.text}
	if len(a.calls) > 0 {
		var calls []map[string]any
		for _, c := range a.calls {
			call := map[string]any{"type": "function", "function": map[string]string{"name": c.Name, "arguments": c.Arguments}}
			if c.ID != "" {
				call["id"] = c.ID
			}
			calls = append(calls, call)
		}
		msg["tool_calls"] = calls
	}
	out := a.envelope()
	out["choices"] = []map[string]any{{"index": 0, "message": msg, "finish_reason": a.finish}}
	out["usage"] = a.usageJSON()
	out["system"] = map[string]any{"warnings": []map[string]string{{"message": "This model is a Non-IBM Product governed by a third-party license.", "id": "disclaimer_warning"}}}
	return out
}

// chunks renders the answer as stream chunk payloads.
func (a *answer) chunks(size int, omitIndex, usageChunk bool) []map[string]any {
	chunk := func(delta map[string]any, finish any) map[string]any {
		c := a.envelope()
		c["choices"] = []map[string]any{{"index": 0, "finish_reason": finish, "delta": delta}}
		return c
	}
	out := []map[string]any{chunk(map[string]any{"role": "assistant", "content": ""}, nil)}
	for _, p := range split(a.text, size) {
		out = append(out, chunk(map[string]any{"content": p}, nil))
	}
	for i, c := range a.calls {
		first := map[string]any{"type": "function", "function": map[string]string{"name": c.Name, "arguments": ""}}
		if c.ID != "" {
			first["id"] = c.ID
		}
		if !omitIndex {
			first["index"] = i
		}
		out = append(out, chunk(map[string]any{"tool_calls": []map[string]any{first}}, nil))
		for _, p := range split(c.Arguments, size) {
			frag := map[string]any{"function": map[string]string{"arguments": p}}
			if !omitIndex {
				frag["index"] = i
			}
			out = append(out, chunk(map[string]any{"tool_calls": []map[string]any{frag}}, nil))
		}
	}
	last := chunk(map[string]any{"content": ""}, a.finish)
	if usageChunk {
		out = append(out, last)
		u := a.envelope()
		u["choices"] = []map[string]any{}
		u["usage"] = a.usageJSON()
		return append(out, u)
	}
	last["usage"] = a.usageJSON()
	return append(out, last)
}

// split cuts s into pieces of at most n bytes without splitting a rune.
func split(s string, n int) []string {
	var out []string
	for len(s) > 0 {
		end := min(n, len(s))
		for end < len(s) && end > 0 && s[end]&0xC0 == 0x80 {
			end--
		}
		if end == 0 {
			end = len(s)
		}
		out = append(out, s[:end])
		s = s[end:]
	}
	return out
}

// stream writes the answer as chat_stream events.
func (s *Server) stream(ctx context.Context, w http.ResponseWriter, sc Scenario, a *answer) {
	size := sc.ChunkSize
	if size <= 0 {
		size = 8
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	flush := func() {
		if flusher != nil {
			flusher.Flush()
		}
	}
	flush()
	frame := func(id int, name string, data []byte) []byte {
		return []byte(fmt.Sprintf("id: %d\nevent: %s\ndata: %s\n\n", id, name, data))
	}
	evs := a.chunks(size, sc.OmitIndex, sc.UsageChunk)
	for i, c := range evs {
		if sc.EventDelay > 0 && i > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(sc.EventDelay):
			}
		}
		if ctx.Err() != nil {
			return
		}
		if sc.ErrorAfter > 0 && i == sc.ErrorAfter {
			status, code, msg := sc.ErrorStatus, sc.ErrorCode, sc.ErrorMessage
			if status == 0 {
				status = http.StatusInternalServerError
			}
			if code == "" {
				code, msg = "internal_server_error", "The model failed while generating the answer"
			}
			data, _ := json.Marshal(errorJSON(status, code, msg))
			_, _ = w.Write(frame(i+1, "error", data))
			flush()
			return
		}
		data, _ := json.Marshal(c)
		b := frame(i+1, "message", data)
		if sc.CutAfter > 0 && i == sc.CutAfter {
			_, _ = w.Write(b[:len(b)/2])
			flush()
			return
		}
		if sc.SplitWrites {
			half := bytes.IndexByte(b, '\n') + len(b)/3
			if _, err := w.Write(b[:half]); err != nil {
				return
			}
			flush()
			time.Sleep(time.Millisecond)
			b = b[half:]
		}
		if _, err := w.Write(b); err != nil {
			return
		}
		flush()
	}
	if sc.Done {
		_, _ = w.Write([]byte("id: " + fmt.Sprint(len(evs)+1) + "\nevent: message\ndata: [DONE]\n\n"))
		flush()
	}
	if sc.HoldOpen > 0 {
		select {
		case <-ctx.Done():
		case <-time.After(sc.HoldOpen):
		}
	}
}

// embeddings serves POST /ml/v1/text/embeddings with deterministic
// vectors derived from each input.
func (s *Server) embeddings(w http.ResponseWriter, body []byte) {
	var req struct {
		Inputs    []string `json:"inputs"`
		ModelID   string   `json:"model_id"`
		ProjectID string   `json:"project_id"`
		SpaceID   string   `json:"space_id"`
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil || json.Unmarshal(body, &req) != nil {
		writeError(w, http.StatusBadRequest, "json_validation_error", "Json document validation error: the body is not a valid embeddings request")
		return
	}
	for k := range top {
		switch k {
		case "inputs", "model_id", "project_id", "space_id", "parameters":
		default:
			writeError(w, http.StatusBadRequest, "json_validation_error", fmt.Sprintf("Json document validation error: unknown field '%s'", k))
			return
		}
	}
	switch {
	case req.ModelID == "":
		writeError(w, http.StatusBadRequest, "json_validation_error", "Json document validation error: 'model_id' is a required property")
		return
	case len(req.Inputs) == 0:
		writeError(w, http.StatusBadRequest, "json_validation_error", "Json document validation error: 'inputs' must contain at least one text")
		return
	case (req.ProjectID == "") == (req.SpaceID == ""):
		writeError(w, http.StatusBadRequest, "json_validation_error", "Exactly one of 'project_id' and 'space_id' must be specified")
		return
	}
	results := []map[string]any{}
	tokens := 0
	for _, in := range req.Inputs {
		results = append(results, map[string]any{"embedding": Vector(in)})
		tokens += len(strings.Fields(in)) + 1
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"model_id": req.ModelID, "results": results,
		"created_at": time.Unix(DefaultCreated, 0).UTC().Format("2006-01-02T15:04:05.000Z"), "input_token_count": tokens})
}

// Vector is the embedding the fake returns for text: 8 numbers in
// [-1, 1) derived from its SHA-256.
func Vector(text string) []float64 {
	sum := sha256.Sum256([]byte(text))
	v := make([]float64, 8)
	for i := range v {
		n := binary.BigEndian.Uint32(sum[4*i:])
		v[i] = math.Round((float64(n)/float64(1<<31)-1)*1e6) / 1e6
	}
	return v
}
