package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
)

// Version is the vertex plugin's version.
const Version = "0.1.0"

// maxErrorBody bounds how much of an upstream error body is read.
const maxErrorBody = 64 << 10

// maxResponseBody bounds a non-streamed upstream response.
const maxResponseBody = 64 << 20

// knownModels are listed without an upstream call.
var knownModels = []string{
	"gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite", "gemini-2.0-flash-001",
	"gemini-3-pro-preview", "text-embedding-005", "gemini-embedding-001",
}

// Vertex is a provider that serves OpenAI chat and embeddings requests
// from Gemini models on Vertex AI. Its zero value is ready for Configure.
type Vertex struct {
	state atomic.Pointer[settings]
	// now returns the time used for "created"; nil means time.Now.
	now func() time.Time
	// newID returns a fresh tool-call id; nil means randomCallID.
	newID func() string
	// detect finds Application Default Credentials; nil means
	// credentials.DetectDefault.
	detect adcFunc
	// earlyRefresh is how long before expiry tokens are refreshed; zero
	// means the library's default (3m45s).
	earlyRefresh time.Duration
}

var (
	_ provider.Provider      = (*Vertex)(nil)
	_ provider.Embedder      = (*Vertex)(nil)
	_ provider.ModelLister   = (*Vertex)(nil)
	_ provider.Passthrougher = (*Vertex)(nil)
	_ provider.HealthChecker = (*Vertex)(nil)
)

// Describe implements provider.Provider.
func (v *Vertex) Describe(context.Context) (*provider.Description, error) {
	models := make([]openai.Model, 0, len(knownModels))
	for _, m := range knownModels {
		models = append(models, openai.Model{ID: m, Object: openai.ObjectModel, OwnedBy: "google"})
	}
	return &provider.Description{
		Name:         "vertex",
		Version:      Version,
		Capabilities: []string{provider.CapDocuments},
		ConfigSchema: configSchema,
		Credentials:  credentialSpecs,
		Models:       models,
	}, nil
}

// Configure implements provider.Provider. It validates the config and
// credentials and swaps them in atomically; requests in flight finish with
// the settings they started with.
func (v *Vertex) Configure(ctx context.Context, cfg *provider.Config) error {
	detect := v.detect
	if detect == nil {
		detect = detectDefault
	}
	s, err := parseConfig(ctx, cfg, detect, v.earlyRefresh)
	if err != nil {
		return err
	}
	if old := v.state.Swap(s); old != nil {
		old.client.CloseIdleConnections()
	}
	return nil
}

// settings returns the current settings or a 503 before Configure.
func (v *Vertex) settings() (*settings, error) {
	s := v.state.Load()
	if s == nil {
		return nil, openai.NewError(http.StatusServiceUnavailable, openai.TypeUnavailable, "not_configured",
			"the vertex provider is not configured")
	}
	return s, nil
}

func (v *Vertex) created() int64 {
	if v.now != nil {
		return v.now().Unix()
	}
	return time.Now().Unix()
}

func (v *Vertex) idFunc() func() string {
	if v.newID != nil {
		return v.newID
	}
	return randomCallID
}

// prepare decodes and translates a chat request.
func (v *Vertex) prepare(req *provider.Request) (*settings, *openai.ChatRequest, []byte, error) {
	s, err := v.settings()
	if err != nil {
		return nil, nil, nil, err
	}
	chat, err := req.Chat()
	if err != nil {
		return nil, nil, nil, err
	}
	gr, err := translateRequest(chat, req, s.maxTokens)
	if err != nil {
		return nil, nil, nil, err
	}
	body, err := json.Marshal(gr)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("vertex: encode request: %w", err)
	}
	return s, chat, body, nil
}

// ChatCompletion implements provider.Provider with :generateContent.
func (v *Vertex) ChatCompletion(ctx context.Context, req *provider.Request) (*provider.Response, error) {
	s, chat, body, err := v.prepare(req)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	resp, err := v.send(ctx, s, http.MethodPost, s.modelPath("google", chat.Model)+":generateContent", nil, body)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	if err != nil {
		return nil, transportError(ctx, fmt.Errorf("vertex: read response: %w", err))
	}
	var gr generateResponse
	if err := json.Unmarshal(raw, &gr); err != nil {
		return nil, invalidResponse("response is not a GenerateContentResponse: " + err.Error())
	}
	cc, err := translateResponse(&gr, chat.Model, v.created(), v.idFunc())
	if err != nil {
		return nil, err
	}
	out, err := provider.JSONResponse(cc)
	if err != nil {
		return nil, fmt.Errorf("vertex: encode completion: %w", err)
	}
	out.Header = relayHeaders(resp.Header)
	return out, nil
}

// ChatCompletionStream implements provider.Provider with
// :streamGenerateContent?alt=sse.
func (v *Vertex) ChatCompletionStream(ctx context.Context, req *provider.Request, w provider.ChunkWriter) error {
	s, chat, body, err := v.prepare(req)
	if err != nil {
		return err
	}
	resp, err := v.send(ctx, s, http.MethodPost, s.modelPath("google", chat.Model)+":streamGenerateContent",
		url.Values{"alt": {"sse"}}, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := provider.StreamHeader(w, relayHeaders(resp.Header)); err != nil {
		return err
	}
	st := &streamer{w: w, includeUsage: chat.IncludeUsage(), created: v.created(), newID: v.idFunc(), model: chat.Model}
	if err := st.run(newSSEReader(resp.Body)); err != nil {
		return transportError(ctx, err)
	}
	return nil
}

// ListModels implements provider.ModelLister by paging through the
// publisher models of v1beta1 (v1 has no list method).
func (v *Vertex) ListModels(ctx context.Context, _ provider.Meta) ([]openai.Model, error) {
	s, err := v.settings()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var out []openai.Model
	token := ""
	for page := 0; page < 100; page++ {
		q := url.Values{"pageSize": {"200"}}
		if token != "" {
			q.Set("pageToken", token)
		}
		var list modelList
		if err := v.getJSON(ctx, s, "/v1beta1/publishers/google/models", q, &list); err != nil {
			return nil, err
		}
		for _, m := range list.PublisherModels {
			id := m.Name[strings.LastIndex(m.Name, "/")+1:]
			if id != "" {
				out = append(out, openai.Model{ID: id, Object: openai.ObjectModel, OwnedBy: "google"})
			}
		}
		if list.NextPageToken == "" || list.NextPageToken == token {
			break
		}
		token = list.NextPageToken
	}
	return out, nil
}

// Health implements provider.HealthChecker: the credentials must yield a
// token that can list one model.
func (v *Vertex) Health(ctx context.Context) error {
	s, err := v.settings()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var list modelList
	return v.getJSON(ctx, s, "/v1beta1/publishers/google/models", url.Values{"pageSize": {"1"}}, &list)
}

func (v *Vertex) getJSON(ctx context.Context, s *settings, path string, q url.Values, out any) error {
	resp, err := v.send(ctx, s, http.MethodGet, path, q, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponseBody)).Decode(out); err != nil {
		return invalidResponse(fmt.Sprintf("decode %s: %v", path, err))
	}
	return nil
}

// send performs one upstream call with the instance's credentials and
// returns the response when its status is 2xx, else an *openai.Error.
func (v *Vertex) send(ctx context.Context, s *settings, method, path string, q url.Values, body []byte) (*http.Response, error) {
	u := *s.baseURL
	u.Path = strings.TrimRight(u.Path, "/") + path
	u.RawPath = ""
	if q != nil {
		u.RawQuery = q.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	hr, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, fmt.Errorf("vertex: build request: %w", err)
	}
	if body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	if err := s.auth.authorize(ctx, hr); err != nil {
		return nil, err
	}
	resp, err := s.client.Do(hr)
	if err != nil {
		return nil, transportError(ctx, fmt.Errorf("vertex: %s %s: %w", method, path, err))
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		return nil, statusError(resp.StatusCode, resp.Header, raw)
	}
	return resp, nil
}

// relayHeaders picks the upstream headers worth showing the client.
func relayHeaders(h http.Header) map[string]string {
	if id := h.Get("x-goog-request-id"); id != "" {
		return map[string]string{"x-vertex-request-id": id}
	}
	return nil
}
