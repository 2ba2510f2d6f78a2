package main

import (
	"context"

	"cloud.google.com/go/auth"
	"cloud.google.com/go/auth/credentials"

	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/plugins/provider-vertex/vertexfake"
	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
	"github.com/llmproxy/llmproxy/sdk/schema"
	"github.com/llmproxy/llmproxy/sdk/sdktest"
	"github.com/llmproxy/llmproxy/sdk/sdktest/golden"
)

func TestConformance(t *testing.T) {
	f := startFake(t, vertexfake.Options{})
	f.SetScenario(vertexfake.Scenario{Parts: []vertexfake.Part{vertexfake.Text("Hello, conformance suite!")}})
	sdktest.RunProvider(t, sdktest.ProviderSuite{
		Provider:       &Vertex{},
		Config:         fakeConfig(f, ""),
		Model:          testModel,
		Deterministic:  true,
		EmbeddingModel: "text-embedding-005",
	})
}

func TestConfigure(t *testing.T) {
	f := startFake(t, vertexfake.Options{})
	sa := string(f.ServiceAccountJSON())
	tests := []struct {
		name     string
		json     string
		creds    map[string]string
		wantPath string
	}{
		{"service account", `{"location":"europe-west4"}`, map[string]string{"service_account_json": sa}, ""},
		{"nulls", `{"project":null,"location":null,"endpoint":null,"timeout":null,"default_max_tokens":null}`, map[string]string{"service_account_json": sa}, ""},
		{"all set", `{"project":"p-1","location":"global","endpoint":"https://proxy.example.com/vertex/","timeout":"90s","default_max_tokens":2048}`, map[string]string{"service_account_json": sa}, ""},
		{"express mode", `{}`, map[string]string{"api_key": "k"}, ""},
		{"both credentials", `{}`, map[string]string{"api_key": "k", "service_account_json": sa}, "credentials.api_key"},
		{"not a service account", `{}`, map[string]string{"service_account_json": `{"type":"authorized_user"}`}, "credentials.service_account_json"},
		{"broken key", `{}`, map[string]string{"service_account_json": `{"type":"service_account","client_email":"a@b","private_key":"not a key"}`}, "credentials.service_account_json"},
		{"bad token uri", `{}`, map[string]string{"service_account_json": strings.Replace(sa, f.TokenURL(), "ftp://x", 1)}, "credentials.service_account_json"},
		{"bad location", `{"location":"US Central"}`, map[string]string{"service_account_json": sa}, "location"},
		{"bad project", `{"project":"My Project"}`, map[string]string{"service_account_json": sa}, "project"},
		{"relative endpoint", `{"endpoint":"aiplatform.googleapis.com"}`, map[string]string{"service_account_json": sa}, "endpoint"},
		{"bad timeout", `{"timeout":"soon"}`, map[string]string{"service_account_json": sa}, "timeout"},
		{"fractional max tokens", `{"default_max_tokens":1.5}`, map[string]string{"service_account_json": sa}, "default_max_tokens"},
		{"no credentials, no ADC", `{"project":"p"}`, nil, "credentials.service_account_json"},
		{"wrong type", `{"location":7}`, map[string]string{"api_key": "k"}, "-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := &Vertex{detect: noADC}
			err := v.Configure(context.Background(), &provider.Config{Instance: "v", JSON: []byte(tt.json), Credentials: tt.creds})
			if tt.wantPath == "" {
				if err != nil {
					t.Fatalf("Configure: %v", err)
				}
				return
			}
			var diags schema.Diagnostics
			if !errors.As(err, &diags) || !diags.HasErrors() {
				t.Fatalf("Configure = %v, want diagnostics", err)
			}
			if tt.wantPath != "-" && strings.Join(diags[0].Path, ".") != tt.wantPath {
				t.Errorf("diagnostic path %v, want %s", diags[0].Path, tt.wantPath)
			}
			if strings.Contains(err.Error(), "PRIVATE KEY") {
				t.Errorf("diagnostics leak the key: %v", err)
			}
		})
	}
}

// noADC is an ADC lookup that finds nothing.
func noADC(context.Context, *credentials.DetectOptions) (*auth.Credentials, error) {
	return nil, errors.New("no default credentials here")
}

func TestEndpointDefaults(t *testing.T) {
	f := startFake(t, vertexfake.Options{})
	sa := string(f.ServiceAccountJSON())
	for _, tc := range []struct{ json, key, want string }{
		{`{}`, "", "https://us-central1-aiplatform.googleapis.com"},
		{`{"location":"europe-west4"}`, "", "https://europe-west4-aiplatform.googleapis.com"},
		{`{"location":"global"}`, "", "https://aiplatform.googleapis.com"},
		{`{}`, "k", "https://aiplatform.googleapis.com"},
	} {
		creds := map[string]string{"service_account_json": sa}
		if tc.key != "" {
			creds = map[string]string{"api_key": tc.key}
		}
		s, err := parseConfig(context.Background(), &provider.Config{JSON: []byte(tc.json), Credentials: creds}, noADC, 0)
		if err != nil {
			t.Fatal(err)
		}
		if s.baseURL.String() != tc.want {
			t.Errorf("%s (key %q): endpoint %s, want %s", tc.json, tc.key, s.baseURL, tc.want)
		}
	}
}

// toolTurn is a two-call request with the given assistant turn and tool
// results appended when turn is set.
func toolTurn(model, turn string) []byte {
	b := `{"model":"` + model + `","messages":[{"role":"user","content":"Weather and time in Paris?"}` + turn + `],` + weatherTools + `}`
	return []byte(b)
}

func TestThoughtSignatureRoundTrip(t *testing.T) {
	const model = "gemini-3-pro-preview"
	f := startFake(t, vertexfake.Options{})
	v := &Vertex{}
	if err := v.Configure(context.Background(), fakeConfig(f, "")); err != nil {
		t.Fatal(err)
	}
	f.SetScenario(vertexfake.Scenario{Parts: []vertexfake.Part{
		vertexfake.FunctionCall("get_weather", map[string]any{"city": "Paris"}),
		vertexfake.FunctionCall("get_time", map[string]any{"city": "Paris"}),
	}})
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprintf("stream=%v", stream), func(t *testing.T) {
			meta := provider.Meta{Model: model}
			var calls []openai.ToolCall
			if stream {
				var got chunks
				body := toolTurn(model, "")
				body = golden.Streamed(t, body)
				if err := v.ChatCompletionStream(context.Background(), &provider.Request{Meta: meta, Body: body}, &got); err != nil {
					t.Fatal(err)
				}
				var acc openai.Accumulator
				for _, c := range got {
					if err := acc.Add(c); err != nil {
						t.Fatal(err)
					}
				}
				calls = acc.Completion().Choices[0].Message.ToolCalls
			} else {
				resp, err := v.ChatCompletion(context.Background(), &provider.Request{Meta: meta, Body: toolTurn(model, "")})
				if err != nil {
					t.Fatal(err)
				}
				var cc openai.ChatCompletion
				if err := json.Unmarshal(resp.Body, &cc); err != nil {
					t.Fatal(err)
				}
				calls = cc.Choices[0].Message.ToolCalls
			}
			if len(calls) != 2 || signatureOf(calls[0].ID) == "" || signatureOf(calls[1].ID) != "" || calls[0].ID == calls[1].ID {
				t.Fatalf("tool calls %+v: want two ids, the first carrying the thought signature", calls)
			}
			followUp := func(ids [2]string) error {
				turn := fmt.Sprintf(`,{"role":"assistant","content":null,"tool_calls":[{"id":%q,"type":"function","function":{"name":"get_weather","arguments":%q}},{"id":%q,"type":"function","function":{"name":"get_time","arguments":%q}}]},`+
					`{"role":"tool","tool_call_id":%q,"content":"18C"},{"role":"tool","tool_call_id":%q,"content":"14:05"}`,
					ids[0], calls[0].Function.Arguments, ids[1], calls[1].Function.Arguments, ids[0], ids[1])
				f.SetScenario(vertexfake.Scenario{Parts: []vertexfake.Part{vertexfake.Text("18C at 14:05.")}})
				defer f.SetScenario(vertexfake.Scenario{Parts: []vertexfake.Part{
					vertexfake.FunctionCall("get_weather", map[string]any{"city": "Paris"}),
					vertexfake.FunctionCall("get_time", map[string]any{"city": "Paris"}),
				}})
				_, err := v.ChatCompletion(context.Background(), &provider.Request{Meta: meta, Body: toolTurn(model, turn)})
				return err
			}
			if err := followUp([2]string{calls[0].ID, calls[1].ID}); err != nil {
				t.Fatalf("follow-up with the echoed ids: %v", err)
			}
			var up struct {
				Contents []content `json:"contents"`
			}
			if err := json.Unmarshal(f.LastRequest().Body, &up); err != nil || len(up.Contents) != 3 ||
				up.Contents[1].Parts[0].ThoughtSignature != signatureOf(calls[0].ID) || len(up.Contents[2].Parts) != 2 {
				t.Errorf("follow-up upstream: %s", f.LastRequest().Body)
			}
			// A client that loses the signature gets the upstream's 400.
			stripped := strings.SplitN(calls[0].ID, sigSep, 2)[0]
			err := followUp([2]string{stripped, calls[1].ID})
			var oe *openai.Error
			if !errors.As(err, &oe) || oe.Status != http.StatusBadRequest || !strings.Contains(oe.Message, "thought_signature") {
				t.Errorf("follow-up without the signature: %v, want the upstream's 400", err)
			}
		})
	}
}

func TestToolCallIDsAreUniqueAcrossTurns(t *testing.T) {
	f := startFake(t, vertexfake.Options{})
	v := &Vertex{}
	if err := v.Configure(context.Background(), fakeConfig(f, "")); err != nil {
		t.Fatal(err)
	}
	f.SetScenario(vertexfake.Scenario{Parts: []vertexfake.Part{
		vertexfake.FunctionCall("get_weather", map[string]any{"city": "Paris"}),
		vertexfake.FunctionCall("get_weather", map[string]any{"city": "Paris"}),
	}, NoSignatures: true})
	seen := map[string]bool{}
	for i := 0; i < 5; i++ {
		resp, err := v.ChatCompletion(context.Background(), &provider.Request{Meta: provider.Meta{Model: testModel}, Body: toolTurn(testModel, "")})
		if err != nil {
			t.Fatal(err)
		}
		var cc openai.ChatCompletion
		if err := json.Unmarshal(resp.Body, &cc); err != nil {
			t.Fatal(err)
		}
		for _, c := range cc.Choices[0].Message.ToolCalls {
			if !strings.HasPrefix(c.ID, "call_") || seen[c.ID] {
				t.Fatalf("id %q is malformed or repeated", c.ID)
			}
			seen[c.ID] = true
		}
	}
}

func TestUnknownToolCallID(t *testing.T) {
	f := startFake(t, vertexfake.Options{})
	v, _ := newProvider(t, f)
	body := `{"model":"gemini-2.5-flash","messages":[{"role":"user","content":"hi"},{"role":"tool","tool_call_id":"call_missing","content":"x"}]}`
	_, err := v.ChatCompletion(context.Background(), &provider.Request{Meta: provider.Meta{Model: testModel}, Body: []byte(body)})
	var oe *openai.Error
	if !errors.As(err, &oe) || oe.Status != 400 || oe.Param != "messages[1].tool_call_id" {
		t.Fatalf("err = %v, want a 400 about messages[1].tool_call_id", err)
	}
	if f.Requests() != 0 {
		t.Errorf("the request reached the upstream")
	}
}

func TestStreamUsageIsTheLastCumulativeValue(t *testing.T) {
	f := startFake(t, vertexfake.Options{})
	v, _ := newProvider(t, f)
	f.SetScenario(vertexfake.Scenario{Parts: []vertexfake.Part{vertexfake.Text("A fairly long answer split into many events.")},
		ChunkSize: 4, Usage: vertexfake.Usage{Prompt: 10, Candidates: 30, Thoughts: 5}})
	var got chunks
	body := golden.Streamed(t, []byte(plainBody))
	if err := v.ChatCompletionStream(context.Background(), &provider.Request{Meta: provider.Meta{Model: testModel}, Body: body}, &got); err != nil {
		t.Fatal(err)
	}
	var last openai.ChatChunk
	if err := json.Unmarshal(got[len(got)-1], &last); err != nil || last.Usage == nil {
		t.Fatalf("no usage chunk: %s", got[len(got)-1])
	}
	u := last.Usage
	if u.PromptTokens != 10 || u.CompletionTokens != 35 || u.TotalTokens != 45 || u.CompletionTokensDetails.ReasoningTokens != 5 {
		t.Errorf("usage %+v, want the final cumulative 10/35/45 with 5 reasoning tokens", u)
	}
	if len(got) < 12 {
		t.Errorf("only %d chunks: the scenario should stream many events", len(got))
	}
}

func TestTokenCachingAndRefresh(t *testing.T) {
	f := startFake(t, vertexfake.Options{TokenTTL: 2 * time.Second})
	v := &Vertex{earlyRefresh: 700 * time.Millisecond}
	if err := v.Configure(context.Background(), fakeConfig(f, "")); err != nil {
		t.Fatal(err)
	}
	call := func() error {
		_, err := v.ChatCompletion(context.Background(), &provider.Request{Meta: provider.Meta{Model: testModel}, Body: []byte(plainBody)})
		return err
	}
	for i := 0; i < 3; i++ {
		if err := call(); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.TokensIssued(); n != 1 {
		t.Errorf("%d tokens issued for three quick calls, want 1 (cached)", n)
	}
	// Inside the early-refresh window the still valid token is used and a
	// new one fetched in the background, before the old one expires.
	time.Sleep(1500 * time.Millisecond)
	if err := call(); err != nil {
		t.Fatalf("call in the refresh window: %v", err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for f.TokensIssued() < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := f.TokensIssued(); n != 2 {
		t.Fatalf("%d tokens issued, want a refresh ahead of expiry", n)
	}
	// After the first token's expiry every call still succeeds.
	time.Sleep(700 * time.Millisecond)
	for i := 0; i < 2; i++ {
		if err := call(); err != nil {
			t.Fatalf("call after the first token expired: %v", err)
		}
	}
}

func TestCredentialFailuresAreGeneric401(t *testing.T) {
	f := startFake(t, vertexfake.Options{})
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	wrongKey := string(f.ServiceAccountJSONWithKey(other))
	tests := []struct {
		name  string
		creds string
		setup func()
		want  int
	}{
		{"wrong private key", wrongKey, func() {}, 401},
		{"token endpoint refuses", string(f.ServiceAccountJSON()), func() { f.FailTokens(1, 400) }, 401},
		{"client disabled", string(f.ServiceAccountJSON()), func() { f.FailTokens(1, 401) }, 401},
		{"token endpoint down", string(f.ServiceAccountJSON()), func() { f.FailTokens(1, 503) }, 502},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := &Vertex{}
			cfg := fakeConfig(f, "")
			cfg.Credentials = map[string]string{"service_account_json": tt.creds}
			if err := v.Configure(context.Background(), cfg); err != nil {
				t.Fatal(err)
			}
			f.Reset()
			tt.setup()
			_, err := v.ChatCompletion(context.Background(), &provider.Request{Meta: provider.Meta{Model: testModel}, Body: []byte(plainBody)})
			var oe *openai.Error
			if !errors.As(err, &oe) || oe.Status != tt.want {
				t.Fatalf("err = %v, want status %d", err, tt.want)
			}
			if strings.Contains(oe.Message, "PRIVATE") || strings.Contains(oe.Message, vertexfake.DefaultClientEmail) || strings.Contains(oe.Message, "ya29") {
				t.Errorf("message leaks credential detail: %q", oe.Message)
			}
			if f.Requests() != 0 {
				t.Errorf("the API was called without a token")
			}
			// Health reports the same failure.
			f.FailTokens(1, 400)
			if tt.want == 401 && v.Health(context.Background()) == nil {
				t.Errorf("Health passed with refused credentials")
			}
		})
	}
	t.Run("revoked token", func(t *testing.T) {
		v, _ := newProvider(t, f)
		f.Reset()
		if _, err := v.ChatCompletion(context.Background(), &provider.Request{Meta: provider.Meta{Model: testModel}, Body: []byte(plainBody)}); err != nil {
			t.Fatal(err)
		}
		f.RevokeTokens()
		_, err := v.ChatCompletion(context.Background(), &provider.Request{Meta: provider.Meta{Model: testModel}, Body: []byte(plainBody)})
		var oe *openai.Error
		if !errors.As(err, &oe) || oe.Status != 401 || strings.Contains(oe.Message, "ya29") {
			t.Fatalf("err = %v, want a generic 401", err)
		}
	})
}

func TestExpressMode(t *testing.T) {
	f := startFake(t, vertexfake.Options{APIKey: "express-key-123"})
	v := &Vertex{}
	cfg := &provider.Config{Instance: "v", JSON: []byte(`{"endpoint":"` + f.URL() + `"}`), Credentials: map[string]string{"api_key": "express-key-123"}}
	if err := v.Configure(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := v.ChatCompletion(context.Background(), &provider.Request{Meta: provider.Meta{Model: testModel}, Body: []byte(plainBody)}); err != nil {
		t.Fatal(err)
	}
	r := f.LastRequest()
	if r.Path != "/v1/publishers/google/models/gemini-2.5-flash:generateContent" || r.Header.Get("x-goog-api-key") != "express-key-123" || r.Header.Get("Authorization") != "" {
		t.Errorf("express request %s with key %q, authorization %q", r.Path, r.Header.Get("x-goog-api-key"), r.Header.Get("Authorization"))
	}
	if f.TokensIssued() != 0 {
		t.Errorf("express mode fetched a token")
	}
}

func TestApplicationDefaultCredentials(t *testing.T) {
	f := startFake(t, vertexfake.Options{})
	path := filepath.Join(t.TempDir(), "sa.json")
	if err := os.WriteFile(path, f.ServiceAccountJSON(), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", path)
	v := &Vertex{now: func() time.Time { return fixedNow }}
	cfg := &provider.Config{Instance: "v", JSON: []byte(`{"endpoint":"` + f.URL() + `","location":"` + f.Location() + `"}`)}
	if err := v.Configure(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := v.ChatCompletion(context.Background(), &provider.Request{Meta: provider.Meta{Model: testModel}, Body: []byte(plainBody)}); err != nil {
		t.Fatalf("chat with ADC (project from the key file): %v", err)
	}
	if f.TokensIssued() != 1 {
		t.Errorf("tokens issued = %d, want 1", f.TokensIssued())
	}
}

func TestEmbeddings(t *testing.T) {
	f := startFake(t, vertexfake.Options{})
	v, _ := newProvider(t, f)
	embed := func(body string) (*openai.EmbeddingsResponse, error) {
		var er struct {
			Model string `json:"model"`
		}
		_ = json.Unmarshal([]byte(body), &er)
		resp, err := v.Embeddings(context.Background(), &provider.Request{Meta: provider.Meta{Model: er.Model}, Body: []byte(body)})
		if err != nil {
			return nil, err
		}
		var out openai.EmbeddingsResponse
		return &out, json.Unmarshal(resp.Body, &out)
	}
	t.Run("batch", func(t *testing.T) {
		f.Reset()
		out, err := embed(`{"model":"text-embedding-005","input":["one two","three"],"dimensions":8}`)
		if err != nil {
			t.Fatal(err)
		}
		var vec []float64
		if len(out.Data) != 2 || json.Unmarshal(out.Data[1].Embedding, &vec) != nil || len(vec) != 8 || out.Usage.PromptTokens != 3 {
			t.Fatalf("response %+v", out)
		}
		want := vertexfake.Vector("three", 8)
		for i := range want {
			if vec[i] != want[i] {
				t.Fatalf("vector %v, want %v", vec, want)
			}
		}
		if f.Requests() != 1 || !strings.HasSuffix(f.LastRequest().Path, "/models/text-embedding-005:predict") {
			t.Errorf("%d requests, last %s", f.Requests(), f.LastRequest().Path)
		}
	})
	t.Run("gemini-embedding one text per call", func(t *testing.T) {
		f.Reset()
		out, err := embed(`{"model":"gemini-embedding-001","input":["a","b","c"],"encoding_format":"base64"}`)
		if err != nil {
			t.Fatal(err)
		}
		var s string
		if len(out.Data) != 3 || out.Data[2].Index != 2 || json.Unmarshal(out.Data[2].Embedding, &s) != nil || len(s) == 0 {
			t.Fatalf("response %+v", out)
		}
		if f.Requests() != 3 {
			t.Errorf("%d upstream calls, want 3", f.Requests())
		}
	})
	for _, bad := range []string{
		`{"model":"text-embedding-005","input":[]}`,
		`{"model":"text-embedding-005","input":[[1,2]]}`,
		`{"model":"text-embedding-005","input":"x","encoding_format":"int8"}`,
		`{"model":"text-embedding-005","input":["ok",""]}`,
	} {
		if _, err := embed(bad); golden.Status(err) != 400 {
			t.Errorf("%s: err %v, want 400", bad, err)
		}
	}
	if _, err := embed(`{"model":"gemini-2.5-flash","input":"x"}`); golden.Status(err) != 400 {
		t.Errorf("embedding a chat model: %v, want the upstream's 400", err)
	}
}

func TestListModelsPages(t *testing.T) {
	var models []string
	for i := 0; i < 450; i++ {
		models = append(models, fmt.Sprintf("gemini-test-%03d", i))
	}
	f := startFake(t, vertexfake.Options{Models: models})
	v, _ := newProvider(t, f)
	got, err := v.ListModels(context.Background(), provider.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 450 || got[449].ID != "gemini-test-449" || got[0].OwnedBy != "google" {
		t.Errorf("%d models, last %+v", len(got), got[len(got)-1])
	}
	if f.Requests() != 3 {
		t.Errorf("%d pages fetched, want 3", f.Requests())
	}
}

func TestPassthrough(t *testing.T) {
	f := startFake(t, vertexfake.Options{})
	v, _ := newProvider(t, f)
	srv := httptest.NewServer(http.HandlerFunc(v.Passthrough))
	defer srv.Close()
	native := `{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}`
	path := "/v1/projects/" + f.Project() + "/locations/" + f.Location() + "/publishers/google/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
	req, _ := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(native))
	req.Header.Set("Authorization", "Bearer client-llmproxy-key")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	if resp.StatusCode != 200 || !strings.Contains(sb.String(), "data: {") || !strings.Contains(sb.String(), `"finishReason":"STOP"`) {
		t.Fatalf("passthrough stream %d: %s", resp.StatusCode, sb.String())
	}
	up := f.LastRequest()
	if up.RawQuery != "alt=sse" || up.Header.Get("Authorization") == "Bearer client-llmproxy-key" || !strings.HasPrefix(up.Header.Get("Authorization"), "Bearer ya29.fake-") || string(up.Body) != native {
		t.Errorf("upstream got query %q, authorization %q, body %s", up.RawQuery, up.Header.Get("Authorization"), up.Body)
	}
	for _, p := range []string{"/token", "/v1/../token", "/computeMetadata/v1/"} {
		resp, err := http.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, resp.StatusCode)
		}
	}
}

func TestRequestRefusals(t *testing.T) {
	f := startFake(t, vertexfake.Options{})
	v, _ := newProvider(t, f)
	tests := []struct{ body, param string }{
		{`{"model":"m","messages":[{"role":"user","content":"x"}],"logprobs":true}`, "logprobs"},
		{`{"model":"m","messages":[{"role":"user","content":"x"}],"n":9}`, "n"},
		{`{"model":"m","messages":[{"role":"user","content":"x"}],"stop":["a","b","c","d","e","f"]}`, "stop"},
		{`{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":3}`, "temperature"},
		{`{"model":"m","messages":[{"role":"user","content":[{"type":"file","file":{"file_id":"file-1"}}]}]}`, "messages[0].content[0].file"},
		{`{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://x.example/pic"}}]}]}`, "messages[0].content[0].image_url.url"},
		{`{"model":"m","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{}}]}]}`, "messages[0].content[0].type"},
		{`{"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"$ref":"https://example.com/s.json"}}}}`, "response_format.json_schema.schema"},
		{`{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":{"type":"function","function":{"name":"g"}}}`, "tool_choice"},
		{`{"model":"m","messages":[{"role":"system","content":"only a system prompt"}]}`, "messages"},
	}
	for _, tt := range tests {
		_, err := v.ChatCompletion(context.Background(), &provider.Request{Meta: provider.Meta{Model: testModel}, Body: []byte(tt.body)})
		var oe *openai.Error
		if !errors.As(err, &oe) || oe.Status != 400 || oe.Param != tt.param {
			t.Errorf("%s: err %v, want 400 about %s", tt.body, err, tt.param)
		}
	}
	if f.Requests() != 0 {
		t.Errorf("%d refused requests reached the upstream", f.Requests())
	}
}
