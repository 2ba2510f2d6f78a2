package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
)

// ChatCompletion implements provider.Provider: it forwards the chat
// request to POST {base_url}/chat/completions and returns the upstream's
// chat.completion body unchanged.
func (p *OpenAI) ChatCompletion(ctx context.Context, req *provider.Request) (*provider.Response, error) {
	u, err := p.settings()
	if err != nil {
		return nil, err
	}
	body, err := prepareChat(req, false)
	if err != nil {
		return nil, err
	}
	return u.unary(ctx, http.MethodPost, u.chatURL, body, &req.Meta)
}

// ChatCompletionStream implements provider.Provider: it forwards the chat
// request with "stream": true and relays each SSE data payload as one
// chunk until "data: [DONE]".
func (p *OpenAI) ChatCompletionStream(ctx context.Context, req *provider.Request, w provider.ChunkWriter) error {
	u, err := p.settings()
	if err != nil {
		return err
	}
	body, err := prepareChat(req, true)
	if err != nil {
		return err
	}
	if u.useFast && !provider.Tracing() {
		return u.fastStream(ctx, u.chatURL, body, &req.Meta, w)
	}
	resp, err := u.do(ctx, http.MethodPost, u.chatURL, body, &req.Meta, true)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return upstreamError(resp)
	}
	if err := provider.StreamHeader(w, relayHeaders(resp.Header)); err != nil {
		return err
	}
	return relayStream(ctx, resp.Body, w)
}

// Embeddings implements provider.Embedder: it forwards the request to
// POST {base_url}/embeddings.
func (p *OpenAI) Embeddings(ctx context.Context, req *provider.Request) (*provider.Response, error) {
	u, err := p.settings()
	if err != nil {
		return nil, err
	}
	if err := checkObject(req.Body); err != nil {
		return nil, err
	}
	body, err := setModel(req.Body, req.Meta.Model)
	if err != nil {
		return nil, err
	}
	return u.unary(ctx, http.MethodPost, u.embeddingsURL, body, &req.Meta)
}

// ListModels implements provider.ModelLister with GET {base_url}/models.
func (p *OpenAI) ListModels(ctx context.Context, meta provider.Meta) ([]openai.Model, error) {
	u, err := p.settings()
	if err != nil {
		return nil, err
	}
	resp, err := u.unary(ctx, http.MethodGet, u.modelsURL, nil, &meta)
	if err != nil {
		return nil, err
	}
	var list openai.ModelList
	if err := json.Unmarshal(resp.Body, &list); err != nil {
		return nil, openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "upstream_bad_response",
			fmt.Sprintf("the openai upstream answered GET /models with a body that is not a model list: %v", err))
	}
	return list.Data, nil
}

// unary sends one request and reads the whole answer.
func (u *upstream) unary(ctx context.Context, method, target string, body []byte, meta *provider.Meta) (*provider.Response, error) {
	if u.useFast && !provider.Tracing() {
		return u.fastUnary(ctx, method, target, body, meta)
	}
	resp, err := u.do(ctx, method, target, body, meta, false)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return nil, upstreamError(resp)
	}
	out, err := readBody(ctx, resp)
	if err != nil {
		return nil, err
	}
	return &provider.Response{Body: out, Header: relayHeaders(resp.Header)}, nil
}
