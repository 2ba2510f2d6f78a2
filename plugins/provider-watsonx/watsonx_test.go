package main

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/plugins/provider-watsonx/watsonxfake"
	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
	"github.com/llmproxy/llmproxy/sdk/schema"
	"github.com/llmproxy/llmproxy/sdk/sdktest"
)

func TestConformance(t *testing.T) {
	f := startFake(t, watsonxfake.Options{})
	f.SetScenario(watsonxfake.Scenario{Text: "Hello, conformance suite.", Usage: watsonxfake.Usage{PromptTokens: 15, CompletionTokens: 5}})
	sdktest.RunProvider(t, sdktest.ProviderSuite{
		Provider:       &Watsonx{},
		Config:         fakeConfig(f, ""),
		Model:          testModel,
		Deterministic:  true,
		EmbeddingModel: "ibm/slate-125m-english-rtrvr",
	})
}

// calls are the three data-plane calls that authenticate with a token.
var calls = []struct {
	name string
	do   func(ctx context.Context, w *Watsonx) error
	path string
}{
	{"chat", func(ctx context.Context, w *Watsonx) error {
		_, err := w.ChatCompletion(ctx, &provider.Request{Meta: provider.Meta{Model: testModel}, Body: []byte(plainBody)})
		return err
	}, "/ml/v1/text/chat"},
	{"stream", func(ctx context.Context, w *Watsonx) error {
		var c chunks
		err := w.ChatCompletionStream(ctx, &provider.Request{Meta: provider.Meta{Model: testModel},
			Body: []byte(`{"model":"ibm/granite-3-3-8b-instruct","stream":true,"messages":[{"role":"user","content":"Hello"}]}`)}, &c)
		if err == nil && len(c) < 3 {
			return errors.New("stream produced too few chunks")
		}
		return err
	}, "/ml/v1/text/chat_stream"},
	{"embeddings", func(ctx context.Context, w *Watsonx) error {
		_, err := w.Embeddings(ctx, &provider.Request{Meta: provider.Meta{Model: "ibm/slate-125m-english-rtrvr"},
			Body: []byte(`{"model":"ibm/slate-125m-english-rtrvr","input":["a","b"]}`)})
		return err
	}, "/ml/v1/text/embeddings"},
}

// countPath counts the recorded requests to path.
func countPath(f *watsonxfake.Server, path string) int {
	n := 0
	for _, r := range f.Requests() {
		if r.Path == path {
			n++
		}
	}
	return n
}

// TestExpiredTokenRetried: a token that watsonx.ai calls expired is
// renewed and the call made once more, with no error for the client.
func TestExpiredTokenRetried(t *testing.T) {
	f := startFake(t, watsonxfake.Options{})
	w := newProvider(t, f)
	ctx := context.Background()
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			if err := c.do(ctx, w); err != nil {
				t.Fatalf("first call: %v", err)
			}
			f.Reset()
			before := f.Exchanges()
			f.ExpireTokens()
			if err := c.do(ctx, w); err != nil {
				t.Fatalf("call with an expired token: %v", err)
			}
			if got := f.ExpiredRefusals(); got != 1 {
				t.Errorf("expired refusals = %d, want 1", got)
			}
			if got := f.Exchanges() - before; got != 1 {
				t.Errorf("token exchanges = %d, want 1", got)
			}
			if got := countPath(f, c.path); got != 2 {
				t.Errorf("%s calls = %d, want 2 (the refused one and the retry)", c.path, got)
			}
		})
	}
}

// TestExpiredTokenRetriedOnce: a second refusal reaches the client as a
// generic 401, after exactly one retry.
func TestExpiredTokenRetriedOnce(t *testing.T) {
	f := startFake(t, watsonxfake.Options{})
	w := newProvider(t, f)
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			f.Reset()
			f.FailNext(2, watsonxfake.Failure{Status: 401, Code: codeTokenExpired, Message: "Failed to authenticate the request due to an expired token"})
			err := c.do(context.Background(), w)
			var oe *openai.Error
			if !errors.As(err, &oe) || oe.Status != http.StatusUnauthorized || oe.Code != codeTokenExpired {
				t.Fatalf("error %v, want a 401 %s", err, codeTokenExpired)
			}
			if got := countPath(f, c.path); got != 2 {
				t.Errorf("%s calls = %d, want 2", c.path, got)
			}
		})
	}
}

// TestTokenRefreshedAhead: a token past its refresh point is renewed
// before use, so watsonx.ai never sees it expire; until then it is
// reused.
func TestTokenRefreshedAhead(t *testing.T) {
	f := startFake(t, watsonxfake.Options{TokenTTL: time.Hour})
	w := newProvider(t, f)
	ts := w.state.Load().tokens
	var mu sync.Mutex
	now := time.Now()
	ts.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			if err := c.do(ctx, w); err != nil {
				t.Fatal(err)
			}
			before := f.Exchanges()
			advance(30 * time.Minute)
			if err := c.do(ctx, w); err != nil {
				t.Fatal(err)
			}
			if f.Exchanges() != before {
				t.Errorf("a token with half its life left was renewed")
			}
			// An hour-long token is renewed with 5 minutes left.
			advance(26 * time.Minute)
			if err := c.do(ctx, w); err != nil {
				t.Fatal(err)
			}
			if f.Exchanges() != before+1 {
				t.Errorf("exchanges %d, want %d: the token was not renewed ahead of its expiration", f.Exchanges(), before+1)
			}
			if f.ExpiredRefusals() != 0 {
				t.Errorf("watsonx.ai saw an expired token")
			}
		})
	}
}

// TestTokenSingleFlight: concurrent requests share one token exchange.
func TestTokenSingleFlight(t *testing.T) {
	f := startFake(t, watsonxfake.Options{})
	w := newProvider(t, f)
	var wg sync.WaitGroup
	errs := make(chan error, 24)
	for i := 0; i < 24; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			errs <- calls[i%len(calls)].do(context.Background(), w)
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := f.Exchanges(); got != 1 {
		t.Errorf("token exchanges = %d, want 1", got)
	}
}

// TestLastGoodTokenKept: when renewal fails while the old token still
// lives, the old token serves.
func TestLastGoodTokenKept(t *testing.T) {
	f := startFake(t, watsonxfake.Options{})
	w := newProvider(t, f)
	ts := w.state.Load().tokens
	ctx := context.Background()
	if err := calls[0].do(ctx, w); err != nil {
		t.Fatal(err)
	}
	ts.now = func() time.Time { return time.Now().Add(57 * time.Minute) }
	f.FailIAMNext(1, watsonxfake.Failure{Status: 500, Code: "BXNIM0001E", Message: "internal error"})
	if err := calls[0].do(ctx, w); err != nil {
		t.Fatalf("a failed renewal hid a token that still lives: %v", err)
	}
}

// TestTokenExchangeRefused: a refused API key is a generic 401 that never
// contains the key; an IAM outage is a 502.
func TestTokenExchangeRefused(t *testing.T) {
	f := startFake(t, watsonxfake.Options{})
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			w := &Watsonx{}
			cfg := fakeConfig(f, "")
			cfg.Credentials["api_key"] = "wrong-key-SECRET-123"
			if err := w.Configure(context.Background(), cfg); err != nil {
				t.Fatal(err)
			}
			err := c.do(context.Background(), w)
			var oe *openai.Error
			if !errors.As(err, &oe) || oe.Status != http.StatusUnauthorized || oe.Type != openai.TypeAuthentication {
				t.Fatalf("error %v, want a 401 authentication_error", err)
			}
			if strings.Contains(string(oe.JSON()), "SECRET") || strings.Contains(oe.Error(), "SECRET") {
				t.Errorf("the error leaks the API key: %s", oe.JSON())
			}
			if !strings.Contains(oe.Message, "BXNIM0415E") {
				t.Errorf("message %q does not name IAM's error code", oe.Message)
			}
			if countPath(f, c.path) != 0 {
				t.Errorf("watsonx.ai was called without a token")
			}

			f.Reset()
			f.FailIAMNext(1, watsonxfake.Failure{Status: 503, Code: "BXNIM0003E", Message: "unavailable"})
			w2 := newProvider(t, f)
			err = c.do(context.Background(), w2)
			if !errors.As(err, &oe) || oe.Status != http.StatusBadGateway {
				t.Errorf("IAM outage: error %v, want 502", err)
			}
		})
	}
}

func TestUpstream401NotRetried(t *testing.T) {
	f := startFake(t, watsonxfake.Options{})
	w := newProvider(t, f)
	f.FailNext(1, watsonxfake.Failure{Status: 401})
	err := calls[0].do(context.Background(), w)
	var oe *openai.Error
	if !errors.As(err, &oe) || oe.Status != 401 || strings.Contains(oe.Message, "invalid token") {
		t.Fatalf("error %v, want a generic 401", err)
	}
	if got := countPath(f, "/ml/v1/text/chat"); got != 1 {
		t.Errorf("chat calls = %d, want 1", got)
	}
	// The refused token is dropped: the next call exchanges again.
	before := f.Exchanges()
	if err := calls[0].do(context.Background(), w); err != nil {
		t.Fatal(err)
	}
	if f.Exchanges() != before+1 {
		t.Errorf("the refused token was reused")
	}
}

func TestConfigure(t *testing.T) {
	cases := []struct {
		name, json string
		creds      map[string]string
		path       string
	}{
		{"missing url", `{}`, nil, "url"},
		{"bad url", `{"url":"ftp://x"}`, nil, "url"},
		{"bad iam_url", `{"url":"https://us-south.ml.cloud.ibm.com","iam_url":"iam"}`, nil, "iam_url"},
		{"project and space", `{"url":"https://us-south.ml.cloud.ibm.com","project_id":"p","space_id":"s"}`, nil, "space_id"},
		{"bad version", `{"url":"https://us-south.ml.cloud.ibm.com","version":"latest"}`, nil, "version"},
		{"bad timeout", `{"url":"https://us-south.ml.cloud.ibm.com","timeout":"soon"}`, nil, "timeout"},
		{"bad deployment", `{"url":"https://us-south.ml.cloud.ibm.com","deployments":{"m":"a/b"}}`, nil, "deployments"},
		{"missing api_key", `{"url":"https://us-south.ml.cloud.ibm.com","project_id":"p"}`, map[string]string{}, "credentials"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			creds := tc.creds
			if creds == nil {
				creds = map[string]string{"api_key": "k"}
			}
			err := (&Watsonx{}).Configure(context.Background(), &provider.Config{JSON: []byte(tc.json), Credentials: creds})
			var diags schema.Diagnostics
			if !errors.As(err, &diags) || !diags.HasErrors() {
				t.Fatalf("Configure(%s) = %v, want diagnostics", tc.json, err)
			}
			found := false
			for _, d := range diags {
				if len(d.Path) > 0 && d.Path[0] == tc.path {
					found = true
				}
			}
			if !found {
				t.Errorf("diagnostics %v do not point at %s", diags, tc.path)
			}
		})
	}
	ok := `{"url":"https://us-south.ml.cloud.ibm.com/","space_id":"s","version":"2024-05-31","timeout":"30s"}`
	if err := (&Watsonx{}).Configure(context.Background(), &provider.Config{JSON: []byte(ok), Credentials: map[string]string{"api_key": "k"}}); err != nil {
		t.Errorf("a good config was refused: %v", err)
	}
}

func TestRefusals(t *testing.T) {
	f := startFake(t, watsonxfake.Options{})
	w := newProvider(t, f)
	noScope := &Watsonx{}
	if err := noScope.Configure(context.Background(), &provider.Config{
		JSON:        []byte(`{"url":"` + f.URL() + `","iam_url":"` + f.URL() + `"}`),
		Credentials: map[string]string{"api_key": f.APIKey()}}); err != nil {
		t.Fatal(err)
	}
	user := func(content string) string {
		return `{"model":"ibm/granite-3-3-8b-instruct","messages":[{"role":"user","content":` + content + `}]}`
	}
	cases := []struct {
		name  string
		w     *Watsonx
		body  string
		docs  []provider.Document
		param string
		code  string
	}{
		{"logit_bias", w, `{"model":"m","messages":[{"role":"user","content":"x"}],"logit_bias":{"50256":-100}}`, nil, "logit_bias", "unsupported_parameter"},
		{"audio", w, user(`[{"type":"input_audio","input_audio":{"data":"AAAA","format":"wav"}}]`), nil, "messages[0].content[0].input_audio", "unsupported_parameter"},
		{"unresolved file", w, user(`[{"type":"file","file":{"file_id":"file-1"}}]`), nil, "messages[0].content[0].file", "unsupported_parameter"},
		{"pdf without text", w, user(`[{"type":"document","document":{"id":"doc_0"}}]`),
			[]provider.Document{{ID: "doc_0", Name: "scan.pdf", MIMEType: "application/pdf", Data: pdfBytes}}, "messages[0].content[0]", "unsupported_parameter"},
		{"missing document", w, user(`[{"type":"document","document":{"id":"doc_9"}}]`), nil, "messages[0].content[0].document", ""},
		{"image in system", w, `{"model":"m","messages":[{"role":"system","content":[{"type":"image_url","image_url":{"url":"` + pngDataURL + `"}}]},{"role":"user","content":"x"}]}`, nil, "messages[0].content[0].type", ""},
		{"unknown tool_choice", w, `{"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":"sometimes"}`, nil, "tool_choice", ""},
		{"no scope", noScope, plainBody, nil, "", "model_not_available"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f.Reset()
			_, err := tc.w.ChatCompletion(context.Background(), &provider.Request{Body: []byte(tc.body), Documents: tc.docs})
			var oe *openai.Error
			if !errors.As(err, &oe) || oe.Status != http.StatusBadRequest || oe.Param != tc.param || oe.Code != tc.code {
				t.Fatalf("error %v (param %q), want 400 param %q code %q", err, paramOf(oe), tc.param, tc.code)
			}
			if countPath(f, "/ml/v1/text/chat") != 0 {
				t.Errorf("a refused request reached watsonx.ai")
			}
		})
	}
}

func paramOf(oe *openai.Error) string {
	if oe == nil {
		return ""
	}
	return oe.Param
}

func TestDeploymentPrefix(t *testing.T) {
	f := startFake(t, watsonxfake.Options{Deployments: map[string]string{"granite-prod": "ibm/granite-3-3-8b-instruct"}})
	w := newProvider(t, f)
	resp, err := w.ChatCompletion(context.Background(), &provider.Request{
		Body: []byte(`{"model":"deployment/granite-prod","messages":[{"role":"user","content":"Hi"}]}`)})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.LastRequest().Path; got != "/ml/v1/deployments/granite-prod/text/chat" {
		t.Errorf("path %q", got)
	}
	var cc openai.ChatCompletion
	_ = json.Unmarshal(resp.Body, &cc)
	if cc.Model != "ibm/granite-3-3-8b-instruct" {
		t.Errorf("model %q, want the deployment's model", cc.Model)
	}
	_, err = w.ChatCompletion(context.Background(), &provider.Request{
		Body: []byte(`{"model":"deployment/nope","messages":[{"role":"user","content":"Hi"}]}`)})
	var oe *openai.Error
	if !errors.As(err, &oe) || oe.Status != http.StatusNotFound || oe.Code != "deployment_not_found" {
		t.Errorf("unknown deployment: %v, want 404 deployment_not_found", err)
	}
}

func TestEmbeddings(t *testing.T) {
	f := startFake(t, watsonxfake.Options{})
	w := newProvider(t, f)
	ctx := context.Background()
	const model = "ibm/slate-125m-english-rtrvr"
	req := func(body string) *provider.Request {
		return &provider.Request{Meta: provider.Meta{Model: model}, Body: []byte(body)}
	}
	resp, err := w.Embeddings(ctx, req(`{"model":"x","input":["one two","three"]}`))
	if err != nil {
		t.Fatal(err)
	}
	var er openai.EmbeddingsResponse
	if err := json.Unmarshal(resp.Body, &er); err != nil {
		t.Fatal(err)
	}
	if er.Object != "list" || er.Model != model || len(er.Data) != 2 || er.Usage.PromptTokens != 5 || er.Usage.TotalTokens != 5 {
		t.Fatalf("response %s", resp.Body)
	}
	var vec []float64
	_ = json.Unmarshal(er.Data[1].Embedding, &vec)
	if er.Data[1].Index != 1 || len(vec) != 8 || vec[0] != watsonxfake.Vector("three")[0] {
		t.Errorf("second vector %v", vec)
	}
	var sent struct {
		Inputs    []string `json:"inputs"`
		ModelID   string   `json:"model_id"`
		ProjectID string   `json:"project_id"`
	}
	_ = json.Unmarshal(f.LastRequest().Body, &sent)
	if len(sent.Inputs) != 2 || sent.ModelID != model || sent.ProjectID != f.ProjectID() {
		t.Errorf("upstream body %s", f.LastRequest().Body)
	}

	resp, err = w.Embeddings(ctx, req(`{"model":"x","input":"one","encoding_format":"base64"}`))
	if err != nil {
		t.Fatal(err)
	}
	er = openai.EmbeddingsResponse{}
	_ = json.Unmarshal(resp.Body, &er)
	var b64 string
	_ = json.Unmarshal(er.Data[0].Embedding, &b64)
	raw, _ := base64.StdEncoding.DecodeString(b64)
	want := watsonxfake.Vector("one")
	if len(raw) != 4*len(want) || math.Abs(float64(math.Float32frombits(binary.LittleEndian.Uint32(raw)))-want[0]) > 1e-6 {
		t.Errorf("base64 embedding %q does not decode to %v", b64, want)
	}

	for _, bad := range []struct{ body, param string }{
		{`{"model":"x","input":[[1,2,3]]}`, "input"},
		{`{"model":"x","input":"a","dimensions":256}`, "dimensions"},
		{`{"model":"x","input":[]}`, "input"},
		{`{"model":"x","input":"a","encoding_format":"int8"}`, "encoding_format"},
	} {
		_, err := w.Embeddings(ctx, req(bad.body))
		var oe *openai.Error
		if !errors.As(err, &oe) || oe.Status != 400 || oe.Param != bad.param {
			t.Errorf("%s: %v, want 400 about %s", bad.body, err, bad.param)
		}
	}
}

func TestListModelsPages(t *testing.T) {
	f := startFake(t, watsonxfake.Options{})
	w := newProvider(t, f)
	old := modelsPageSize
	modelsPageSize = 3
	t.Cleanup(func() { modelsPageSize = old })
	models, err := w.ListModels(context.Background(), provider.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if len(models) != len(watsonxfake.DefaultModels) {
		t.Fatalf("models %+v, want all %d", models, len(watsonxfake.DefaultModels))
	}
	for i, m := range models {
		if m.ID != watsonxfake.DefaultModels[i].ID || m.Object != "model" || m.OwnedBy == "" {
			t.Errorf("model %d = %+v", i, m)
		}
	}
	pages := 0
	for _, r := range f.Requests() {
		if r.Path == "/ml/v1/foundation_model_specs" {
			pages++
			if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
				t.Errorf("model list without a token")
			}
		}
	}
	if pages != 2 {
		t.Errorf("%d pages fetched, want 2", pages)
	}
}

func TestStreamIdleTimeout(t *testing.T) {
	f := startFake(t, watsonxfake.Options{})
	w := newProvider(t, f)
	old := idleTimeout
	idleTimeout = 150 * time.Millisecond
	t.Cleanup(func() { idleTimeout = old })
	f.SetScenario(watsonxfake.Scenario{Text: "slow answer", EventDelay: 2 * time.Second})
	start := time.Now()
	err := calls[1].do(context.Background(), w)
	var oe *openai.Error
	if !errors.As(err, &oe) || oe.Code != "stream_interrupted" {
		t.Fatalf("error %v, want stream_interrupted", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("a stalled stream took %s to end", d)
	}
}

func TestPassthrough(t *testing.T) {
	f := startFake(t, watsonxfake.Options{})
	w := newProvider(t, f)
	body := `{"model_id":"ibm/granite-3-3-8b-instruct","project_id":"` + f.ProjectID() + `","messages":[{"role":"user","content":"Hi"}]}`
	do := func() *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, "/ml/v1/text/chat", strings.NewReader(body))
		r.Header.Set("Authorization", "Bearer client-key")
		r.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		w.Passthrough(rec, r)
		return rec
	}
	rec := do()
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"model_version"`) {
		t.Fatalf("passthrough %d %s", rec.Code, rec.Body)
	}
	up := f.LastRequest()
	if up.RawQuery != "version="+defaultVersion || up.Header.Get("Authorization") == "Bearer client-key" || string(up.Body) != body {
		t.Errorf("upstream %s?%s auth %q body %s", up.Path, up.RawQuery, up.Header.Get("Authorization"), up.Body)
	}

	// Streams pass through as they are, and an expired token is renewed.
	f.ExpireTokens()
	r := httptest.NewRequest(http.MethodPost, "/ml/v1/text/chat_stream?version=2024-05-31", strings.NewReader(body))
	rec = httptest.NewRecorder()
	w.Passthrough(rec, r)
	out, _ := io.ReadAll(rec.Body)
	if rec.Code != 200 || !strings.Contains(string(out), "event: message") || strings.Contains(string(out), "[DONE]") {
		t.Errorf("stream passthrough %d %s", rec.Code, out)
	}
	if f.LastRequest().RawQuery != "version=2024-05-31" || f.ExpiredRefusals() != 1 {
		t.Errorf("query %q, expired refusals %d", f.LastRequest().RawQuery, f.ExpiredRefusals())
	}

	// Native errors keep their native shape.
	f.FailNext(1, watsonxfake.Failure{Status: 429, RetryAfter: "3"})
	rec = do()
	if rec.Code != 429 || rec.Header().Get("Retry-After") != "3" || !strings.Contains(rec.Body.String(), `"rate_limit_exceeded"`) {
		t.Errorf("native error %d %v %s", rec.Code, rec.Header(), rec.Body)
	}
}

// TestReconfigureKeepsToken: a new configuration with the same key keeps
// the cached token; a new key exchanges again.
func TestReconfigureKeepsToken(t *testing.T) {
	f := startFake(t, watsonxfake.Options{})
	w := newProvider(t, f)
	ctx := context.Background()
	if err := calls[0].do(ctx, w); err != nil {
		t.Fatal(err)
	}
	if err := w.Configure(ctx, fakeConfig(f, `,"timeout":"30s"`)); err != nil {
		t.Fatal(err)
	}
	if err := calls[0].do(ctx, w); err != nil {
		t.Fatal(err)
	}
	if f.Exchanges() != 1 {
		t.Errorf("exchanges %d after a reconfiguration with the same key, want 1", f.Exchanges())
	}
	cfg := fakeConfig(f, "")
	cfg.Credentials["api_key"] = "rotated-key"
	if err := w.Configure(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	err := calls[0].do(ctx, w)
	var oe *openai.Error
	if !errors.As(err, &oe) || oe.Status != http.StatusUnauthorized {
		t.Errorf("a rotated (unknown) key kept the old token: %v", err)
	}
}
