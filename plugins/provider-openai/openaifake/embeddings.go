package openaifake

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"net/http"
)

// DefaultDimensions is the length of an embedding when the request sets
// no dimensions.
const DefaultDimensions = 8

type embeddingsRequest struct {
	Model          string          `json:"model"`
	Input          json.RawMessage `json:"input"`
	EncodingFormat string          `json:"encoding_format"`
	Dimensions     *int            `json:"dimensions"`
}

// embeddingInputs decodes input: a string, an array of strings, an array
// of token ids, or an array of token arrays. Token inputs are embedded by
// their JSON text.
func embeddingInputs(raw json.RawMessage) ([]string, bool) {
	raw = bytes.TrimSpace(raw)
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}, one != ""
	}
	var many []string
	if json.Unmarshal(raw, &many) == nil {
		return many, len(many) > 0
	}
	var tokens []int
	if json.Unmarshal(raw, &tokens) == nil {
		return []string{string(raw)}, len(tokens) > 0
	}
	var batches [][]int
	if json.Unmarshal(raw, &batches) == nil {
		out := make([]string, len(batches))
		for i, b := range batches {
			t, _ := json.Marshal(b)
			out[i] = string(t)
		}
		return out, len(out) > 0
	}
	return nil, false
}

func (s *Server) serveEmbeddings(w http.ResponseWriter, body []byte) {
	var req embeddingsRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, apiError{Type: typeInvalidRequest,
			Message: "We could not parse the JSON body of your request."})
		return
	}
	if req.Model == "" {
		writeError(w, http.StatusBadRequest, apiError{Type: typeInvalidRequest, Param: "model", Message: "you must provide a model parameter"})
		return
	}
	if !s.models[req.Model] {
		writeError(w, http.StatusNotFound, apiError{Type: typeInvalidRequest, Code: "model_not_found",
			Message: "The model `" + req.Model + "` does not exist or you do not have access to it."})
		return
	}
	inputs, ok := embeddingInputs(req.Input)
	if !ok {
		writeError(w, http.StatusBadRequest, apiError{Type: typeInvalidRequest, Param: "input",
			Message: "'input' must be a non-empty string, array of strings, or array of token arrays."})
		return
	}
	dims := DefaultDimensions
	if req.Dimensions != nil {
		if *req.Dimensions < 1 || *req.Dimensions > 3072 {
			writeError(w, http.StatusBadRequest, apiError{Type: typeInvalidRequest, Param: "dimensions",
				Message: "Invalid 'dimensions': must be between 1 and 3072."})
			return
		}
		dims = *req.Dimensions
	}
	type item struct {
		Object    string `json:"object"`
		Index     int    `json:"index"`
		Embedding any    `json:"embedding"`
	}
	resp := struct {
		Object string `json:"object"`
		Data   []item `json:"data"`
		Model  string `json:"model"`
		Usage  struct {
			PromptTokens int `json:"prompt_tokens"`
			TotalTokens  int `json:"total_tokens"`
		} `json:"usage"`
	}{Object: "list", Model: req.Model, Data: make([]item, len(inputs))}
	for i, in := range inputs {
		v := vector(in, dims)
		var emb any = v
		if req.EncodingFormat == "base64" {
			emb = encodeBase64(v)
		}
		resp.Data[i] = item{Object: "embedding", Index: i, Embedding: emb}
		resp.Usage.PromptTokens += max(1, words(in))
	}
	resp.Usage.TotalTokens = resp.Usage.PromptTokens
	b, _ := json.Marshal(resp)
	writeJSON(w, http.StatusOK, b)
}

// vector derives a unit vector of n components from text.
func vector(text string, n int) []float32 {
	v := make([]float32, n)
	var norm float64
	seed := sha256.Sum256([]byte(text))
	for i := range v {
		if i%8 == 0 && i > 0 {
			seed = sha256.Sum256(seed[:])
		}
		x := float64(int32(binary.LittleEndian.Uint32(seed[(i%8)*4:]))) / math.MaxInt32
		v[i] = float32(x)
		norm += x * x
	}
	if norm > 0 {
		for i := range v {
			v[i] = float32(float64(v[i]) / math.Sqrt(norm))
		}
	}
	return v
}

func encodeBase64(v []float32) string {
	b := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
	}
	return base64.StdEncoding.EncodeToString(b)
}

type modelJSON struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

func (s *Server) serveModels(w http.ResponseWriter) {
	list := struct {
		Object string      `json:"object"`
		Data   []modelJSON `json:"data"`
	}{Object: "list", Data: make([]modelJSON, 0, len(s.opts.Models))}
	for _, m := range s.opts.Models {
		list.Data = append(list.Data, modelJSON{ID: m, Object: "model", Created: Created, OwnedBy: "system"})
	}
	b, _ := json.Marshal(list)
	writeJSON(w, http.StatusOK, b)
}

func (s *Server) serveModel(w http.ResponseWriter, id string) {
	if !s.models[id] {
		writeError(w, http.StatusNotFound, apiError{Type: typeInvalidRequest, Param: "model", Code: "model_not_found",
			Message: "The model '" + id + "' does not exist"})
		return
	}
	b, _ := json.Marshal(modelJSON{ID: id, Object: "model", Created: Created, OwnedBy: "system"})
	writeJSON(w, http.StatusOK, b)
}
