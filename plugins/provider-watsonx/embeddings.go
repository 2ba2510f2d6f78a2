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

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
)

// Embeddings implements provider.Embedder with
// POST /ml/v1/text/embeddings.
func (w *Watsonx) Embeddings(ctx context.Context, req *provider.Request) (*provider.Response, error) {
	s, err := w.settings()
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
		return nil, unsupported("input", "watsonx.ai embeds text only, not token arrays")
	case len(er.Input.Texts) == 0:
		return nil, openai.InvalidRequest("input", "input must be a non-empty string or array of strings")
	case er.Dimensions != nil:
		return nil, unsupported("dimensions", "watsonx.ai embedding models have a fixed number of dimensions")
	case er.EncodingFormat != "" && er.EncodingFormat != "float" && er.EncodingFormat != "base64":
		return nil, openai.InvalidRequest("encoding_format", fmt.Sprintf("unknown encoding_format %q", er.EncodingFormat))
	}
	if s.projectID == "" && s.spaceID == "" {
		return nil, openai.NewError(http.StatusBadRequest, openai.TypeInvalidRequest, "model_not_available",
			"watsonx: embeddings need a project_id or space_id on this instance")
	}
	body, err := marshal(embeddingsBody{Inputs: er.Input.Texts, ModelID: er.Model, ProjectID: s.projectID, SpaceID: s.spaceID})
	if err != nil {
		return nil, fmt.Errorf("watsonx: encode embeddings request: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	resp, err := w.send(ctx, s, http.MethodPost, "/ml/v1/text/embeddings", nil, body, false)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	if err != nil {
		return nil, transportError(ctx, fmt.Errorf("watsonx: read embeddings: %w", err))
	}
	var wr embeddingsResponse
	if err := json.Unmarshal(raw, &wr); err != nil {
		return nil, openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "invalid_upstream_response",
			"watsonx: the embeddings response is not JSON: "+err.Error())
	}
	if len(wr.Results) != len(er.Input.Texts) {
		return nil, openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "invalid_upstream_response",
			fmt.Sprintf("watsonx: %d embeddings for %d inputs", len(wr.Results), len(er.Input.Texts)))
	}
	out := openai.EmbeddingsResponse{Object: openai.ObjectList, Model: responseModel("", wr.ModelID, er.Model),
		Usage: openai.Usage{PromptTokens: wr.InputTokenCount, TotalTokens: wr.InputTokenCount}}
	for i, r := range wr.Results {
		var vec json.RawMessage
		if er.EncodingFormat == "base64" {
			vec, err = json.Marshal(base64Floats(r.Embedding))
		} else {
			vec, err = json.Marshal(r.Embedding)
		}
		if err != nil {
			return nil, fmt.Errorf("watsonx: encode embedding: %w", err)
		}
		out.Data = append(out.Data, openai.Embedding{Object: openai.ObjectEmbedding, Index: i, Embedding: vec})
	}
	b, err := marshal(out)
	if err != nil {
		return nil, fmt.Errorf("watsonx: encode embeddings: %w", err)
	}
	return &provider.Response{Body: b, Header: relayHeaders(resp.Header)}, nil
}

// base64Floats encodes a vector the way OpenAI's encoding_format=base64
// does: little-endian float32s, base64.
func base64Floats(v []float64) string {
	buf := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(float32(f)))
	}
	return base64.StdEncoding.EncodeToString(buf)
}
