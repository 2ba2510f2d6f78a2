// Command llmproxy-provider-template forwards chat to an OpenAI-compatible
// upstream: the plugin `llmproxy plugins new provider <name>` starts from.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
	"github.com/llmproxy/llmproxy/sdk/schema"
)

// Forward is the plugin; Configure swaps its upstream atomically.
type Forward struct{ up atomic.Pointer[upstream] }
type upstream struct{ baseURL, apiKey string }

func main() { provider.Serve(&Forward{}) } // Serve takes a provider.Provider

// Describe declares the config block and secrets; the host checks both.
func (f *Forward) Describe(context.Context) (*provider.Description, error) {
	return &provider.Description{Name: "template", Version: "0.1.0", // the binary is llmproxy-provider-<Name>
		ConfigSchema: schema.Schema{Attributes: []schema.Attribute{{Name: "base_url", Type: "string", Required: true,
			Description: "Base URL of the OpenAI-compatible API, e.g. https://api.example.com/v1."}}},
		Credentials: []schema.Credential{{Name: "api_key", Required: true, Description: "Bearer token for the upstream."}},
	}, nil
}

// Configure receives the config block as JSON and the resolved secrets.
func (f *Forward) Configure(_ context.Context, cfg *provider.Config) error {
	var c struct {
		BaseURL string `json:"base_url"`
	}
	if err := cfg.Decode(&c); err != nil {
		return err // schema.Diagnostics; return schema.Errorf for your own checks
	}
	f.up.Store(&upstream{strings.TrimSuffix(c.BaseURL, "/"), cfg.Credentials["api_key"]})
	return nil
}

// client sends upstream requests; provider.Transport carries the host's
// trace context to the upstream (traceparent) when tracing is on.
var client = &http.Client{Transport: provider.Transport(nil)}

// post sends the chat request (a 400 if it is not one) with the routed model,
// every other field as the client sent it, and returns a successful response.
func (f *Forward) post(ctx context.Context, req *provider.Request) (*http.Response, error) {
	var body map[string]json.RawMessage
	if _, err := req.Chat(); err != nil || json.Unmarshal(req.Body, &body) != nil {
		return nil, err
	}
	body["model"], _ = json.Marshal(req.Meta.Model)
	b, _ := json.Marshal(body)
	up := f.up.Load()
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, up.baseURL+"/chat/completions", bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	hr.Header = http.Header{"Content-Type": {"application/json"}, "Authorization": {"Bearer " + up.apiKey}}
	resp, err := client.Do(hr) // an error here reaches the client as 502
	if err == nil && resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return nil, openai.ParseError(resp.StatusCode, msg) // the upstream's status and message
	}
	return resp, err
}

// ChatCompletion relays one chat.completion.
func (f *Forward) ChatCompletion(ctx context.Context, req *provider.Request) (*provider.Response, error) {
	resp, err := f.post(ctx, req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return &provider.Response{Body: b}, err
}

// ChatCompletionStream relays each server-sent chunk until [DONE].
func (f *Forward) ChatCompletionStream(ctx context.Context, req *provider.Request, w provider.ChunkWriter) error {
	resp, err := f.post(ctx, req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body) // lines up to 64 KiB; see Scanner.Buffer
	for sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok && data == "[DONE]" {
			return nil
		} else if ok && data != "" {
			if err := w.WriteChunk([]byte(data)); err != nil {
				return err
			}
		}
	}
	return sc.Err() // a dropped connection is io.ErrUnexpectedEOF
}
