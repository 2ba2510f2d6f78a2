package azurefake

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"math"
	"net/http"
	"slices"
	"strings"
)

// created is the fixed creation time of every reply, so replies are
// reproducible.
const created = 1730000000

const fingerprint = "fp_azurefake"

// chatRequest is the part of an OpenAI chat body the fake looks at.
type chatRequest struct {
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	Stop                json.RawMessage `json:"stop"`
	Stream              bool            `json:"stream"`
	StreamOptions       *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	Tools          []json.RawMessage `json:"tools"`
	ResponseFormat *struct {
		Type string `json:"type"`
	} `json:"response_format"`
}

type severity struct {
	Filtered bool   `json:"filtered"`
	Severity string `json:"severity"`
}

type detection struct {
	Filtered bool `json:"filtered"`
	Detected bool `json:"detected"`
}

type filterResults struct {
	Hate      severity   `json:"hate"`
	SelfHarm  severity   `json:"self_harm"`
	Sexual    severity   `json:"sexual"`
	Violence  severity   `json:"violence"`
	Jailbreak *detection `json:"jailbreak,omitempty"`
}

func safeFilter() filterResults {
	safe := severity{Severity: "safe"}
	return filterResults{Hate: safe, SelfHarm: safe, Sexual: safe, Violence: safe}
}

type promptFilter struct {
	PromptIndex          int           `json:"prompt_index"`
	ContentFilterResults filterResults `json:"content_filter_results"`
}

type usage struct {
	PromptTokens            int                `json:"prompt_tokens"`
	CompletionTokens        int                `json:"completion_tokens"`
	TotalTokens             int                `json:"total_tokens"`
	PromptTokensDetails     *promptDetails     `json:"prompt_tokens_details,omitempty"`
	CompletionTokensDetails *completionDetails `json:"completion_tokens_details,omitempty"`
}

type promptDetails struct {
	AudioTokens  int `json:"audio_tokens"`
	CachedTokens int `json:"cached_tokens"`
}

type completionDetails struct {
	AcceptedPredictionTokens int `json:"accepted_prediction_tokens"`
	AudioTokens              int `json:"audio_tokens"`
	ReasoningTokens          int `json:"reasoning_tokens"`
	RejectedPredictionTokens int `json:"rejected_prediction_tokens"`
}

type function struct {
	Name      string `json:"name,omitempty"`
	Arguments string `json:"arguments"`
}

type toolCall struct {
	Index    *int     `json:"index,omitempty"`
	ID       string   `json:"id,omitempty"`
	Type     string   `json:"type,omitempty"`
	Function function `json:"function"`
}

type message struct {
	Role      string     `json:"role"`
	Content   *string    `json:"content"`
	Refusal   *string    `json:"refusal"`
	ToolCalls []toolCall `json:"tool_calls,omitempty"`
}

type choice struct {
	Index                int             `json:"index"`
	FinishReason         string          `json:"finish_reason"`
	Logprobs             json.RawMessage `json:"logprobs"`
	Message              message         `json:"message"`
	ContentFilterResults *filterResults  `json:"content_filter_results,omitempty"`
}

type completion struct {
	ID                  string         `json:"id"`
	Object              string         `json:"object"`
	Created             int64          `json:"created"`
	Model               string         `json:"model"`
	PromptFilterResults []promptFilter `json:"prompt_filter_results"`
	Choices             []choice       `json:"choices"`
	Usage               usage          `json:"usage"`
	SystemFingerprint   string         `json:"system_fingerprint"`
}

type delta struct {
	Role      string     `json:"role,omitempty"`
	Content   *string    `json:"content,omitempty"`
	Refusal   *string    `json:"refusal,omitempty"`
	ToolCalls []toolCall `json:"tool_calls,omitempty"`
}

type offsets struct {
	CheckOffset int `json:"check_offset"`
	StartOffset int `json:"start_offset"`
	EndOffset   int `json:"end_offset"`
}

type chunkChoice struct {
	Index                int             `json:"index"`
	Delta                *delta          `json:"delta,omitempty"`
	FinishReason         *string         `json:"finish_reason"`
	Logprobs             json.RawMessage `json:"logprobs,omitempty"`
	ContentFilterResults *filterResults  `json:"content_filter_results,omitempty"`
	ContentFilterOffsets *offsets        `json:"content_filter_offsets,omitempty"`
}

type chunk struct {
	Choices             []chunkChoice   `json:"choices"`
	Created             int64           `json:"created"`
	ID                  string          `json:"id"`
	Model               string          `json:"model"`
	Object              string          `json:"object"`
	SystemFingerprint   string          `json:"system_fingerprint,omitempty"`
	PromptFilterResults []promptFilter  `json:"prompt_filter_results,omitempty"`
	Usage               json.RawMessage `json:"usage,omitempty"`
}

// reply is what the fake answers to one chat request.
type reply struct {
	id        string
	model     string
	text      *string
	toolCalls []ToolCall
	finish    string
	usage     usage
}

func buildReply(req *chatRequest, model string, sc Scenario) *reply {
	r := &reply{model: model, finish: "stop"}
	msgs, _ := json.Marshal(req.Messages)
	sum := sha256.Sum256(append(msgs, model...))
	r.id = "chatcmpl-" + hex.EncodeToString(sum[:12])
	prompt := 0
	for _, m := range req.Messages {
		prompt += 4 + contentTokens(m.Content)
	}
	completionTokens := 0
	if len(sc.ToolCalls) > 0 && len(req.Tools) > 0 {
		r.toolCalls = sc.ToolCalls
		r.finish = "tool_calls"
		for _, tc := range sc.ToolCalls {
			completionTokens += 3 + len(strings.Fields(tc.Name+" "+tc.Arguments))
		}
	} else {
		text := sc.Text
		if text == "" {
			text = DefaultText
		}
		if req.ResponseFormat != nil && (req.ResponseFormat.Type == "json_object" || req.ResponseFormat.Type == "json_schema") {
			b, _ := json.Marshal(map[string]string{"reply": text})
			text = string(b)
		}
		max := 0
		if req.MaxCompletionTokens != nil {
			max = *req.MaxCompletionTokens
		} else if req.MaxTokens != nil {
			max = *req.MaxTokens
		}
		if words := strings.SplitAfter(text, " "); max > 0 && len(words) > max {
			text = strings.TrimRight(strings.Join(words[:max], ""), " ")
			r.finish = "length"
		}
		for _, stop := range stops(req.Stop) {
			if i := strings.Index(text, stop); stop != "" && i >= 0 {
				text = text[:i]
				r.finish = "stop"
			}
		}
		r.text = &text
		completionTokens = len(strings.Fields(text))
	}
	if sc.FinishReason != "" {
		r.finish = sc.FinishReason
	}
	r.usage = usage{PromptTokens: prompt, CompletionTokens: completionTokens, TotalTokens: prompt + completionTokens}
	if sc.CachedTokens > 0 || sc.ReasoningTokens > 0 {
		r.usage.PromptTokens += sc.CachedTokens
		r.usage.CompletionTokens += sc.ReasoningTokens
		r.usage.TotalTokens = r.usage.PromptTokens + r.usage.CompletionTokens
		r.usage.PromptTokensDetails = &promptDetails{CachedTokens: sc.CachedTokens}
		r.usage.CompletionTokensDetails = &completionDetails{ReasoningTokens: sc.ReasoningTokens}
	}
	return r
}

func stops(raw json.RawMessage) []string {
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}
	}
	var many []string
	json.Unmarshal(raw, &many)
	return many
}

// contentTokens is a rough token count of a message content: words of
// text, and a fixed cost per image or file part.
func contentTokens(raw json.RawMessage) int {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return len(strings.Fields(s))
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	json.Unmarshal(raw, &parts)
	n := 0
	for _, p := range parts {
		switch p.Type {
		case "text":
			n += len(strings.Fields(p.Text))
		case "image_url":
			n += 85
		default:
			n += 100
		}
	}
	return n
}

func callID(i int, name string) string {
	sum := sha256.Sum256([]byte{byte(i)})
	return "call_" + hex.EncodeToString(sum[:6]) + "_" + name
}

func (s *Server) serveChat(w http.ResponseWriter, body []byte, model string, sc Scenario) {
	var req chatRequest
	if err := json.Unmarshal(body, &req); err != nil {
		typ := "invalid_request_error"
		writeJSON(w, http.StatusBadRequest, errorBody{Error: errorObject{Code: "BadRequest", Type: &typ,
			Message: "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly.)"}})
		return
	}
	if len(req.Messages) == 0 {
		typ := "invalid_request_error"
		param := "messages"
		writeJSON(w, http.StatusBadRequest, errorBody{Error: errorObject{Code: "BadRequest", Type: &typ, Param: &param,
			Message: "'messages' is a required property"}})
		return
	}
	r := buildReply(&req, model, sc)
	if req.Stream {
		s.streamChat(w, &req, r, sc)
		return
	}
	filter := safeFilter()
	c := completion{
		ID: r.id, Object: "chat.completion", Created: created, Model: r.model,
		PromptFilterResults: []promptFilter{{ContentFilterResults: promptFilterResults()}},
		Choices: []choice{{
			FinishReason: r.finish, Logprobs: json.RawMessage("null"),
			Message:              message{Role: "assistant", Content: r.text},
			ContentFilterResults: &filter,
		}},
		Usage:             r.usage,
		SystemFingerprint: fingerprint,
	}
	for i, tc := range r.toolCalls {
		c.Choices[0].Message.ToolCalls = append(c.Choices[0].Message.ToolCalls, toolCall{
			ID: callID(i, tc.Name), Type: "function", Function: function{Name: tc.Name, Arguments: tc.Arguments}})
	}
	if r.finish == "content_filter" {
		c.Choices[0].ContentFilterResults.Violence = severity{Filtered: true, Severity: "medium"}
	}
	writeJSON(w, http.StatusOK, c)
}

func promptFilterResults() filterResults {
	f := safeFilter()
	f.Jailbreak = &detection{}
	return f
}

// streamChat writes the reply as Azure's SSE stream.
func (s *Server) streamChat(w http.ResponseWriter, req *chatRequest, r *reply, sc Scenario) {
	includeUsage := req.StreamOptions != nil && req.StreamOptions.IncludeUsage
	var events []chunk
	// Azure's first event: no choices, blank identity, prompt filter results.
	events = append(events, chunk{Choices: []chunkChoice{},
		PromptFilterResults: []promptFilter{{ContentFilterResults: promptFilterResults()}}})
	mk := func(c chunkChoice) chunk {
		ch := chunk{Choices: []chunkChoice{c}, Created: created, ID: r.id, Model: r.model,
			Object: "chat.completion.chunk", SystemFingerprint: fingerprint}
		if includeUsage {
			ch.Usage = json.RawMessage("null")
		}
		return ch
	}
	empty := ""
	null := json.RawMessage("null")
	firstContent := 0
	if r.text != nil {
		events = append(events, mk(chunkChoice{Delta: &delta{Role: "assistant", Content: &empty}, Logprobs: null, ContentFilterResults: &filterResults{}}))
		firstContent = len(events)
		for _, word := range strings.SplitAfter(*r.text, " ") {
			if word == "" {
				continue
			}
			f := safeFilter()
			events = append(events, mk(chunkChoice{Delta: &delta{Content: &word}, Logprobs: null, ContentFilterResults: &f}))
		}
	} else {
		events = append(events, mk(chunkChoice{Delta: &delta{Role: "assistant"}, Logprobs: null, ContentFilterResults: &filterResults{}}))
		firstContent = len(events)
		for i, tc := range r.toolCalls {
			idx := i
			events = append(events, mk(chunkChoice{Delta: &delta{ToolCalls: []toolCall{{
				Index: &idx, ID: callID(i, tc.Name), Type: "function", Function: function{Name: tc.Name}}}}, Logprobs: null}))
			half := len(tc.Arguments) / 2
			for _, piece := range []string{tc.Arguments[:half], tc.Arguments[half:]} {
				events = append(events, mk(chunkChoice{Delta: &delta{ToolCalls: []toolCall{{
					Index: &idx, Function: function{Arguments: piece}}}}, Logprobs: null}))
			}
		}
	}
	if sc.Annotations {
		f := safeFilter()
		events = append(events, mk(chunkChoice{ContentFilterResults: &f,
			ContentFilterOffsets: &offsets{CheckOffset: 0, StartOffset: 0, EndOffset: 64}}))
	}
	finish := r.finish
	finishFilter := &filterResults{}
	if finish == "content_filter" {
		f := safeFilter()
		f.Violence = severity{Filtered: true, Severity: "medium"}
		finishFilter = &f
	}
	events = append(events, mk(chunkChoice{Delta: &delta{}, FinishReason: &finish, Logprobs: null, ContentFilterResults: finishFilter}))
	if includeUsage {
		u, _ := json.Marshal(r.usage)
		events = append(events, chunk{Choices: []chunkChoice{}, Created: created, ID: r.id, Model: r.model,
			Object: "chat.completion.chunk", SystemFingerprint: fingerprint, Usage: u})
	}

	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	write := func(payload []byte) {
		ev := append(append([]byte("data: "), payload...), '\n', '\n')
		if sc.SplitWrites {
			half := len(ev) / 2
			w.Write(ev[:half])
			if flusher != nil {
				flusher.Flush()
			}
			ev = ev[half:]
		}
		w.Write(ev)
		if flusher != nil {
			flusher.Flush()
		}
	}
	for i, ev := range events {
		b, _ := json.Marshal(ev)
		write(b)
		if i == firstContent && sc.StreamError {
			write([]byte(`{"error":{"message":"The server had an error while processing your request. Sorry about that!","type":"server_error","param":null,"code":"server_error"}}`))
			return
		}
		if i == firstContent && sc.CutOff {
			// Drop the connection without the terminating chunk.
			panic(http.ErrAbortHandler)
		}
	}
	write([]byte("[DONE]"))
}

// serveEmbeddings answers with deterministic 8-dimension unit vectors.
func (s *Server) serveEmbeddings(w http.ResponseWriter, body []byte, model string) {
	var req struct {
		Input json.RawMessage `json:"input"`
	}
	var inputs []string
	if err := json.Unmarshal(body, &req); err == nil {
		var one string
		if json.Unmarshal(req.Input, &one) == nil {
			inputs = []string{one}
		} else {
			json.Unmarshal(req.Input, &inputs)
		}
	}
	if len(inputs) == 0 {
		typ := "invalid_request_error"
		param := "input"
		writeJSON(w, http.StatusBadRequest, errorBody{Error: errorObject{Code: "BadRequest", Type: &typ, Param: &param,
			Message: "'input' is a required property and must be a string or an array of strings"}})
		return
	}
	type embedding struct {
		Object    string    `json:"object"`
		Index     int       `json:"index"`
		Embedding []float64 `json:"embedding"`
	}
	out := struct {
		Object string      `json:"object"`
		Data   []embedding `json:"data"`
		Model  string      `json:"model"`
		Usage  struct {
			PromptTokens int `json:"prompt_tokens"`
			TotalTokens  int `json:"total_tokens"`
		} `json:"usage"`
	}{Object: "list", Model: model}
	for i, text := range inputs {
		sum := sha256.Sum256([]byte(text))
		vec := make([]float64, 8)
		var norm float64
		for j := range vec {
			vec[j] = float64(int16(binary.BigEndian.Uint16(sum[2*j:])))
			norm += vec[j] * vec[j]
		}
		for j := range vec {
			vec[j] = math.Round(vec[j]/math.Sqrt(norm)*1e6) / 1e6
		}
		out.Data = append(out.Data, embedding{Object: "embedding", Index: i, Embedding: vec})
		n := len(strings.Fields(text))
		out.Usage.PromptTokens += n
		out.Usage.TotalTokens += n
	}
	writeJSON(w, http.StatusOK, out)
}

func sortedValues(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	slices.Sort(out)
	return out
}
