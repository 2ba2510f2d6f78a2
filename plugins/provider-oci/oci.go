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
	"strings"
	"sync/atomic"
	"time"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
)

// Version is the oci plugin's version.
const Version = "0.1.0"

// API paths below the inference endpoint.
const (
	chatPath   = "/20231130/actions/chat"
	embedPath  = "/20231130/actions/embedText"
	modelsPath = "/20231130/models"
)

// maxErrorBody bounds how much of an upstream error body is read.
const maxErrorBody = 64 << 10

// maxResponseBody bounds a non-streamed upstream response.
const maxResponseBody = 64 << 20

// OCI is a provider that serves OpenAI requests from Oracle OCI
// Generative AI inference. Its zero value is ready for Configure.
type OCI struct {
	state atomic.Pointer[settings]
	// now returns the time used for "created"; nil means time.Now.
	now func() time.Time
}

var (
	_ provider.Provider      = (*OCI)(nil)
	_ provider.Embedder      = (*OCI)(nil)
	_ provider.ModelLister   = (*OCI)(nil)
	_ provider.Passthrougher = (*OCI)(nil)
	_ provider.HealthChecker = (*OCI)(nil)
)

// Describe implements provider.Provider.
func (o *OCI) Describe(context.Context) (*provider.Description, error) {
	return &provider.Description{
		Name:         "oci",
		Version:      Version,
		Capabilities: []string{provider.CapDocuments},
		ConfigSchema: configSchema,
		Credentials:  credentials,
	}, nil
}

// Configure implements provider.Provider. It validates the config, loads
// the signing key through oci-go-sdk and swaps the settings in
// atomically; requests in flight finish with the settings they started
// with.
func (o *OCI) Configure(_ context.Context, cfg *provider.Config) error {
	s, err := parseConfig(cfg)
	if err != nil {
		return err
	}
	if old := o.state.Swap(s); old != nil {
		old.client.CloseIdleConnections()
	}
	return nil
}

// settings returns the current settings or a 503 before Configure.
func (o *OCI) settings() (*settings, error) {
	s := o.state.Load()
	if s == nil {
		return nil, openai.NewError(http.StatusServiceUnavailable, openai.TypeUnavailable, "not_configured",
			"the oci provider is not configured")
	}
	return s, nil
}

func (o *OCI) created() int64 {
	if o.now != nil {
		return o.now().Unix()
	}
	return time.Now().Unix()
}

// ChatCompletion implements provider.Provider.
func (o *OCI) ChatCompletion(ctx context.Context, req *provider.Request) (*provider.Response, error) {
	s, err := o.settings()
	if err != nil {
		return nil, err
	}
	chat, err := req.Chat()
	if err != nil {
		return nil, err
	}
	tr, err := translateRequest(chat, req, s, false)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	resp, err := o.send(ctx, s, http.MethodPost, s.endpoint, chatPath, nil, tr.body, req.Meta.RequestID, false)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	if err != nil {
		return nil, transportError(ctx, fmt.Errorf("oci: read response: %w", err))
	}
	var cr chatResult
	if err := json.Unmarshal(raw, &cr); err != nil || len(cr.ChatResponse) == 0 {
		return nil, badUpstream("response is not a chat result", err)
	}
	rm := responseMeta{id: completionID(resp.Header), seed: callSeed(chat), model: chat.Model, created: o.created()}
	var cc *openai.ChatCompletion
	if tr.format == formatCohere {
		cc, err = translateCohereResponse(cr.ChatResponse, rm)
	} else {
		cc, err = translateGenericResponse(cr.ChatResponse, rm)
	}
	if err != nil {
		return nil, err
	}
	out, err := provider.JSONResponse(cc)
	if err != nil {
		return nil, fmt.Errorf("oci: encode completion: %w", err)
	}
	out.Header = relayHeaders(resp.Header)
	return out, nil
}

// ChatCompletionStream implements provider.Provider.
func (o *OCI) ChatCompletionStream(ctx context.Context, req *provider.Request, w provider.ChunkWriter) error {
	s, err := o.settings()
	if err != nil {
		return err
	}
	chat, err := req.Chat()
	if err != nil {
		return err
	}
	tr, err := translateRequest(chat, req, s, true)
	if err != nil {
		return err
	}
	resp, err := o.send(ctx, s, http.MethodPost, s.endpoint, chatPath, nil, tr.body, req.Meta.RequestID, true)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := provider.StreamHeader(w, relayHeaders(resp.Header)); err != nil {
		return err
	}
	st := &streamer{
		w:            w,
		format:       tr.format,
		meta:         responseMeta{id: completionID(resp.Header), seed: callSeed(chat), model: chat.Model, created: o.created()},
		includeUsage: chat.IncludeUsage(),
		choices:      tr.choices,
		usageWait:    s.usageWait,
	}
	if err := st.run(ctx, resp.Body); err != nil {
		return transportError(ctx, err)
	}
	return nil
}

// Health implements provider.HealthChecker: the instance must be able to
// sign a request the inference endpoint accepts. A tiny embedText call
// is not free, so the check lists models on the management endpoint.
func (o *OCI) Health(ctx context.Context) error {
	s, err := o.settings()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	q := url.Values{"compartmentId": {s.compartmentID}, "limit": {"1"}}
	resp, err := o.send(ctx, s, http.MethodGet, s.management, modelsPath, q, nil, "", false)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// ListModels implements provider.ModelLister with the management API's
// model list (chat and embedding models of the compartment).
func (o *OCI) ListModels(ctx context.Context, _ provider.Meta) ([]openai.Model, error) {
	s, err := o.settings()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	q := url.Values{"compartmentId": {s.compartmentID}, "lifecycleState": {"ACTIVE"}}
	resp, err := o.send(ctx, s, http.MethodGet, s.management, modelsPath, q, nil, "", false)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var list modelCollection
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponseBody)).Decode(&list); err != nil {
		return nil, badUpstream("model list is not a model collection", err)
	}
	seen := map[string]bool{}
	var out []openai.Model
	for _, m := range list.Items {
		if m.DisplayName == "" || seen[m.DisplayName] || (m.LifecycleState != "" && m.LifecycleState != "ACTIVE") {
			continue
		}
		seen[m.DisplayName] = true
		var created int64
		if t, err := time.Parse(time.RFC3339, m.TimeCreated); err == nil {
			created = t.Unix()
		}
		owner := m.Vendor
		if owner == "" {
			owner = "oci"
		}
		out = append(out, openai.Model{ID: m.DisplayName, Object: openai.ObjectModel, Created: created, OwnedBy: owner})
	}
	return out, nil
}

// send signs and performs one upstream call and returns the response when
// its status is 2xx, else an *openai.Error.
func (o *OCI) send(ctx context.Context, s *settings, method string, base *url.URL, path string, q url.Values, body []byte, requestID string, stream bool) (*http.Response, error) {
	u := *base
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
		return nil, fmt.Errorf("oci: build request: %w", err)
	}
	if body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	if stream {
		hr.Header.Set("Accept", "text/event-stream")
	} else {
		hr.Header.Set("Accept", "application/json")
	}
	if requestID != "" && len(requestID) <= 98 {
		hr.Header.Set("opc-request-id", requestID)
	}
	if err := s.sign(hr); err != nil {
		return nil, err
	}
	resp, err := s.client.Do(hr)
	if err != nil {
		return nil, transportError(ctx, fmt.Errorf("oci: %s %s: %w", method, path, err))
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		return nil, statusError(resp.StatusCode, resp.Header, raw)
	}
	return resp, nil
}

// sign dates r and signs it with oci-go-sdk's request signer: the
// draft-cavage signature over date, (request-target) and host, plus
// content-length, content-type and x-content-sha256 for bodies.
func (s *settings) sign(r *http.Request) error {
	r.Header.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	if err := s.signer.Sign(r); err != nil {
		provider.Logger().Error("oci: signing failed", "error", s.redact(err.Error()))
		return openai.NewError(http.StatusUnauthorized, openai.TypeAuthentication, "upstream_signing_failed",
			"oci: the instance could not sign the upstream request; check its OCI credentials")
	}
	return nil
}

// redact removes the instance's secrets from a message.
func (s *settings) redact(msg string) string {
	for _, v := range s.secrets {
		if len(v) >= 4 {
			msg = strings.ReplaceAll(msg, v, "[redacted]")
		}
	}
	return msg
}

// completionID is the OpenAI id of a response: OCI has none in the body,
// its opc-request-id header names the call.
func completionID(h http.Header) string {
	if id := h.Get("opc-request-id"); id != "" {
		return "chatcmpl-" + id
	}
	return "chatcmpl-oci"
}

// relayHeaders picks the upstream headers worth showing the client.
func relayHeaders(h http.Header) map[string]string {
	if id := h.Get("opc-request-id"); id != "" {
		return map[string]string{"opc-request-id": id}
	}
	return nil
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
		return fmt.Errorf("oci: client went away: %w", context.Canceled)
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded):
		return openai.NewError(http.StatusGatewayTimeout, openai.TypeTimeout, "upstream_timeout", "oci: upstream timed out")
	}
	var ne interface{ Timeout() bool }
	if errors.As(err, &ne) && ne.Timeout() {
		return openai.NewError(http.StatusGatewayTimeout, openai.TypeTimeout, "upstream_timeout", err.Error())
	}
	return openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "upstream_error", err.Error())
}

// badUpstream is the 502 for an upstream answer that does not parse.
func badUpstream(what string, err error) *openai.Error {
	msg := "oci: " + what
	if err != nil {
		msg += ": " + err.Error()
	}
	return openai.NewError(http.StatusBadGateway, openai.TypeUpstream, "invalid_upstream_response", msg)
}
