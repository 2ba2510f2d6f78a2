package main

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
)

// maxEmbedInputs is how many texts one :predict call may carry.
const maxEmbedInputs = 250

// Embeddings implements provider.Embedder with :predict on a text
// embedding model (text-embedding-005, gemini-embedding-001 …).
func (v *Vertex) Embeddings(ctx context.Context, req *provider.Request) (*provider.Response, error) {
	s, err := v.settings()
	if err != nil {
		return nil, err
	}
	var er openai.EmbeddingsRequest
	if err := json.Unmarshal(req.Body, &er); err != nil {
		return nil, openai.InvalidRequest("", "invalid embeddings request: "+err.Error())
	}
	if req.Meta.Model != "" {
		er.Model = req.Meta.Model
	}
	switch {
	case er.Model == "":
		return nil, openai.InvalidRequest("model", "you must provide a model parameter")
	case er.Input.Tokens != nil:
		return nil, openai.InvalidRequest("input", "token-array input is not supported by vertex embedding models; send text")
	case len(er.Input.Texts) == 0:
		return nil, openai.InvalidRequest("input", "input must be a non-empty string or array of strings")
	case len(er.Input.Texts) > maxEmbedInputs:
		return nil, openai.InvalidRequest("input", fmt.Sprintf("at most %d inputs per request", maxEmbedInputs))
	case er.EncodingFormat != "" && er.EncodingFormat != "float" && er.EncodingFormat != "base64":
		return nil, openai.InvalidRequest("encoding_format", "encoding_format must be float or base64")
	}
	pr := predictRequest{}
	for i, t := range er.Input.Texts {
		if t == "" {
			return nil, openai.InvalidRequest(fmt.Sprintf("input[%d]", i), "input texts must not be empty")
		}
		pr.Instances = append(pr.Instances, embedInstance{Content: t})
	}
	if er.Dimensions != nil {
		if *er.Dimensions < 1 {
			return nil, openai.InvalidRequest("dimensions", "dimensions must be at least 1")
		}
		pr.Parameters = &embedParams{OutputDimensionality: er.Dimensions}
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	// gemini-embedding models take one text per call.
	batch := len(pr.Instances)
	if strings.HasPrefix(er.Model, "gemini-embedding") {
		batch = 1
	}
	var preds []prediction
	for start := 0; start < len(pr.Instances); start += batch {
		part := pr
		part.Instances = pr.Instances[start:min(start+batch, len(pr.Instances))]
		got, err := v.predict(ctx, s, er.Model, &part)
		if err != nil {
			return nil, err
		}
		preds = append(preds, got...)
	}
	res := openai.EmbeddingsResponse{Object: openai.ObjectList, Model: er.Model, Data: make([]openai.Embedding, 0, len(preds))}
	tokens := 0
	for i, p := range preds {
		tokens += int(p.Embeddings.Statistics.TokenCount)
		vec, err := encodeVector(p.Embeddings.Values, er.EncodingFormat)
		if err != nil {
			return nil, fmt.Errorf("vertex: encode embedding: %w", err)
		}
		res.Data = append(res.Data, openai.Embedding{Object: openai.ObjectEmbedding, Index: i, Embedding: vec})
	}
	res.Usage = openai.Usage{PromptTokens: tokens, TotalTokens: tokens}
	r, err := provider.JSONResponse(res)
	if err != nil {
		return nil, fmt.Errorf("vertex: encode embeddings: %w", err)
	}
	return r, nil
}

// predict makes one :predict call and checks it answered every instance.
func (v *Vertex) predict(ctx context.Context, s *settings, model string, pr *predictRequest) ([]prediction, error) {
	body, err := json.Marshal(pr)
	if err != nil {
		return nil, fmt.Errorf("vertex: encode predict request: %w", err)
	}
	resp, err := v.send(ctx, s, http.MethodPost, s.modelPath("google", model)+":predict", nil, body)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	if err != nil {
		return nil, transportError(ctx, fmt.Errorf("vertex: read predict response: %w", err))
	}
	var out predictResponse
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, invalidResponse("predict response is not JSON: " + err.Error())
	}
	if len(out.Predictions) != len(pr.Instances) {
		return nil, invalidResponse(fmt.Sprintf("predict returned %d embeddings for %d inputs", len(out.Predictions), len(pr.Instances)))
	}
	return out.Predictions, nil
}

// encodeVector renders a vector as a JSON array of floats or, for
// encoding_format base64, as OpenAI does: little-endian float32 bytes.
func encodeVector(values []float64, format string) (json.RawMessage, error) {
	if format != "base64" {
		if values == nil {
			values = []float64{}
		}
		return json.Marshal(values)
	}
	buf := make([]byte, 4*len(values))
	for i, x := range values {
		binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(float32(x)))
	}
	return json.Marshal(base64.StdEncoding.EncodeToString(buf))
}
