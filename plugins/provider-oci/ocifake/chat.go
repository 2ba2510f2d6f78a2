package ocifake

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"
)

// chatDetails is the body of POST /20231130/actions/chat.
type chatDetails struct {
	CompartmentID string `json:"compartmentId"`
	ServingMode   struct {
		ServingType string `json:"servingType"`
		ModelID     string `json:"modelId"`
		EndpointID  string `json:"endpointId"`
	} `json:"servingMode"`
	ChatRequest json.RawMessage `json:"chatRequest"`
}

// chatRequest holds the chatRequest fields the fake looks at.
type chatRequest struct {
	APIFormat     string `json:"apiFormat"`
	IsStream      bool   `json:"isStream"`
	StreamOptions *struct {
		IsIncludeUsage bool `json:"isIncludeUsage"`
	} `json:"streamOptions"`
	MaxTokens           *int            `json:"maxTokens"`
	MaxCompletionTokens *int            `json:"maxCompletionTokens"`
	NumGenerations      *int            `json:"numGenerations"`
	Messages            []genericMsg    `json:"messages"`
	ToolChoice          json.RawMessage `json:"toolChoice"`
	ResponseFormat      json.RawMessage `json:"responseFormat"`
	Tools               []struct {
		Type string `json:"type"`
		Name string `json:"name"`
	} `json:"tools"`
	Message     *string           `json:"message"`
	ChatHistory []json.RawMessage `json:"chatHistory"`
}

type genericMsg struct {
	Role       string            `json:"role"`
	Content    []json.RawMessage `json:"content"`
	ToolCallID string            `json:"toolCallId"`
}

// genericKeys and cohereKeys are the chatRequest keys each format takes;
// the service refuses others.
var (
	genericKeys = keys("apiFormat messages metadata isStream streamOptions numGenerations seed isEcho topK topP temperature " +
		"frequencyPenalty presencePenalty stop logProbs maxTokens maxCompletionTokens logitBias prediction responseFormat " +
		"toolChoice isParallelToolCalls tools webSearchOptions reasoningEffort verbosity serviceTier")
	cohereKeys = keys("apiFormat message chatHistory documents responseFormat isSearchQueriesOnly preambleOverride isStream " +
		"streamOptions maxTokens maxInputTokens temperature topK topP promptTruncation frequencyPenalty presencePenalty seed " +
		"isEcho tools toolResults isForceSingleStep stopSequences isRawPrompting citationQuality safetyMode")
)

func keys(s string) map[string]bool {
	m := map[string]bool{}
	for _, k := range strings.Fields(s) {
		m[k] = true
	}
	return m
}

// validate checks a chat body the way the service does and returns the
// model id, the parsed chatRequest, or a 400/404 to send.
func (s *Server) validate(body []byte) (string, *chatRequest, *Failure) {
	bad := func(msg string) *Failure { return &Failure{Status: 400, Code: "InvalidParameter", Message: msg} }
	var d chatDetails
	if err := json.Unmarshal(body, &d); err != nil {
		return "", nil, &Failure{Status: 400, Code: "CannotParseRequest", Message: "Unable to parse the request body: " + err.Error()}
	}
	if d.CompartmentID == "" {
		return "", nil, &Failure{Status: 400, Code: "MissingParameter", Message: "compartmentId is required."}
	}
	if d.CompartmentID != s.opts.Compartment {
		return "", nil, &Failure{Status: 404, Code: "NotAuthorizedOrNotFound", Message: "Authorization failed or requested resource not found."}
	}
	model := ""
	switch d.ServingMode.ServingType {
	case "ON_DEMAND":
		model = d.ServingMode.ModelID
		if model == "" || d.ServingMode.EndpointID != "" {
			return "", nil, bad("ON_DEMAND serving needs modelId and no endpointId.")
		}
	case "DEDICATED":
		model = d.ServingMode.EndpointID
		if !strings.HasPrefix(model, "ocid1.generativeaiendpoint.") || d.ServingMode.ModelID != "" {
			return "", nil, bad("DEDICATED serving needs the endpointId of a generativeaiendpoint and no modelId.")
		}
	default:
		return "", nil, bad("servingMode.servingType must be ON_DEMAND or DEDICATED.")
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(d.ChatRequest, &raw); err != nil {
		return "", nil, &Failure{Status: 400, Code: "CannotParseRequest", Message: "chatRequest must be an object."}
	}
	var cr chatRequest
	if err := json.Unmarshal(d.ChatRequest, &cr); err != nil {
		return "", nil, &Failure{Status: 400, Code: "CannotParseRequest", Message: "Unable to parse chatRequest: " + err.Error()}
	}
	allowed := genericKeys
	switch cr.APIFormat {
	case "GENERIC":
		if strings.HasPrefix(model, "cohere.") {
			return "", nil, bad("Model " + model + " does not support the GENERIC apiFormat; use COHERE.")
		}
	case "COHERE":
		allowed = cohereKeys
		if !strings.HasPrefix(model, "cohere.") && d.ServingMode.ServingType == "ON_DEMAND" {
			return "", nil, bad("Model " + model + " does not support the COHERE apiFormat.")
		}
	default:
		return "", nil, bad("chatRequest.apiFormat must be GENERIC or COHERE.")
	}
	for k := range raw {
		if !allowed[k] {
			return "", nil, bad(fmt.Sprintf("Unknown field %q in a %s chatRequest.", k, cr.APIFormat))
		}
	}
	if cr.APIFormat == "COHERE" {
		if cr.Message == nil {
			return "", nil, &Failure{Status: 400, Code: "MissingParameter", Message: "message is required."}
		}
		return model, &cr, nil
	}
	if strings.HasPrefix(model, "openai.") && cr.MaxTokens != nil {
		return "", nil, bad("maxTokens is not supported by " + model + "; use maxCompletionTokens.")
	}
	if len(cr.Messages) == 0 {
		return "", nil, &Failure{Status: 400, Code: "MissingParameter", Message: "messages is required."}
	}
	for i, m := range cr.Messages {
		switch m.Role {
		case "SYSTEM", "DEVELOPER", "USER", "ASSISTANT":
		case "TOOL":
			if m.ToolCallID == "" {
				return "", nil, bad(fmt.Sprintf("messages[%d].toolCallId is required for TOOL messages.", i))
			}
		default:
			return "", nil, bad(fmt.Sprintf("messages[%d].role %q is not valid.", i, m.Role))
		}
	}
	if len(cr.ToolChoice) > 0 {
		var tc struct {
			Type string `json:"type"`
			Name string `json:"name"`
		}
		if json.Unmarshal(cr.ToolChoice, &tc) != nil {
			return "", nil, bad("toolChoice must be an object with a type.")
		}
		switch tc.Type {
		case "AUTO", "NONE", "REQUIRED":
		case "FUNCTION":
			if tc.Name == "" {
				return "", nil, bad("toolChoice FUNCTION needs a name.")
			}
		default:
			return "", nil, bad("toolChoice.type must be AUTO, NONE, REQUIRED or FUNCTION.")
		}
	}
	if len(cr.ResponseFormat) > 0 {
		var rf map[string]json.RawMessage
		if json.Unmarshal(cr.ResponseFormat, &rf) != nil {
			return "", nil, bad("responseFormat must be an object.")
		}
		if js, ok := rf["jsonSchema"]; ok {
			var sch map[string]json.RawMessage
			if json.Unmarshal(js, &sch) != nil {
				return "", nil, bad("responseFormat.jsonSchema must be an object.")
			}
			for k := range sch {
				if k != "name" && k != "description" && k != "schema" && k != "isStrict" {
					return "", nil, bad(fmt.Sprintf("Unknown field %q in responseFormat.jsonSchema.", k))
				}
			}
		}
	}
	return model, &cr, nil
}

// chat serves POST /20231130/actions/chat.
func (s *Server) chat(w http.ResponseWriter, r *http.Request, body []byte) {
	model, cr, fail := s.validate(body)
	if fail != nil {
		writeFailure(w, *fail)
		return
	}
	s.mu.Lock()
	sc := s.scenario
	if len(s.queue) > 0 {
		sc, s.queue = s.queue[0], s.queue[1:]
	}
	s.mu.Unlock()
	if sc.Text == "" && len(sc.ToolCalls) == 0 {
		sc.Text = "Hello from OCI."
	}
	if sc.Usage == (Usage{}) {
		sc.Usage = Usage{Prompt: 12, Completion: 9}
	}
	if sc.ChunkSize <= 0 {
		sc.ChunkSize = 8
	}
	wait(r.Context(), sc.ResponseDelay)
	if cr.IsStream {
		s.stream(w, r, cr, sc)
		return
	}
	var resp any
	if cr.APIFormat == "COHERE" {
		resp = cohereResponse(cr, sc)
	} else {
		resp = genericResponse(sc)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"modelId": model, "modelVersion": "1.0.0", "chatResponse": resp})
}

// usageJSON is the usage object.
func usageJSON(u Usage) map[string]any {
	out := map[string]any{"promptTokens": u.Prompt, "completionTokens": u.Completion, "totalTokens": u.Prompt + u.Completion}
	if u.Cached > 0 {
		out["promptTokensDetails"] = map[string]any{"cachedTokens": u.Cached}
	}
	if u.Reasoning > 0 {
		out["completionTokensDetails"] = map[string]any{"reasoningTokens": u.Reasoning}
	}
	return out
}

// genericFinish is the scenario's GENERIC finishReason.
func genericFinish(sc Scenario) string {
	switch {
	case sc.FinishReason != "":
		return sc.FinishReason
	case len(sc.ToolCalls) > 0:
		return "tool_calls"
	}
	return "stop"
}

// cohereFinish is the scenario's COHERE finishReason.
func cohereFinish(sc Scenario) string {
	if sc.FinishReason != "" {
		return sc.FinishReason
	}
	return "COMPLETE"
}

func genericToolCalls(calls []ToolCall) []map[string]any {
	var out []map[string]any
	for _, c := range calls {
		tc := map[string]any{"type": "FUNCTION", "name": c.Name, "arguments": c.Arguments}
		if c.ID != "" {
			tc["id"] = c.ID
		}
		out = append(out, tc)
	}
	return out
}

func cohereToolCalls(calls []ToolCall) []map[string]any {
	var out []map[string]any
	for _, c := range calls {
		params := json.RawMessage(c.Arguments)
		if !json.Valid(params) {
			params = json.RawMessage("{}")
		}
		out = append(out, map[string]any{"name": c.Name, "parameters": params})
	}
	return out
}

func genericResponse(sc Scenario) map[string]any {
	choice := map[string]any{"index": 0, "finishReason": genericFinish(sc), "logprobs": nil}
	if !sc.NoMessage {
		msg := map[string]any{"role": "ASSISTANT"}
		if sc.Text != "" {
			msg["content"] = []map[string]any{{"type": "TEXT", "text": sc.Text}}
		}
		if len(sc.ToolCalls) > 0 {
			msg["toolCalls"] = genericToolCalls(sc.ToolCalls)
		}
		choice["message"] = msg
	}
	return map[string]any{"apiFormat": "GENERIC", "timeCreated": "2025-01-01T00:00:00.123Z",
		"choices": []any{choice}, "usage": usageJSON(sc.Usage)}
}

func cohereResponse(cr *chatRequest, sc Scenario) map[string]any {
	history := append([]json.RawMessage(nil), cr.ChatHistory...)
	if m, _ := json.Marshal(map[string]any{"role": "USER", "message": *cr.Message}); m != nil {
		history = append(history, m)
	}
	bot := map[string]any{"role": "CHATBOT", "message": sc.Text}
	if len(sc.ToolCalls) > 0 {
		bot["toolCalls"] = cohereToolCalls(sc.ToolCalls)
	}
	if m, _ := json.Marshal(bot); m != nil {
		history = append(history, m)
	}
	out := map[string]any{"apiFormat": "COHERE", "text": sc.Text, "chatHistory": history,
		"finishReason": cohereFinish(sc), "usage": usageJSON(sc.Usage)}
	if len(sc.ToolCalls) > 0 {
		out["toolCalls"] = cohereToolCalls(sc.ToolCalls)
	}
	if sc.ErrorMessage != "" {
		out["errorMessage"] = sc.ErrorMessage
	}
	return out
}

// pieces cuts s into chunks of n bytes, never inside a UTF-8 sequence.
func pieces(s string, n int) []string {
	var out []string
	for len(s) > 0 {
		k := min(n, len(s))
		for k < len(s) && s[k]&0xC0 == 0x80 {
			k++
		}
		out = append(out, s[:k])
		s = s[k:]
	}
	return out
}

// stream writes the scenario as a data-only SSE stream without [DONE].
func (s *Server) stream(w http.ResponseWriter, r *http.Request, cr *chatRequest, sc Scenario) {
	var events []any
	if cr.APIFormat == "COHERE" {
		for _, p := range pieces(sc.Text, sc.ChunkSize) {
			events = append(events, map[string]any{"apiFormat": "COHERE", "text": p})
		}
		if !sc.NoCohereToolEvents {
			for _, c := range sc.ToolCalls {
				events = append(events, map[string]any{"apiFormat": "COHERE", "toolCalls": cohereToolCalls([]ToolCall{c})})
			}
		}
		final := cohereResponse(cr, sc)
		events = append(events, final)
	} else {
		msg := func(m map[string]any) map[string]any {
			m["role"] = "ASSISTANT"
			return map[string]any{"index": 0, "message": m}
		}
		if !sc.NoMessage {
			for _, p := range pieces(sc.Text, sc.ChunkSize) {
				events = append(events, msg(map[string]any{"content": []map[string]any{{"type": "TEXT", "text": p}}}))
			}
		}
		for _, c := range sc.ToolCalls {
			start := map[string]any{"type": "FUNCTION", "name": c.Name, "arguments": ""}
			if c.ID != "" {
				start["id"] = c.ID
			}
			events = append(events, msg(map[string]any{"toolCalls": []any{start}}))
			for _, p := range pieces(c.Arguments, sc.ChunkSize) {
				events = append(events, msg(map[string]any{"toolCalls": []any{map[string]any{"arguments": p}}}))
			}
		}
		fin := msg(map[string]any{})
		fin["finishReason"] = genericFinish(sc)
		events = append(events, fin)
		if cr.StreamOptions != nil && cr.StreamOptions.IsIncludeUsage && !sc.OmitUsage {
			events = append(events, map[string]any{"usage": usageJSON(sc.Usage)})
		}
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
	sep := "\n\n"
	if sc.SingleNewline {
		sep = "\n"
	}
	ctx := r.Context()
	for i, ev := range events {
		if sc.ErrorAfter > 0 && i == sc.ErrorAfter {
			b, _ := json.Marshal(map[string]string{"code": "InternalServerError", "message": "The model failed while generating the response."})
			fmt.Fprintf(w, "data: %s%s", b, sep)
			flush()
			return
		}
		if m, ok := ev.(map[string]any); ok && sc.Pad && cr.APIFormat != "COHERE" {
			m["pad"] = strings.Repeat("a", 1+i%5)
		}
		b, _ := json.Marshal(ev)
		line := "data: " + string(b) + sep
		wait(ctx, sc.EventDelay)
		if sc.CutAfter > 0 && i == sc.CutAfter {
			_, _ = w.Write([]byte(line[:len(line)/2]))
			flush()
			return
		}
		if sc.SplitWrites {
			half := len(line) / 2
			_, _ = w.Write([]byte(line[:half]))
			flush()
			time.Sleep(time.Millisecond)
			_, _ = w.Write([]byte(line[half:]))
		} else {
			_, _ = w.Write([]byte(line))
		}
		flush()
		if ctx.Err() != nil {
			return
		}
	}
	if sc.KeepOpen {
		select {
		case <-ctx.Done():
		case <-s.closing:
		}
	}
}

// embedDetails is the body of POST /20231130/actions/embedText.
type embedDetails struct {
	CompartmentID string `json:"compartmentId"`
	ServingMode   struct {
		ServingType string `json:"servingType"`
		ModelID     string `json:"modelId"`
	} `json:"servingMode"`
	Inputs           []string `json:"inputs"`
	InputType        string   `json:"inputType"`
	Truncate         string   `json:"truncate"`
	OutputDimensions *int     `json:"outputDimensions"`
}

// embed serves embedText with deterministic vectors derived from each
// input's SHA-256.
func (s *Server) embed(w http.ResponseWriter, body []byte) {
	var d embedDetails
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		writeError(w, 400, "CannotParseRequest", "Unable to parse the request body: "+err.Error())
		return
	}
	switch {
	case d.CompartmentID != s.opts.Compartment:
		writeError(w, 404, "NotAuthorizedOrNotFound", "Authorization failed or requested resource not found.")
		return
	case d.ServingMode.ServingType != "ON_DEMAND" || d.ServingMode.ModelID == "":
		writeError(w, 400, "InvalidParameter", "servingMode must be ON_DEMAND with a modelId.")
		return
	case len(d.Inputs) == 0 || len(d.Inputs) > 96:
		writeError(w, 400, "InvalidParameter", "inputs must hold 1 to 96 texts.")
		return
	}
	switch d.InputType {
	case "", "SEARCH_DOCUMENT", "SEARCH_QUERY", "CLASSIFICATION", "CLUSTERING", "IMAGE":
	default:
		writeError(w, 400, "InvalidParameter", "inputType is not valid.")
		return
	}
	dims := 8
	if d.OutputDimensions != nil {
		dims = *d.OutputDimensions
	}
	var vecs [][]float64
	var counts []int
	total := 0
	for _, in := range d.Inputs {
		sum := sha256.Sum256([]byte(in))
		v := make([]float64, dims)
		for i := range v {
			x := binary.BigEndian.Uint16(sum[(2*i)%30:])
			v[i] = math.Round((float64(x)/65535*2-1)*1e4) / 1e4
		}
		vecs = append(vecs, v)
		n := len(strings.Fields(in))
		counts = append(counts, n)
		total += n
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"id": "embed-fake", "embeddings": vecs, "modelId": d.ServingMode.ModelID,
		"modelVersion": "3.0", "inputTextTokenCounts": counts, "usage": map[string]int{"promptTokens": total, "totalTokens": total}})
}
