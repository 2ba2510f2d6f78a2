package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
)

// Version is the watsonx plugin's version.
const Version = "0.1.0"

// Size limits for what is read from watsonx.ai.
const (
	maxErrorBody    = 64 << 10
	maxResponseBody = 64 << 20
)

// Watsonx is a provider that serves OpenAI chat and embeddings requests
// from IBM watsonx.ai, authenticated with IAM tokens exchanged for the
// instance's API key. Its zero value is ready for Configure.
type Watsonx struct {
	state atomic.Pointer[settings]
	// now returns the time used when watsonx.ai leaves "created" out;
	// nil means time.Now.
	now func() time.Time
}

var (
	_ provider.Provider      = (*Watsonx)(nil)
	_ provider.Embedder      = (*Watsonx)(nil)
	_ provider.ModelLister   = (*Watsonx)(nil)
	_ provider.Passthrougher = (*Watsonx)(nil)
	_ provider.HealthChecker = (*Watsonx)(nil)
)

// Describe implements provider.Provider.
func (w *Watsonx) Describe(context.Context) (*provider.Description, error) {
	return &provider.Description{
		Name:         "watsonx",
		Version:      Version,
		ConfigSchema: configSchema,
		Credentials:  credentials,
	}, nil
}

// Configure implements provider.Provider. It validates the config and
// credentials and swaps them in atomically; requests in flight finish with
// the settings they started with. A token obtained with the same API key
// from the same IAM stays in use; a new key starts a new token cache.
func (w *Watsonx) Configure(_ context.Context, cfg *provider.Config) error {
	s, err := parseConfig(cfg)
	if err != nil {
		return err
	}
	if old := w.state.Load(); old != nil {
		s.tokens.adopt(old.tokens)
	}
	if old := w.state.Swap(s); old != nil {
		old.client.CloseIdleConnections()
	}
	return nil
}

// settings returns the current settings or a 503 before Configure.
func (w *Watsonx) settings() (*settings, error) {
	s := w.state.Load()
	if s == nil {
		return nil, openai.NewError(http.StatusServiceUnavailable, openai.TypeUnavailable, "not_configured",
			"the watsonx provider is not configured")
	}
	return s, nil
}

func (w *Watsonx) clock() time.Time {
	if w.now != nil {
		return w.now()
	}
	return time.Now()
}

// ChatCompletion implements provider.Provider.
func (w *Watsonx) ChatCompletion(ctx context.Context, req *provider.Request) (*provider.Response, error) {
	s, err := w.settings()
	if err != nil {
		return nil, err
	}
	chat, t, body, err := prepareChat(s, req)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	resp, err := w.send(ctx, s, http.MethodPost, t.chatPath(false), nil, body, false)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	if err != nil {
		return nil, transportError(ctx, fmt.Errorf("watsonx: read response: %w", err))
	}
	var wr chatResponse
	if err := json.Unmarshal(raw, &wr); err != nil {
		return nil, openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "invalid_upstream_response",
			"watsonx: the chat response is not JSON: "+err.Error())
	}
	cc, err := translateResponse(&wr, chat.Model, w.clock())
	if err != nil {
		return nil, err
	}
	b, err := marshal(cc)
	if err != nil {
		return nil, fmt.Errorf("watsonx: encode completion: %w", err)
	}
	return &provider.Response{Body: b, Header: relayHeaders(resp.Header)}, nil
}

// prepareChat decodes, validates and translates a chat request.
func prepareChat(s *settings, req *provider.Request) (*openai.ChatRequest, target, []byte, error) {
	chat, err := req.Chat()
	if err != nil {
		return nil, target{}, nil, err
	}
	t, err := s.targetFor(chat.Model)
	if err != nil {
		return nil, target{}, nil, err
	}
	wb, err := translateRequest(chat, req, s, t)
	if err != nil {
		return nil, target{}, nil, err
	}
	body, err := marshal(wb)
	if err != nil {
		return nil, target{}, nil, fmt.Errorf("watsonx: encode request: %w", err)
	}
	return chat, t, body, nil
}

// send performs one upstream call with an IAM bearer token and returns
// the response when its status is 2xx, else an *openai.Error. When
// watsonx.ai says the token expired (clock skew, or a token revoked early),
// the token is renewed and the call made once more.
func (w *Watsonx) send(ctx context.Context, s *settings, method, path string, q url.Values, body []byte, stream bool) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		tok, err := s.tokens.Token(ctx)
		if err != nil {
			return nil, transportError(ctx, err)
		}
		hr, err := s.newRequest(ctx, method, path, q, body, tok)
		if err != nil {
			return nil, err
		}
		if stream {
			hr.Header.Set("Accept", "text/event-stream")
		} else {
			hr.Header.Set("Accept", "application/json")
		}
		resp, err := s.client.Do(hr)
		if err != nil {
			return nil, transportError(ctx, fmt.Errorf("watsonx: %s %s: %w", method, path, err))
		}
		if resp.StatusCode/100 == 2 {
			return resp, nil
		}
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		resp.Body.Close()
		if resp.StatusCode == http.StatusUnauthorized {
			s.tokens.Invalidate(tok)
			ue := parseErrorBody(resp.StatusCode, raw)
			if ue.code == codeTokenExpired && attempt == 0 {
				continue
			}
			provider.Logger().Warn("watsonx refused the IAM token", "path", path, "code", ue.code, "message", ue.msg)
		}
		if resp.StatusCode == http.StatusForbidden {
			ue := parseErrorBody(resp.StatusCode, raw)
			provider.Logger().Warn("watsonx forbade the request", "path", path, "code", ue.code, "message", ue.msg)
		}
		return nil, statusError(resp.StatusCode, resp.Header, raw)
	}
}

// newRequest builds an authenticated request to path below the endpoint,
// with the version query parameter.
func (s *settings) newRequest(ctx context.Context, method, path string, q url.Values, body []byte, tok string) (*http.Request, error) {
	u := *s.baseURL
	u.Path = strings.TrimRight(u.Path, "/") + path
	if q == nil {
		q = url.Values{}
	}
	if q.Get("version") == "" {
		q.Set("version", s.version)
	}
	u.RawQuery = q.Encode()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	hr, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, fmt.Errorf("watsonx: build request: %w", err)
	}
	hr.Header.Set("Authorization", "Bearer "+tok)
	hr.Header.Set("User-Agent", "llmproxy-provider-watsonx/"+Version)
	if body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	if m, ok := provider.MetaFromContext(ctx); ok && m.RequestID != "" {
		hr.Header.Set("X-Request-Id", m.RequestID)
	}
	return hr, nil
}

// relayHeaders picks the upstream headers worth showing the client.
func relayHeaders(h http.Header) map[string]string {
	if id := h.Get("x-global-transaction-id"); id != "" {
		return map[string]string{"x-watsonx-transaction-id": id}
	}
	return nil
}

// modelsPageSize is how many model specs one page asks for.
var modelsPageSize = 200

// ListModels implements provider.ModelLister from
// GET /ml/v1/foundation_model_specs, following its pages.
func (w *Watsonx) ListModels(ctx context.Context, _ provider.Meta) ([]openai.Model, error) {
	s, err := w.settings()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var out []openai.Model
	q := url.Values{"limit": {strconv.Itoa(modelsPageSize)}}
	for page := 0; page < 50; page++ {
		var specs modelSpecs
		if err := w.getJSON(ctx, s, "/ml/v1/foundation_model_specs", q, &specs); err != nil {
			return nil, err
		}
		for _, r := range specs.Resources {
			if r.ModelID == "" {
				continue
			}
			owner := strings.ToLower(r.Provider)
			if owner == "" {
				owner = "ibm"
			}
			out = append(out, openai.Model{ID: r.ModelID, Object: openai.ObjectModel, OwnedBy: owner})
		}
		if specs.Next == nil || specs.Next.Href == "" {
			break
		}
		next, err := url.Parse(specs.Next.Href)
		if err != nil || next.Query().Get("start") == "" {
			break
		}
		q = url.Values{"limit": {strconv.Itoa(modelsPageSize)}, "start": {next.Query().Get("start")}}
	}
	return out, nil
}

// Health implements provider.HealthChecker: the API key must yield a
// token, and the token must be accepted by the endpoint.
func (w *Watsonx) Health(ctx context.Context) error {
	s, err := w.settings()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var specs modelSpecs
	return w.getJSON(ctx, s, "/ml/v1/foundation_model_specs", url.Values{"limit": {"1"}}, &specs)
}

func (w *Watsonx) getJSON(ctx context.Context, s *settings, path string, q url.Values, v any) error {
	resp, err := w.send(ctx, s, http.MethodGet, path, q, nil, false)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponseBody)).Decode(v); err != nil {
		return openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "invalid_upstream_response",
			fmt.Sprintf("watsonx: decode %s: %v", path, err))
	}
	return nil
}
