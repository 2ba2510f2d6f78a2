package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
)

// maxEmbedInputs is how many texts one embedText call takes.
const maxEmbedInputs = 96

// Embeddings implements provider.Embedder with embedText: inputs go in
// batches of 96 as SEARCH_DOCUMENT texts, truncated at the END, and come
// back as float vectors in input order.
func (o *OCI) Embeddings(ctx context.Context, req *provider.Request) (*provider.Response, error) {
	s, err := o.settings()
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
		return nil, unsupported("input", "OCI embeds text; token arrays are not supported")
	case len(er.Input.Texts) == 0:
		return nil, openai.InvalidRequest("input", "input must be a non-empty string or array of strings")
	case er.EncodingFormat != "" && er.EncodingFormat != "float":
		return nil, unsupported("encoding_format", "the oci provider returns float embeddings only")
	}
	for i, t := range er.Input.Texts {
		if strings.TrimSpace(t) == "" {
			return nil, openai.InvalidRequest(fmt.Sprintf("input[%d]", i), "inputs must not be empty")
		}
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	out := &openai.EmbeddingsResponse{Object: openai.ObjectList, Model: er.Model, Data: []openai.Embedding{}}
	for start := 0; start < len(er.Input.Texts); start += maxEmbedInputs {
		batch := er.Input.Texts[start:min(start+maxEmbedInputs, len(er.Input.Texts))]
		body, err := marshal(embedDetails{CompartmentID: s.compartmentID, ServingMode: servingFor(er.Model), Inputs: batch,
			InputType: "SEARCH_DOCUMENT", Truncate: "END", OutputDimensions: er.Dimensions})
		if err != nil {
			return nil, fmt.Errorf("oci: encode embedText: %w", err)
		}
		resp, err := o.send(ctx, s, http.MethodPost, s.endpoint, embedPath, nil, body, req.Meta.RequestID, false)
		if err != nil {
			return nil, err
		}
		raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
		resp.Body.Close()
		if err != nil {
			return nil, transportError(ctx, fmt.Errorf("oci: read embedText response: %w", err))
		}
		var res embedResult
		if err := json.Unmarshal(raw, &res); err != nil {
			return nil, badUpstream("embedText response does not parse", err)
		}
		if len(res.Embeddings) != len(batch) {
			return nil, badUpstream(fmt.Sprintf("embedText returned %d vectors for %d inputs", len(res.Embeddings), len(batch)), nil)
		}
		for i, v := range res.Embeddings {
			vec, err := json.Marshal(v)
			if err != nil {
				return nil, fmt.Errorf("oci: encode vector: %w", err)
			}
			out.Data = append(out.Data, openai.Embedding{Object: openai.ObjectEmbedding, Index: start + i, Embedding: vec})
		}
		tokens := 0
		if res.Usage != nil {
			tokens = res.Usage.PromptTokens
		} else {
			for _, n := range res.InputTextTokenCounts {
				tokens += n
			}
		}
		out.Usage.PromptTokens += tokens
		out.Usage.TotalTokens += tokens
	}
	return provider.JSONResponse(out)
}
