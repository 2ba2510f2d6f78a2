package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
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

// Version is the anthropic plugin's version.
const Version = "0.1.0"

// maxErrorBody bounds how much of an upstream error body is read.
const maxErrorBody = 64 << 10

// maxResponseBody bounds a non-streamed upstream response.
const maxResponseBody = 64 << 20

// Anthropic is a provider that serves OpenAI chat requests from the
// Anthropic Messages API. Its zero value is ready for Configure.
type Anthropic struct {
	state atomic.Pointer[settings]
	// now returns the time used for "created"; nil means time.Now.
	now func() time.Time
}

var (
	_ provider.Provider      = (*Anthropic)(nil)
	_ provider.ModelLister   = (*Anthropic)(nil)
	_ provider.Passthrougher = (*Anthropic)(nil)
	_ provider.HealthChecker = (*Anthropic)(nil)
)

// Describe implements provider.Provider.
func (a *Anthropic) Describe(context.Context) (*provider.Description, error) {
	return &provider.Description{
		Name:         "anthropic",
		Version:      Version,
		Capabilities: []string{provider.CapDocuments},
		ConfigSchema: configSchema,
		Credentials:  credentials,
	}, nil
}

// Configure implements provider.Provider. It validates the config and
// credentials and swaps them in atomically; requests in flight finish with
// the settings they started with.
func (a *Anthropic) Configure(_ context.Context, cfg *provider.Config) error {
	s, err := parseConfig(cfg)
	if err != nil {
		return err
	}
	if old := a.state.Swap(s); old != nil {
		old.client.CloseIdleConnections()
	}
	return nil
}

// settings returns the current settings or a 503 before Configure.
func (a *Anthropic) settings() (*settings, error) {
	s := a.state.Load()
	if s == nil {
		return nil, openai.NewError(http.StatusServiceUnavailable, openai.TypeUnavailable, "not_configured",
			"the anthropic provider is not configured")
	}
	return s, nil
}

func (a *Anthropic) created() int64 {
	if a.now != nil {
		return a.now().Unix()
	}
	return time.Now().Unix()
}

// ChatCompletion implements provider.Provider.
func (a *Anthropic) ChatCompletion(ctx context.Context, req *provider.Request) (*provider.Response, error) {
	s, err := a.settings()
	if err != nil {
		return nil, err
	}
	chat, err := req.Chat()
	if err != nil {
		return nil, err
	}
	tr, err := translateRequest(chat, req, s.maxTokens)
	if err != nil {
		return nil, err
	}
	tr.body.Stream = false
	body, err := json.Marshal(tr.body)
	if err != nil {
		return nil, fmt.Errorf("anthropic: encode request: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	resp, err := a.send(ctx, s, http.MethodPost, "/v1/messages", nil, body, false)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	if err != nil {
		return nil, transportError(ctx, fmt.Errorf("anthropic: read response: %w", err))
	}
	var mr messagesResponse
	if err := json.Unmarshal(raw, &mr); err != nil {
		return nil, openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "invalid_upstream_response",
			"anthropic: response is not a Messages API message: "+err.Error())
	}
	cc, err := translateResponse(&mr, tr.jsonTool, a.created())
	if err != nil {
		return nil, err
	}
	out, err := provider.JSONResponse(cc)
	if err != nil {
		return nil, fmt.Errorf("anthropic: encode completion: %w", err)
	}
	out.Header = relayHeaders(resp.Header)
	return out, nil
}

// ChatCompletionStream implements provider.Provider.
func (a *Anthropic) ChatCompletionStream(ctx context.Context, req *provider.Request, w provider.ChunkWriter) error {
	s, err := a.settings()
	if err != nil {
		return err
	}
	chat, err := req.Chat()
	if err != nil {
		return err
	}
	tr, err := translateRequest(chat, req, s.maxTokens)
	if err != nil {
		return err
	}
	tr.body.Stream = true
	body, err := json.Marshal(tr.body)
	if err != nil {
		return fmt.Errorf("anthropic: encode request: %w", err)
	}
	resp, err := a.send(ctx, s, http.MethodPost, "/v1/messages", nil, body, true)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	st := &streamer{w: w, jsonTool: tr.jsonTool, includeUsage: chat.IncludeUsage(), created: a.created()}
	if err := st.run(newEventReader(resp.Body)); err != nil {
		return transportError(ctx, err)
	}
	return nil
}

// ListModels implements provider.ModelLister by paging through
// GET /v1/models.
func (a *Anthropic) ListModels(ctx context.Context, _ provider.Meta) ([]openai.Model, error) {
	s, err := a.settings()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var out []openai.Model
	after := ""
	for page := 0; page < 100; page++ {
		q := url.Values{"limit": {"1000"}}
		if after != "" {
			q.Set("after_id", after)
		}
		var list modelList
		if err := a.getJSON(ctx, s, "/v1/models", q, &list); err != nil {
			return nil, err
		}
		for _, m := range list.Data {
			var created int64
			if t, err := time.Parse(time.RFC3339, m.CreatedAt); err == nil {
				created = t.Unix()
			}
			out = append(out, openai.Model{ID: m.ID, Object: openai.ObjectModel, Created: created, OwnedBy: "anthropic"})
		}
		if !list.HasMore || list.LastID == "" {
			break
		}
		after = list.LastID
	}
	return out, nil
}

// Health implements provider.HealthChecker: the key must be able to list
// one model.
func (a *Anthropic) Health(ctx context.Context) error {
	s, err := a.settings()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var list modelList
	return a.getJSON(ctx, s, "/v1/models", url.Values{"limit": {"1"}}, &list)
}

func (a *Anthropic) getJSON(ctx context.Context, s *settings, path string, q url.Values, v any) error {
	resp, err := a.send(ctx, s, http.MethodGet, path, q, nil, false)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponseBody)).Decode(v); err != nil {
		return openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "invalid_upstream_response",
			fmt.Sprintf("anthropic: decode %s: %v", path, err))
	}
	return nil
}

// send performs one upstream call with the instance's credentials and
// returns the response when its status is 2xx, else an *openai.Error.
func (a *Anthropic) send(ctx context.Context, s *settings, method, path string, q url.Values, body []byte, stream bool) (*http.Response, error) {
	u := *s.baseURL
	u.Path = strings.TrimRight(u.Path, "/") + path
	if q != nil {
		u.RawQuery = q.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	hr, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, fmt.Errorf("anthropic: build request: %w", err)
	}
	hr.Header.Set("x-api-key", s.apiKey)
	hr.Header.Set("anthropic-version", s.version)
	if s.beta != "" {
		hr.Header.Set("anthropic-beta", s.beta)
	}
	if body != nil {
		hr.Header.Set("content-type", "application/json")
	}
	if stream {
		hr.Header.Set("accept", "text/event-stream")
	} else {
		hr.Header.Set("accept", "application/json")
	}
	resp, err := s.client.Do(hr)
	if err != nil {
		return nil, transportError(ctx, fmt.Errorf("anthropic: %s %s: %w", method, path, err))
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		return nil, statusError(resp.StatusCode, resp.Header, raw)
	}
	return resp, nil
}

// transportError turns a failed upstream exchange into the error the
// client should see: cancellation stays cancellation, a timeout is 504,
// anything else that is not already an *openai.Error is 502.
func transportError(ctx context.Context, err error) error {
	var oe *openai.Error
	switch {
	case errors.As(err, &oe):
		return err
	case errors.Is(ctx.Err(), context.Canceled):
		return fmt.Errorf("anthropic: client went away: %w", context.Canceled)
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded):
		return openai.NewError(http.StatusGatewayTimeout, openai.TypeTimeout, "upstream_timeout", "anthropic: upstream timed out")
	}
	var ne interface{ Timeout() bool }
	if errors.As(err, &ne) && ne.Timeout() {
		return openai.NewError(http.StatusGatewayTimeout, openai.TypeTimeout, "upstream_timeout", err.Error())
	}
	return openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "upstream_error", err.Error())
}

// statusError maps an Anthropic error response to the OpenAI error the
// client sees (see README.md for the table).
func statusError(status int, h http.Header, raw []byte) *openai.Error {
	var eb errorBody
	msg, typ := "", ""
	if json.Unmarshal(raw, &eb) == nil && eb.Error.Message != "" {
		msg, typ = eb.Error.Message, eb.Error.Type
	} else {
		msg = strings.TrimSpace(string(raw))
		if len(msg) > 512 {
			msg = msg[:512]
		}
		if msg == "" {
			msg = http.StatusText(status)
		}
	}
	out := errorFor(status, typ, "anthropic: "+msg)
	if d := retryAfter(h); d > 0 {
		out.RetryAfter = d
	}
	return out
}

// errorFor maps an upstream HTTP status and Anthropic error type to an
// OpenAI error. status is 0 for a mid-stream error event, which has only
// the type.
func errorFor(status int, typ, msg string) *openai.Error {
	if status == 0 {
		status = statusForType(typ)
	}
	var e *openai.Error
	switch {
	case status == 529 || typ == "overloaded_error":
		e = openai.NewError(http.StatusServiceUnavailable, openai.TypeUnavailable, typ, msg)
	case status == http.StatusTooManyRequests:
		e = openai.NewError(http.StatusTooManyRequests, openai.TypeRateLimit, typ, msg)
	case status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout:
		e = openai.NewError(status, openai.TypeForStatus(status), typ, msg)
	case status >= 500:
		e = openai.NewError(http.StatusBadGateway, openai.TypeUpstream, typ, msg)
	case status == http.StatusRequestEntityTooLarge:
		e = openai.NewError(status, openai.TypeInvalidRequest, typ, msg)
	case status >= 400:
		e = openai.NewError(status, openai.TypeForStatus(status), typ, msg)
	default:
		e = openai.NewError(http.StatusBadGateway, openai.TypeUpstream, typ, msg)
	}
	if e.Code == "" {
		e.Code = "upstream_status_" + strconv.Itoa(status)
	}
	return e
}

// statusForType is the HTTP status Anthropic uses for an error type.
func statusForType(typ string) int {
	switch typ {
	case "invalid_request_error":
		return http.StatusBadRequest
	case "authentication_error":
		return http.StatusUnauthorized
	case "billing_error":
		return http.StatusPaymentRequired
	case "permission_error":
		return http.StatusForbidden
	case "not_found_error":
		return http.StatusNotFound
	case "request_too_large":
		return http.StatusRequestEntityTooLarge
	case "rate_limit_error":
		return http.StatusTooManyRequests
	case "overloaded_error":
		return 529
	}
	return http.StatusInternalServerError
}

// retryAfter reads retry-after-ms or retry-after (seconds or HTTP date).
func retryAfter(h http.Header) time.Duration {
	if v := h.Get("retry-after-ms"); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms > 0 {
			return time.Duration(ms * float64(time.Millisecond))
		}
	}
	v := strings.TrimSpace(h.Get("retry-after"))
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil && secs > 0 {
		return time.Duration(secs * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

// relayHeaders picks the upstream headers worth showing the client.
func relayHeaders(h http.Header) map[string]string {
	if id := h.Get("request-id"); id != "" {
		return map[string]string{"anthropic-request-id": id}
	}
	return nil
}
