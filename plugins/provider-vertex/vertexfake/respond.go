package vertexfake

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"
)

// DefaultResponseID is the responseId of every answer unless
// Scenario.ResponseID is set.
const DefaultResponseID = "fake-response-01"

// Part is a part of the fake's answer: text or a function call.
type Part struct {
	Text string
	// Call, when set, makes this a functionCall part.
	Call *Call
}

// Call is a function call; Args must marshal to a JSON object.
type Call struct {
	Name string
	Args any
}

// Text returns a text part.
func Text(s string) Part { return Part{Text: s} }

// FunctionCall returns a functionCall part.
func FunctionCall(name string, args any) Part { return Part{Call: &Call{Name: name, Args: args}} }

// Usage is the token accounting the fake reports; zero fields of a zero
// Usage are computed from the request and the answer.
type Usage struct {
	Prompt     int
	Candidates int
	Thoughts   int
	Cached     int
}

// Scenario is what the fake answers to generateContent calls.
type Scenario struct {
	// ResponseID is the responseId (DefaultResponseID when empty).
	ResponseID string
	// ModelVersion is reported as modelVersion (the model called when
	// empty).
	ModelVersion string
	// Parts are the answer of every candidate; one text part when empty.
	Parts []Part
	// Thought, when set, is a thought summary part ahead of the answer.
	Thought string
	// FinishReason defaults to STOP.
	FinishReason string
	// Usage is reported in usageMetadata.
	Usage Usage
	// BlockReason blocks the prompt: the answer has promptFeedback with
	// this reason and no candidates.
	BlockReason string
	// NoSignatures leaves out thought signatures, which the fake otherwise
	// puts on the first function call of gemini-2.5 and gemini-3 answers.
	NoSignatures bool

	// ChunkSize is how many bytes of text one stream event carries
	// (default 8).
	ChunkSize int
	// SplitWrites writes every event in two writes, flushed apart, cut in
	// the middle of its data line.
	SplitWrites bool
	// LF frames stream events with \n\n instead of the API's \r\n\r\n.
	LF bool
	// ResponseDelay pauses before the response headers.
	ResponseDelay time.Duration
	// EventDelay pauses before each stream event.
	EventDelay time.Duration
	// ErrorAfter, when positive, ends the stream after that many events
	// with an error: a data event carrying a google.rpc error object, or
	// the bare object when BareError is set.
	ErrorAfter int
	BareError  bool
	// ErrorStatus (default 503) and ErrorMessage describe that error.
	ErrorStatus  int
	ErrorMessage string
	// CutAfter, when positive, ends the body after that many events plus
	// half of the next one.
	CutAfter int
	// FollowUp, when set, answers instead of this scenario the requests
	// whose last turn carries function responses: the second turn of a
	// tool flow.
	FollowUp *Scenario
}

// answer is a prepared response.
type answer struct {
	sc      Scenario
	model   string
	n       int
	parts   []map[string]any
	usage   Usage
	finish  string
	blocked bool
}

func (s *Server) prepare(sc Scenario, req *request) (*answer, error) {
	a := &answer{sc: sc, model: req.model, n: req.candidateCount, finish: sc.FinishReason, usage: sc.Usage}
	if sc.ModelVersion != "" {
		a.model = sc.ModelVersion
	}
	if a.finish == "" {
		a.finish = "STOP"
	}
	if sc.BlockReason != "" {
		a.blocked = true
	}
	parts := sc.Parts
	if len(parts) == 0 {
		parts = []Part{Text("Hello! How can I help you today?")}
		if req.jsonMode {
			parts = []Part{Text(`{"answer":"hello"}`)}
		}
	}
	chars := 0
	if sc.Thought != "" {
		a.parts = append(a.parts, map[string]any{"text": sc.Thought, "thought": true})
	}
	signed := false
	thinking := strings.HasPrefix(req.model, "gemini-3") || strings.HasPrefix(req.model, "gemini-2.5")
	for _, p := range parts {
		if p.Call == nil {
			a.parts = append(a.parts, map[string]any{"text": p.Text})
			chars += len(p.Text)
			continue
		}
		args := p.Call.Args
		if args == nil {
			args = map[string]any{}
		}
		// Round-trip through JSON so the signature sees what the client
		// will send back.
		raw, err := json.Marshal(args)
		if err != nil {
			return nil, fmt.Errorf("scenario args: %w", err)
		}
		var obj map[string]any
		if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
			return nil, errors.New("scenario args must be a JSON object")
		}
		part := map[string]any{"functionCall": map[string]any{"name": p.Call.Name, "args": obj}}
		if thinking && !signed && !sc.NoSignatures {
			part["thoughtSignature"] = s.signature(p.Call.Name, obj)
			signed = true
		}
		a.parts = append(a.parts, part)
		chars += len(p.Call.Name) + len(raw)
	}
	if a.usage.Prompt == 0 {
		a.usage.Prompt = 1 + req.promptChars/4
	}
	if a.usage.Candidates == 0 && !a.blocked {
		a.usage.Candidates = a.n * (1 + chars/4)
	}
	if a.usage.Thoughts == 0 && sc.Thought != "" {
		a.usage.Thoughts = 1 + len(sc.Thought)/4
	}
	return a, nil
}

func (a *answer) usageJSON(candidates int) map[string]any {
	u := map[string]any{"promptTokenCount": a.usage.Prompt,
		"totalTokenCount": a.usage.Prompt + candidates + a.usage.Thoughts}
	if candidates > 0 {
		u["candidatesTokenCount"] = candidates
	}
	if a.usage.Thoughts > 0 {
		u["thoughtsTokenCount"] = a.usage.Thoughts
	}
	if a.usage.Cached > 0 {
		u["cachedContentTokenCount"] = a.usage.Cached
	}
	return u
}

func (a *answer) envelope() map[string]any {
	id := a.sc.ResponseID
	if id == "" {
		id = DefaultResponseID
	}
	return map[string]any{"modelVersion": a.model, "createTime": "2026-01-01T00:00:00.000000Z", "responseId": id}
}

// whole is the non-streamed response.
func (a *answer) whole() map[string]any {
	out := a.envelope()
	if a.blocked {
		out["promptFeedback"] = map[string]any{"blockReason": a.sc.BlockReason,
			"blockReasonMessage": "The prompt was blocked due to " + strings.ToLower(a.sc.BlockReason) + "."}
		out["usageMetadata"] = a.usageJSON(0)
		return out
	}
	cands := []any{}
	for i := 0; i < a.n; i++ {
		cands = append(cands, map[string]any{"index": i,
			"content":      map[string]any{"role": "model", "parts": a.parts},
			"finishReason": a.finish, "avgLogprobs": -0.25,
			"safetyRatings": []any{map[string]any{"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "NEGLIGIBLE"}}})
	}
	out["candidates"] = cands
	out["usageMetadata"] = a.usageJSON(a.usage.Candidates)
	return out
}

// events are the stream's responses: text split into chunks, function
// calls whole (consecutive calls in one event), the finishReason on the
// last event and the running usage on every one.
func (a *answer) events() []map[string]any {
	if a.blocked {
		return []map[string]any{a.whole()}
	}
	size := a.sc.ChunkSize
	if size <= 0 {
		size = 8
	}
	var groups [][]map[string]any
	for _, p := range a.parts {
		if _, isCall := p["functionCall"]; isCall {
			if n := len(groups); n > 0 {
				if _, prevCall := groups[n-1][0]["functionCall"]; prevCall {
					groups[n-1] = append(groups[n-1], p)
					continue
				}
			}
			groups = append(groups, []map[string]any{p})
			continue
		}
		text := p["text"].(string)
		for _, piece := range split(text, size) {
			q := map[string]any{"text": piece}
			if p["thought"] == true {
				q["thought"] = true
			}
			groups = append(groups, []map[string]any{q})
		}
	}
	if len(groups) == 0 {
		groups = [][]map[string]any{{{"text": ""}}}
	}
	var out []map[string]any
	for gi, g := range groups {
		last := gi == len(groups)-1
		var cands []any
		for i := 0; i < a.n; i++ {
			c := map[string]any{"content": map[string]any{"role": "model", "parts": g}}
			if a.n > 1 {
				c["index"] = i
			}
			if last {
				c["finishReason"] = a.finish
			}
			cands = append(cands, c)
		}
		ev := a.envelope()
		ev["candidates"] = cands
		ev["usageMetadata"] = a.usageJSON(a.usage.Candidates * (gi + 1) / len(groups))
		out = append(out, ev)
	}
	return out
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

// generate serves :generateContent and :streamGenerateContent.
func (s *Server) generate(w http.ResponseWriter, r *http.Request, body []byte, model string, stream bool) {
	req, err := s.validateGenerate(body, model)
	if err != nil {
		writeStatus(w, http.StatusBadRequest, err.Error(), nil)
		return
	}
	s.mu.Lock()
	sc := s.scenario
	s.mu.Unlock()
	if sc.FollowUp != nil && req.toolResults {
		sc = *sc.FollowUp
	}
	if sc.ResponseDelay > 0 {
		select {
		case <-r.Context().Done():
			return
		case <-time.After(sc.ResponseDelay):
		}
	}
	a, err := s.prepare(sc, req)
	if err != nil {
		writeStatus(w, http.StatusInternalServerError, err.Error(), nil)
		return
	}
	if !stream {
		writeJSON(w, http.StatusOK, a.whole())
		return
	}
	sse := r.URL.Query().Get("alt") == "sse"
	s.stream(r.Context(), w, a, sse)
}

// stream writes the events: SSE frames with alt=sse, else the elements of
// one JSON array.
func (s *Server) stream(ctx context.Context, w http.ResponseWriter, a *answer, sse bool) {
	sc := a.sc
	evs := a.events()
	if sse {
		w.Header().Set("Content-Type", "text/event-stream")
	} else {
		w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	}
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	flush := func() {
		if flusher != nil {
			flusher.Flush()
		}
	}
	flush()
	sep := "\r\n\r\n"
	if sc.LF {
		sep = "\n\n"
	}
	frame := func(i int, v any) []byte {
		b, _ := json.Marshal(v)
		if sse {
			return []byte("data: " + string(b) + sep)
		}
		if i == 0 {
			return append([]byte("["), b...)
		}
		return append([]byte(",\r\n"), b...)
	}
	for i, ev := range evs {
		if sc.ErrorAfter > 0 && i == sc.ErrorAfter {
			status := sc.ErrorStatus
			if status == 0 {
				status = http.StatusServiceUnavailable
			}
			body := statusBody(status, sc.ErrorMessage, nil)
			if sc.BareError || !sse {
				b, _ := json.MarshalIndent(body, "", "  ")
				if !sse {
					b = append([]byte(",\r\n"), b...)
					b = append(b, ']')
				}
				_, _ = w.Write(append(b, '\n'))
			} else {
				_, _ = w.Write(frame(i, body))
			}
			flush()
			return
		}
		if sc.EventDelay > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(sc.EventDelay):
			}
		}
		b := frame(i, ev)
		if sc.CutAfter > 0 && i == sc.CutAfter {
			_, _ = w.Write(b[:len(b)/2])
			flush()
			return
		}
		if sc.SplitWrites {
			half := len(b) / 2
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
	if !sse {
		_, _ = w.Write([]byte("]"))
		flush()
	}
}

var (
	instanceFields = fields("content", "task_type", "title")
	predictFields  = fields("instances", "parameters")
	paramFields    = fields("autoTruncate", "outputDimensionality")
)

// predict serves :predict for text embedding models: deterministic unit
// vectors derived from the text.
func (s *Server) predict(w http.ResponseWriter, body []byte, model string) {
	fail := func(err error) { writeStatus(w, http.StatusBadRequest, err.Error(), nil) }
	var root any
	if err := json.Unmarshal(body, &root); err != nil {
		fail(invalidf("Invalid JSON payload received. %v", err))
		return
	}
	top, err := object(root, predictFields, "")
	if err != nil {
		fail(err)
		return
	}
	instances, err := array(top["instances"], "instances")
	if err != nil {
		fail(err)
		return
	}
	if len(instances) == 0 {
		fail(invalidf("Instances field is required and must not be empty."))
		return
	}
	dims := 768
	if strings.HasPrefix(model, "gemini-embedding") {
		dims = 3072
		if len(instances) > 1 {
			fail(invalidf("Unable to submit request because the model supports up to 1 instances per request, but %d were provided. Update the number of instances and try again.", len(instances)))
			return
		}
	}
	if len(instances) > 250 {
		fail(invalidf("Unable to submit request because the number of instances exceeds 250."))
		return
	}
	if p, ok := top["parameters"]; ok {
		pm, err := object(p, paramFields, "parameters")
		if err != nil {
			fail(err)
			return
		}
		if d, ok := pm["outputDimensionality"]; ok {
			f, err := number(d, "parameters.output_dimensionality")
			if err != nil || f < 1 || f > float64(dims) || f != math.Trunc(f) {
				fail(invalidf("Unable to submit request because outputDimensionality must be between 1 and %d.", dims))
				return
			}
			dims = int(f)
		}
	}
	var preds []any
	for i, in := range instances {
		im, err := object(in, instanceFields, fmt.Sprintf("instances[%d]", i))
		if err != nil {
			fail(err)
			return
		}
		text, _ := im["content"].(string)
		if text == "" {
			fail(invalidf("Unable to submit request because instances[%d].content is empty.", i))
			return
		}
		preds = append(preds, map[string]any{"embeddings": map[string]any{"values": Vector(text, dims),
			"statistics": map[string]any{"token_count": len(strings.Fields(text)), "truncated": false}}})
	}
	writeJSON(w, http.StatusOK, map[string]any{"predictions": preds,
		"metadata": map[string]any{"billableCharacterCount": len(body)}})
}

// Vector is the embedding the fake returns for text: a deterministic unit
// vector of dims dimensions.
func Vector(text string, dims int) []float64 {
	out := make([]float64, dims)
	var norm float64
	seed := sha256.Sum256([]byte(text))
	for i := range out {
		var buf [36]byte
		copy(buf[:], seed[:])
		binary.BigEndian.PutUint32(buf[32:], uint32(i))
		h := sha256.Sum256(buf[:])
		x := float64(binary.BigEndian.Uint32(h[:4]))/float64(math.MaxUint32)*2 - 1
		out[i] = x
		norm += x * x
	}
	norm = math.Sqrt(norm)
	for i := range out {
		out[i] = math.Round(out[i]/norm*1e6) / 1e6
	}
	return out
}
