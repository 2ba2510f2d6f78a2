package main

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
)

// Embeddings implements provider.Embedder: the OpenAI body goes to the
// deployment's embeddings operation, with model set to the routed model.
func (a *Azure) Embeddings(ctx context.Context, req *provider.Request) (*provider.Response, error) {
	in, err := a.instance()
	if err != nil {
		return nil, err
	}
	var er openai.EmbeddingsRequest
	if err := json.Unmarshal(req.Body, &er); err != nil {
		return nil, openai.InvalidRequest("", "invalid embeddings request: "+err.Error())
	}
	model := er.Model
	if req.Meta.Model != "" {
		model = req.Meta.Model
	}
	if model == "" {
		return nil, openai.InvalidRequest("model", "you must provide a model parameter")
	}
	if len(er.Input.Texts) == 0 && len(er.Input.Tokens) == 0 {
		return nil, openai.InvalidRequest("input", "input must be a string or a non-empty array")
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(req.Body, &top); err != nil {
		return nil, openai.InvalidRequest("", "invalid embeddings request: "+err.Error())
	}
	top["model"], _ = json.Marshal(model)
	body, err := marshal(top)
	if err != nil {
		return nil, err
	}
	raw, header, err := in.call(ctx, http.MethodPost, in.deploymentURL(model, "embeddings"), body)
	if err != nil {
		return nil, err
	}
	if !json.Valid(raw) {
		return nil, openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "bad_upstream_response",
			"azure returned an embeddings response that is not JSON")
	}
	return &provider.Response{Body: raw, Header: relayHeaders(header)}, nil
}
