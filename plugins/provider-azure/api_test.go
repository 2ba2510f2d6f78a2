package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/llmproxy/llmproxy/plugins/provider-azure/azurefake"
	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
	"github.com/llmproxy/llmproxy/sdk/sdktest"
)

func TestEmbeddings(t *testing.T) {
	f := startFake(t, fakeOptions())
	a := configured(t, apiKeyConfig(f, `,"deployments":{"embed":"text-embedding-3-small"}`))
	req := &provider.Request{Meta: provider.Meta{Model: "embed"}, Body: []byte(`{"model":"embed","input":["one","two"],"dimensions":8}`)}
	resp, err := a.Embeddings(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	var er openai.EmbeddingsResponse
	if err := json.Unmarshal(resp.Body, &er); err != nil {
		t.Fatal(err)
	}
	if len(er.Data) != 2 || er.Data[1].Index != 1 || er.Usage.TotalTokens != 2 {
		t.Errorf("response: %s", resp.Body)
	}
	last := f.LastRequest()
	if last.Path != "/openai/deployments/text-embedding-3-small/embeddings" || last.Query.Get("api-version") != DefaultAPIVersion {
		t.Errorf("upstream %s?%s", last.Path, last.Query.Encode())
	}
	var sent map[string]any
	last.JSON(&sent)
	if sent["model"] != "embed" || sent["dimensions"] != float64(8) {
		t.Errorf("upstream body lost fields: %v", sent)
	}

	_, err = a.Embeddings(context.Background(), &provider.Request{Body: []byte(`{"model":"embed","input":[]}`)})
	if oe := asOpenAIError(t, err); oe.Status != http.StatusBadRequest || oe.Param != "input" {
		t.Errorf("empty input: %v", oe)
	}
	_, err = a.Embeddings(context.Background(), &provider.Request{Body: []byte(`{"model":"gpt-4o","input":"x"}`)})
	if oe := asOpenAIError(t, err); oe.Status != http.StatusBadRequest || oe.Code != "OperationNotSupported" {
		t.Errorf("chat deployment: %v", oe)
	}
}

func TestListModels(t *testing.T) {
	f := startFake(t, fakeOptions())
	tests := []struct {
		name string
		cfg  *provider.Config
		want []string
	}{
		{"from deployments", apiKeyConfig(f, ""), []string{"gpt-4o", "gpt-4o-mini"}},
		{"from upstream", &provider.Config{JSON: []byte(`{"endpoint":"` + f.URL() + `"}`), Credentials: map[string]string{CredAPIKey: testKey}},
			[]string{"gpt-4o-2024-08-06", "text-embedding-3-small"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			models, err := configured(t, tt.cfg).ListModels(context.Background(), provider.Meta{})
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, m := range models {
				ids = append(ids, m.ID)
				if m.Object != openai.ObjectModel || m.OwnedBy != ownedBy {
					t.Errorf("model %+v", m)
				}
			}
			if strings.Join(ids, ",") != strings.Join(tt.want, ",") {
				t.Errorf("models = %v, want %v", ids, tt.want)
			}
		})
	}
}

func TestPassthrough(t *testing.T) {
	f := startFake(t, fakeOptions())
	a := configured(t, apiKeyConfig(f, ""))
	tests := []struct {
		name       string
		method     string
		target     string
		body       string
		header     http.Header
		scenario   azurefake.Scenario
		wantStatus int
		wantBody   []string
		wantQuery  string
	}{
		{"chat json", http.MethodPost, "/openai/deployments/gpt-4o/chat/completions?api-version=2024-06-01",
			`{"messages":[{"role":"user","content":"Hi"}]}`,
			http.Header{"Api-Key": {"client-key"}, "Authorization": {"Bearer client-token"}, "Content-Type": {"application/json"}},
			azurefake.Scenario{}, 200, []string{`"prompt_filter_results"`, azurefake.DefaultText}, "api-version=2024-06-01"},
		{"chat stream unchanged", http.MethodPost, "/openai/deployments/gpt-4o/chat/completions",
			`{"messages":[{"role":"user","content":"Hi"}],"stream":true}`, http.Header{"Content-Type": {"application/json"}},
			azurefake.Scenario{SplitWrites: true}, 200, []string{`data: {"choices":[],"created":0,"id":""`, "data: [DONE]\n\n"}, "api-version=" + DefaultAPIVersion},
		{"models", http.MethodGet, "/openai/models", "", nil, azurefake.Scenario{}, 200, []string{`"gpt-4o-2024-08-06"`}, "api-version=" + DefaultAPIVersion},
		{"upstream error relayed", http.MethodPost, "/openai/deployments/missing/chat/completions", `{"messages":[{"role":"user","content":"Hi"}]}`, nil,
			azurefake.Scenario{}, 404, []string{`"DeploymentNotFound"`}, "api-version=" + DefaultAPIVersion},
		{"outside /openai", http.MethodGet, "/subscriptions/x", "", nil, azurefake.Scenario{}, 404, []string{"below /openai/"}, ""},
		{"dot segments", http.MethodGet, "/openai/../secret", "", nil, azurefake.Scenario{}, 404, []string{"below /openai/"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.Reset()
			f.SetScenario(tt.scenario)
			r := httptest.NewRequest(tt.method, "http://plugin"+tt.target, strings.NewReader(tt.body))
			// NewRequest cleans nothing, but keep the raw path as the host sends it.
			r.URL.Path = strings.SplitN(tt.target, "?", 2)[0]
			for k, v := range tt.header {
				r.Header[k] = v
			}
			w := httptest.NewRecorder()
			a.Passthrough(w, r)
			body, _ := io.ReadAll(w.Result().Body)
			if w.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d: %s", w.Code, tt.wantStatus, body)
			}
			for _, s := range tt.wantBody {
				if !strings.Contains(string(body), s) {
					t.Errorf("body lacks %q:\n%s", s, body)
				}
			}
			if tt.wantQuery == "" {
				if f.Requests() != 0 {
					t.Errorf("rejected path reached the upstream")
				}
				return
			}
			last := f.LastRequest()
			if last.Query.Encode() != tt.wantQuery {
				t.Errorf("upstream query = %q, want %q", last.Query.Encode(), tt.wantQuery)
			}
			if last.Header.Get("api-key") != testKey || last.Header.Get("Authorization") != "" {
				t.Errorf("upstream auth: api-key %q Authorization %q", last.Header.Get("api-key"), last.Header.Get("Authorization"))
			}
			if string(last.Body) != tt.body {
				t.Errorf("upstream body = %q, want %q", last.Body, tt.body)
			}
		})
	}
}

func TestPassthroughOverGRPC(t *testing.T) {
	f := startFake(t, fakeOptions())
	c := sdktest.ConnectProvider(t, &Azure{})
	ctx := context.Background()
	if diags, err := c.Configure(ctx, entraConfig(f)); err != nil || diags.HasErrors() {
		t.Fatalf("Configure: %v %v", err, diags)
	}
	st, err := c.Passthrough(ctx, &provider.PassthroughRequest{
		Method: http.MethodPost,
		Path:   "/openai/deployments/gpt-4o/chat/completions",
		Header: http.Header{"Content-Type": {"application/json"}, "Api-Key": {"client-key"}},
		Body:   []byte(`{"messages":[{"role":"user","content":"Hi"}],"stream":true}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != http.StatusOK || !strings.HasPrefix(st.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("status %d content type %q", st.Status, st.Header.Get("Content-Type"))
	}
	var body strings.Builder
	for {
		b, err := st.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body.Write(b)
	}
	if !strings.HasSuffix(body.String(), "data: [DONE]\n\n") {
		t.Errorf("native stream not relayed unchanged:\n%s", body.String())
	}
	last := f.LastRequest()
	if last.Header.Get("api-key") != "" || !strings.HasPrefix(last.Header.Get("Authorization"), "Bearer eyFake.") {
		t.Errorf("upstream auth: api-key %q Authorization %q", last.Header.Get("api-key"), last.Header.Get("Authorization"))
	}
}
