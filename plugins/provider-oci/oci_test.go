package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/plugins/provider-oci/ocifake"
	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
	"github.com/llmproxy/llmproxy/sdk/schema"
	"github.com/llmproxy/llmproxy/sdk/sdktest"
	"github.com/llmproxy/llmproxy/sdk/sdktest/golden"
)

func TestConformance(t *testing.T) {
	for _, model := range []string{genericModel, cohereModel} {
		t.Run(model, func(t *testing.T) {
			f := startFake(t)
			f.SetScenario(ocifake.Scenario{Text: "Hello, conformance suite!"})
			sdktest.RunProvider(t, sdktest.ProviderSuite{
				Provider:       &OCI{},
				Config:         fakeConfig(f, ""),
				Model:          model,
				Deterministic:  true,
				EmbeddingModel: "cohere.embed-english-v3.0",
			})
		})
	}
}

// streamOnce runs one streamed request and returns its chunks, error and
// duration.
func streamOnce(t *testing.T, o *OCI, body string) (chunks, error, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var got chunks
	start := time.Now()
	err := o.ChatCompletionStream(ctx, &provider.Request{Body: []byte(body)}, &got)
	return got, err, time.Since(start)
}

// TestStreamHeldOpenFinishes: OCI may keep the connection open after the
// last event; the stream must end on the finish (and usage) event, not
// wait for EOF.
func TestStreamHeldOpenFinishes(t *testing.T) {
	f := startFake(t)
	o := newProvider(t, f, `,"stream_usage_wait":"300ms"`)
	cases := []struct {
		name, model string
		usage       bool
		sc          ocifake.Scenario
		wantUsage   int
	}{
		{"generic", genericModel, false, ocifake.Scenario{Text: "Held open.", KeepOpen: true}, 0},
		{"generic_with_usage", genericModel, true, ocifake.Scenario{Text: "Held open.", KeepOpen: true, SingleNewline: true}, 21},
		{"generic_usage_never_comes", genericModel, true, ocifake.Scenario{Text: "Held open.", KeepOpen: true, OmitUsage: true}, 0},
		{"cohere", cohereModel, false, ocifake.Scenario{Text: "Held open.", KeepOpen: true}, 0},
		{"cohere_with_usage", cohereModel, true, ocifake.Scenario{Text: "Held open.", KeepOpen: true, SingleNewline: true, SplitWrites: true}, 21},
		{"cohere_tools", cohereModel, true, ocifake.Scenario{ToolCalls: []ocifake.ToolCall{{Name: "get_weather", Arguments: `{"city":"Paris"}`}}, KeepOpen: true}, 21},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f.SetScenario(tc.sc)
			extra := ""
			if tc.usage {
				extra = `,"stream_options":{"include_usage":true}`
			}
			got, err, took := streamOnce(t, o, body(tc.model, `"stream":true,`+hello+extra))
			if err != nil {
				t.Fatalf("stream held open ended with %v after %v", err, took)
			}
			var acc openai.Accumulator
			for _, c := range got {
				if err := acc.Add(c); err != nil {
					t.Fatal(err)
				}
			}
			cc := acc.Completion()
			if len(cc.Choices) != 1 || cc.Choices[0].FinishReason == "" {
				t.Fatalf("no finish: %+v", cc)
			}
			if tc.usage != (acc.UsageChunks == 1) {
				t.Errorf("usage chunks = %d with include_usage %v", acc.UsageChunks, tc.usage)
			}
			if tc.usage && cc.Usage.TotalTokens != tc.wantUsage {
				t.Errorf("usage total = %d, want %d", cc.Usage.TotalTokens, tc.wantUsage)
			}
			// The fake holds the connection until the client goes away, so
			// a plugin waiting for EOF would only end at the 20s deadline,
			// with an error.
			t.Logf("ended after %v", took)
		})
	}
}

// TestWrongPrivateKey: a key the tenancy does not know is refused by the
// fake's signature check, and the plugin reports 401 without the key.
func TestWrongPrivateKey(t *testing.T) {
	f := startFake(t)
	other, err := ocifake.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	cfg := fakeConfig(f, "")
	cfg.Credentials["private_key"] = other.PrivatePEM
	o := &OCI{}
	if err := o.Configure(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	check := func(err error) {
		t.Helper()
		var oe *openai.Error
		if !errors.As(err, &oe) || oe.Status != http.StatusUnauthorized || oe.Type != openai.TypeAuthentication {
			t.Fatalf("want a 401 authentication_error, got %v", err)
		}
		body := string(oe.JSON())
		for _, secret := range []string{other.PrivatePEM[40:80], f.Key().PrivatePEM[40:80], "PRIVATE KEY"} {
			if strings.Contains(body, secret) || strings.Contains(oe.Error(), secret) {
				t.Errorf("error leaks key material: %s", body)
			}
		}
	}
	_, err = o.ChatCompletion(context.Background(), &provider.Request{Body: []byte(body(genericModel, hello))})
	check(err)
	if got := f.LastRequest().Header; got.Get("Authorization") == "" {
		t.Fatal("no signed request reached the fake")
	}
	var sink chunks
	check(o.ChatCompletionStream(context.Background(), &provider.Request{Body: []byte(body(cohereModel, `"stream":true,`+hello))}, &sink))
	_, err = o.Embeddings(context.Background(), &provider.Request{Body: []byte(`{"model":"cohere.embed-english-v3.0","input":"x"}`)})
	check(err)
	for _, r := range f.Requests() {
		if r.Status != http.StatusUnauthorized {
			t.Errorf("fake answered %d to a request signed with the wrong key", r.Status)
		}
	}
	if len(sink) != 0 {
		t.Errorf("stream sent %d chunks before failing", len(sink))
	}
}

func TestConfigure(t *testing.T) {
	f := startFake(t)
	good := fakeConfig(f, "")
	cases := []struct {
		name  string
		json  string
		creds map[string]string
		path  string
	}{
		{"no compartment", `{"region":"us-chicago-1"}`, good.Credentials, "compartment_id"},
		{"bad auth", `{"region":"r","compartment_id":"c","auth":"password"}`, good.Credentials, "auth"},
		{"no region or endpoint", `{"compartment_id":"c"}`, good.Credentials, "region"},
		{"bad endpoint", `{"compartment_id":"c","endpoint":"ftp://x"}`, good.Credentials, "endpoint"},
		{"bad timeout", `{"compartment_id":"c","region":"r","timeout":"soon"}`, good.Credentials, "timeout"},
		{"bad max tokens", `{"compartment_id":"c","region":"r","default_max_tokens":0.5}`, good.Credentials, "default_max_tokens"},
		{"bad dedicated format", `{"compartment_id":"c","region":"r","dedicated_api_format":{"ocid1.generativeaiendpoint.x":"COHEREV9"}}`, good.Credentials, "dedicated_api_format"},
		{"missing fingerprint", `{"compartment_id":"c","region":"r"}`, map[string]string{"tenancy_ocid": "t", "user_ocid": "u", "private_key": good.Credentials["private_key"]}, "credentials.fingerprint"},
		{"bad pem", `{"compartment_id":"c","region":"r"}`, map[string]string{"tenancy_ocid": "t", "user_ocid": "u", "fingerprint": "f", "private_key": "-----BEGIN RSA PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbA==\n-----END RSA PRIVATE KEY-----\n"}, "credentials.private_key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := (&OCI{}).Configure(context.Background(), &provider.Config{Instance: "x", JSON: []byte(tc.json), Credentials: tc.creds})
			var diags schema.Diagnostics
			if !errors.As(err, &diags) {
				t.Fatalf("want diagnostics, got %v", err)
			}
			found := false
			for _, d := range diags {
				found = found || strings.Join(d.Path, ".") == tc.path
			}
			if !found {
				t.Errorf("diagnostics %v do not point at %s", diags, tc.path)
			}
			if strings.Contains(err.Error(), "c2VjcmV0LWtleS1tYXRlcmlhbA") {
				t.Errorf("diagnostics leak the key: %v", err)
			}
		})
	}
	t.Run("default endpoints", func(t *testing.T) {
		s, err := parseConfig(&provider.Config{JSON: []byte(`{"compartment_id":"c","region":"eu-frankfurt-1"}`), Credentials: good.Credentials})
		if err != nil {
			t.Fatal(err)
		}
		if s.endpoint.String() != "https://inference.generativeai.eu-frankfurt-1.oci.oraclecloud.com" ||
			s.management.String() != "https://generativeai.eu-frankfurt-1.oci.oraclecloud.com" {
			t.Errorf("endpoints %s %s", s.endpoint, s.management)
		}
	})
}

// TestConfigFileAuth signs with a key named by an OCI CLI config file.
func TestConfigFileAuth(t *testing.T) {
	f := startFake(t)
	dir := t.TempDir()
	keyPath := filepath.Join(dir, "key.pem")
	if err := os.WriteFile(keyPath, []byte(f.Key().PrivatePEM), 0o600); err != nil {
		t.Fatal(err)
	}
	c := f.Credentials()
	conf := "[DEFAULT]\nuser=ocid1.user.oc1..other\n\n[LLM]\nuser=" + c["user_ocid"] + "\nfingerprint=" + c["fingerprint"] +
		"\ntenancy=" + c["tenancy_ocid"] + "\nregion=us-chicago-1\nkey_file=" + keyPath + "\n"
	confPath := filepath.Join(dir, "config")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	o := &OCI{}
	err := o.Configure(context.Background(), &provider.Config{Instance: "x",
		JSON: []byte(`{"auth":"config_file","config_file":"` + confPath + `","profile":"LLM","endpoint":"` + f.URL() + `","compartment_id":"` + f.Compartment() + `"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.ChatCompletion(context.Background(), &provider.Request{Body: []byte(body(genericModel, hello))}); err != nil {
		t.Fatalf("chat signed from the config file: %v", err)
	}
}

func TestRequestTraps(t *testing.T) {
	s := &settings{compartmentID: "c", maxTokens: 1234, dedicated: map[string]string{}}
	cases := []struct {
		name, body string
		want       []string
		absent     []string
	}{
		{"generic default maxTokens", body(genericModel, hello), []string{`"maxTokens":1234`}, []string{"maxCompletionTokens"}},
		{"generic client max_tokens", body(genericModel, hello+`,"max_tokens":99`), []string{`"maxTokens":99`}, nil},
		{"openai maxCompletionTokens", body("openai.gpt-oss-120b", hello+`,"max_tokens":99`), []string{`"maxCompletionTokens":99`}, []string{`"maxTokens"`}},
		{"openai default", body("openai.gpt-4.1", hello), []string{`"maxCompletionTokens":1234`}, []string{`"maxTokens"`}},
		{"cohere default maxTokens", body(cohereModel, hello), []string{`"maxTokens":1234`, `"apiFormat":"COHERE"`}, nil},
		{"strict is isStrict", body(genericModel, hello+`,"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object"},"strict":true}}`),
			[]string{`"isStrict":true`, `"type":"JSON_SCHEMA"`}, []string{`"strict"`}},
		{"tool choice object", body(genericModel, hello+`,`+weatherTools+`,"tool_choice":"none"`), []string{`"toolChoice":{"type":"NONE"}`}, nil},
		{"dedicated", body("ocid1.generativeaiendpoint.oc1.x", hello), []string{`"servingType":"DEDICATED","endpointId":"ocid1.generativeaiendpoint.oc1.x"`, `"apiFormat":"GENERIC"`}, []string{"modelId"}},
		{"on demand", body(genericModel, hello), []string{`"servingType":"ON_DEMAND","modelId":"` + genericModel + `"`}, nil},
		{"n generic", body(genericModel, hello+`,"n":2`), []string{`"numGenerations":2`}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := &provider.Request{Body: []byte(tc.body)}
			chat, err := req.Chat()
			if err != nil {
				t.Fatal(err)
			}
			tr, err := translateRequest(chat, req, s, false)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(tr.body), w) {
					t.Errorf("upstream body lacks %s:\n%s", w, tr.body)
				}
			}
			for _, a := range tc.absent {
				if strings.Contains(string(tr.body), a) {
					t.Errorf("upstream body has %s:\n%s", a, tr.body)
				}
			}
		})
	}
}

func TestCohereRefusals(t *testing.T) {
	s := &settings{compartmentID: "c", maxTokens: 100, dedicated: map[string]string{}}
	cases := []struct{ name, fields, param, code string }{
		{"tool_choice none", hello + `,` + weatherTools + `,"tool_choice":"none"`, "tool_choice", "unsupported_parameter"},
		{"tool_choice required", hello + `,` + weatherTools + `,"tool_choice":"required"`, "tool_choice", "unsupported_parameter"},
		{"tool_choice function", hello + `,` + weatherTools + `,"tool_choice":{"type":"function","function":{"name":"get_weather"}}`, "tool_choice", "unsupported_parameter"},
		{"n", hello + `,"n":3`, "n", "unsupported_parameter"},
		{"logit_bias", hello + `,"logit_bias":{"42":10}`, "logit_bias", "unsupported_parameter"},
		{"image", `"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"` + pngDataURL + `"}}]}]`, "messages[0].content[0].type", "unsupported_parameter"},
		{"assistant last", `"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"}]`, "messages", ""},
		{"unknown tool_call_id", `"messages":[{"role":"user","content":"a"},{"role":"tool","tool_call_id":"nope","content":"x"}]`, "messages[1].tool_call_id", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := &provider.Request{Body: []byte(body(cohereModel, tc.fields))}
			chat, err := req.Chat()
			if err != nil {
				t.Fatal(err)
			}
			_, err = translateRequest(chat, req, s, false)
			var oe *openai.Error
			if !errors.As(err, &oe) || oe.Status != 400 || oe.Param != tc.param || oe.Code != tc.code {
				t.Fatalf("want 400 param %q code %q, got %#v", tc.param, tc.code, err)
			}
		})
	}
	// "auto" is what Cohere does anyway: accepted.
	req := &provider.Request{Body: []byte(body(cohereModel, hello+`,`+weatherTools+`,"tool_choice":"auto","n":1`))}
	chat, _ := req.Chat()
	if _, err := translateRequest(chat, req, s, false); err != nil {
		t.Errorf("tool_choice auto refused: %v", err)
	}
}

// TestStreamFragments drives the stream translator with hand-written
// upstream bodies.
func TestStreamFragments(t *testing.T) {
	ev := func(s string) string { return "data: " + s + "\n" }
	cases := []struct {
		name, format, body string
		choices            int
		want               string // folded tool calls or content
		wantErr            bool
	}{
		{"fragments without index, second call by name", formatGeneric,
			ev(`{"index":0,"message":{"role":"ASSISTANT","toolCalls":[{"id":"a","type":"FUNCTION","name":"f","arguments":""}]}}`) +
				ev(`{"index":0,"message":{"role":"ASSISTANT","toolCalls":[{"arguments":"{\"x\":"}]}}`) +
				ev(`{"index":0,"message":{"role":"ASSISTANT","toolCalls":[{"arguments":"1}"}]}}`) +
				ev(`{"index":0,"message":{"role":"ASSISTANT","toolCalls":[{"type":"FUNCTION","name":"g","arguments":"{}"}]}}`) +
				ev(`{"index":0,"message":{"role":"ASSISTANT"},"finishReason":"stop"}`),
			1, `a:f:{"x":1} call_*:g:{} finish:tool_calls`, false},
		{"repeated id continues the call", formatGeneric,
			ev(`{"message":{"toolCalls":[{"id":"a","name":"f","arguments":"{\"x\""}]}}`) +
				ev(`{"message":{"toolCalls":[{"id":"a","name":"f","arguments":":2}"}]}}`) +
				ev(`{"finishReason":"tool_calls"}`),
			1, `a:f:{"x":2} finish:tool_calls`, false},
		{"arguments before the name", formatGeneric,
			ev(`{"message":{"toolCalls":[{"id":"a","arguments":"{\"y\""}]}}`) +
				ev(`{"message":{"toolCalls":[{"name":"f","arguments":":3}"}]}}`) +
				ev(`{"finishReason":"tool_calls"}`),
			1, `a:f:{"y":3} finish:tool_calls`, false},
		{"never named", formatGeneric,
			ev(`{"message":{"toolCalls":[{"arguments":"{}"}]}}`) + ev(`{"finishReason":"tool_calls"}`), 1, "", true},
		{"two choices", formatGeneric,
			ev(`{"index":1,"message":{"content":[{"type":"TEXT","text":"B"}]}}`) +
				ev(`{"index":0,"message":{"content":[{"type":"TEXT","text":"A"}]}}`) +
				ev(`{"index":0,"finishReason":"stop"}`) + ev(`{"index":1,"finishReason":"length"}`),
			2, `text0:A text1:B finish:stop finish:length`, false},
		{"choice out of range", formatGeneric, ev(`{"index":3,"message":{"content":[{"type":"TEXT","text":"B"}]}}`), 1, "", true},
		{"crlf and blank and comments", formatGeneric,
			": keepalive\r\n\r\nevent: message\r\n" + "data: {\"message\":{\"content\":[{\"type\":\"TEXT\",\"text\":\"ok\"}]}}\r\n\r\n" + "data:{\"finishReason\":\"stop\"}",
			1, `text0:ok finish:stop`, false},
		{"cohere final restates", formatCohere,
			ev(`{"apiFormat":"COHERE","text":"Hel"}`) + ev(`{"apiFormat":"COHERE","text":"lo"}`) +
				ev(`{"apiFormat":"COHERE","toolCalls":[{"name":"f","parameters":{"a":1}}]}`) +
				ev(`{"apiFormat":"COHERE","text":"Hello","toolCalls":[{"name":"f","parameters":{"a":1}},{"name":"g","parameters":{}}],"finishReason":"COMPLETE"}`),
			1, `text0:Hello call_*:f:{"a":1} call_*:g:{} finish:tool_calls`, false},
		{"cohere error finish", formatCohere,
			ev(`{"apiFormat":"COHERE","text":"Hel"}`) + ev(`{"apiFormat":"COHERE","text":"Hel","finishReason":"ERROR","errorMessage":"boom"}`), 1, "", true},
		{"cohere toxic", formatCohere,
			ev(`{"apiFormat":"COHERE","text":"no"}`) + ev(`{"apiFormat":"COHERE","text":"no","finishReason":"ERROR_TOXIC"}`), 1, `text0:no finish:content_filter`, false},
		{"error event", formatGeneric, ev(`{"code":"TooManyRequests","message":"slow down"}`), 1, "", true},
		{"cut", formatGeneric, ev(`{"message":{"content":[{"type":"TEXT","text":"par"}]}}`) + `data: {"mess`, 1, "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got chunks
			st := &streamer{w: &got, format: tc.format, meta: responseMeta{id: "r", model: "m", created: 1}, choices: tc.choices, usageWait: time.Millisecond}
			err := st.run(context.Background(), strings.NewReader(tc.body))
			if tc.wantErr {
				if err == nil {
					t.Fatal("want an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var acc openai.Accumulator
			for _, c := range got {
				if err := acc.Add(c); err != nil {
					t.Fatalf("chunk rules: %v", err)
				}
			}
			var parts []string
			cc := acc.Completion()
			for i, ch := range cc.Choices {
				if ch.Message.Content != nil {
					parts = append(parts, "text"+string(rune('0'+i))+":"+*ch.Message.Content)
				}
				for _, call := range ch.Message.ToolCalls {
					id := call.ID
					if strings.HasPrefix(id, "call_") {
						id = "call_*"
					}
					parts = append(parts, id+":"+call.Function.Name+":"+call.Function.Arguments)
				}
			}
			for _, ch := range cc.Choices {
				parts = append(parts, "finish:"+ch.FinishReason)
			}
			if g := strings.Join(parts, " "); g != tc.want {
				t.Errorf("folded %q, want %q", g, tc.want)
			}
		})
	}
}

func TestEmbeddings(t *testing.T) {
	f := startFake(t)
	o := newProvider(t, f, "")
	inputs := make([]string, 100)
	for i := range inputs {
		inputs[i] = "text number " + strings.Repeat("x", i%3+1)
	}
	b, _ := json.Marshal(map[string]any{"model": "cohere.embed-english-v3.0", "input": inputs, "dimensions": 4})
	resp, err := o.Embeddings(context.Background(), &provider.Request{Meta: provider.Meta{Model: "cohere.embed-english-v3.0"}, Body: b})
	if err != nil {
		t.Fatal(err)
	}
	var er openai.EmbeddingsResponse
	if err := json.Unmarshal(resp.Body, &er); err != nil {
		t.Fatal(err)
	}
	if len(er.Data) != 100 || er.Data[99].Index != 99 || er.Usage.PromptTokens != 300 {
		t.Fatalf("got %d vectors, last index %d, usage %+v", len(er.Data), er.Data[len(er.Data)-1].Index, er.Usage)
	}
	var v []float64
	if err := json.Unmarshal(er.Data[0].Embedding, &v); err != nil || len(v) != 4 {
		t.Errorf("vector %s", er.Data[0].Embedding)
	}
	reqs := f.Requests()
	if len(reqs) != 2 {
		t.Fatalf("want 2 embedText calls (96 + 4), got %d", len(reqs))
	}
	var d embedDetails
	if err := json.Unmarshal(reqs[0].Body, &d); err != nil || len(d.Inputs) != 96 || d.InputType != "SEARCH_DOCUMENT" || d.Truncate != "END" ||
		reqs[0].Path != embedPath || d.ServingMode.ModelID != "cohere.embed-english-v3.0" {
		t.Errorf("first embedText call: %s %s", reqs[0].Path, reqs[0].Body[:200])
	}
	for _, bad := range []string{`{"model":"m","input":[[1,2]]}`, `{"model":"m","input":"x","encoding_format":"base64"}`, `{"model":"m","input":[""]}`} {
		if _, err := o.Embeddings(context.Background(), &provider.Request{Body: []byte(bad)}); golden.Status(err) != 400 {
			t.Errorf("%s: want 400, got %v", bad, err)
		}
	}
}

func TestListModels(t *testing.T) {
	f := startFake(t)
	o := newProvider(t, f, "")
	models, err := o.ListModels(context.Background(), provider.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if len(models) != len(ocifake.DefaultModels) || models[0].ID != ocifake.DefaultModels[0] || models[0].OwnedBy != "meta" {
		t.Errorf("models %+v", models)
	}
	if r := f.LastRequest(); r.Path != modelsPath || !strings.Contains(r.RawQuery, "compartmentId=") {
		t.Errorf("model list request %s?%s", r.Path, r.RawQuery)
	}
}

// TestPassthrough: a native request is re-signed with the instance's key;
// the client's own Authorization never reaches OCI.
func TestPassthrough(t *testing.T) {
	f := startFake(t)
	o := newProvider(t, f, "")
	f.SetScenario(ocifake.Scenario{Text: "native", KeepOpen: false})
	native := `{"compartmentId":"` + f.Compartment() + `","servingMode":{"servingType":"ON_DEMAND","modelId":"` + genericModel + `"},` +
		`"chatRequest":{"apiFormat":"GENERIC","messages":[{"role":"USER","content":[{"type":"TEXT","text":"hi"}]}],"isStream":%s}}`
	for _, stream := range []string{"false", "true"} {
		r := httptest.NewRequest(http.MethodPost, "/20231130/actions/chat", strings.NewReader(strings.Replace(native, "%s", stream, 1)))
		r.Header.Set("Authorization", "Bearer sk-llmproxy-client-key")
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		o.Passthrough(w, r)
		if w.Code != 200 || !strings.Contains(w.Body.String(), "native") {
			t.Fatalf("stream=%s: %d %s", stream, w.Code, w.Body.String())
		}
		up := f.LastRequest()
		if strings.Contains(up.Header.Get("Authorization"), "sk-llmproxy") || !strings.HasPrefix(up.Header.Get("Authorization"), "Signature ") {
			t.Errorf("upstream Authorization %q", up.Header.Get("Authorization"))
		}
		if w.Header().Get("opc-request-id") == "" {
			t.Errorf("opc-request-id not relayed")
		}
	}
	r := httptest.NewRequest(http.MethodGet, "/20231130/models?compartmentId="+f.Compartment(), nil)
	w := httptest.NewRecorder()
	o.Passthrough(w, r)
	if w.Code != 200 || !strings.Contains(w.Body.String(), "items") {
		t.Errorf("GET passthrough: %d %s", w.Code, w.Body.String())
	}
	r = httptest.NewRequest(http.MethodGet, "/20231130/../x", nil)
	r.URL.RawPath = "/20231130/../x"
	w = httptest.NewRecorder()
	o.Passthrough(w, r)
	if w.Code != 400 {
		t.Errorf("dot-dot path: %d", w.Code)
	}
}

func TestNotConfigured(t *testing.T) {
	_, err := (&OCI{}).ChatCompletion(context.Background(), &provider.Request{Body: []byte(body(genericModel, hello))})
	if golden.Status(err) != 503 {
		t.Errorf("want 503, got %v", err)
	}
}

func TestEventReaderLongLine(t *testing.T) {
	er := newEventReader(io.MultiReader(strings.NewReader("data: "), strings.NewReader(strings.Repeat("a", 200<<10)), strings.NewReader("\ndata: b\n")))
	first, err := er.next()
	if err != nil || len(first) != 200<<10 {
		t.Fatalf("long event: %d %v", len(first), err)
	}
	second, err := er.next()
	if err != nil || string(second) != "b" {
		t.Fatalf("second event %q %v", second, err)
	}
	if _, err := er.next(); err != io.EOF {
		t.Fatalf("want EOF, got %v", err)
	}
}

// TestGeneratedIDs: ids made up for calls without one (COHERE, Google
// models) are the same streamed or not, and new on every turn.
func TestGeneratedIDs(t *testing.T) {
	f := startFake(t)
	o := newProvider(t, f, "")
	f.SetScenario(ocifake.Scenario{ToolCalls: []ocifake.ToolCall{{Name: "get_weather", Arguments: `{"city":"Paris"}`}}})
	first := body(cohereModel, `"messages":[{"role":"user","content":"Weather?"}],`+weatherTools)
	ids := func(b string) (string, string) {
		resp, err := o.ChatCompletion(context.Background(), &provider.Request{Body: []byte(b)})
		if err != nil {
			t.Fatal(err)
		}
		var cc openai.ChatCompletion
		_ = json.Unmarshal(resp.Body, &cc)
		var got chunks
		if err := o.ChatCompletionStream(context.Background(), &provider.Request{Body: golden.Streamed(t, []byte(b))}, &got); err != nil {
			t.Fatal(err)
		}
		var acc openai.Accumulator
		for _, c := range got {
			_ = acc.Add(c)
		}
		return cc.Choices[0].Message.ToolCalls[0].ID, acc.Completion().Choices[0].Message.ToolCalls[0].ID
	}
	u1, s1 := ids(first)
	if u1 != s1 {
		t.Errorf("unary id %s, streamed id %s", u1, s1)
	}
	second := body(cohereModel, `"messages":[{"role":"user","content":"Weather?"},{"role":"assistant","tool_calls":[{"id":"`+u1+`","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},`+
		`{"role":"tool","tool_call_id":"`+u1+`","content":"sunny"},{"role":"user","content":"And again?"}],`+weatherTools)
	u2, s2 := ids(second)
	if u2 != s2 || u2 == u1 {
		t.Errorf("second turn ids %s/%s, first turn %s", u2, s2, u1)
	}
}

// TestResourcePrincipalAuth signs with an OCI resource principal (version
// 2.2: session token and key in the environment, no network call): the
// fake trusts the session key under keyId "ST$<token>".
func TestResourcePrincipalAuth(t *testing.T) {
	f := startFake(t)
	seg := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	rpst := seg(map[string]string{"alg": "RS256", "typ": "JWT"}) + "." +
		seg(map[string]any{"exp": time.Now().Add(time.Hour).Unix(), "res_tenant": ocifake.DefaultTenancy, "res_compartment": f.Compartment(), "res_type": "datasciencenotebooksession"}) +
		"." + base64.RawURLEncoding.EncodeToString([]byte("signature"))
	t.Setenv("OCI_RESOURCE_PRINCIPAL_VERSION", "2.2")
	t.Setenv("OCI_RESOURCE_PRINCIPAL_RPST", rpst)
	t.Setenv("OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM", f.Key().PrivatePEM)
	t.Setenv("OCI_RESOURCE_PRINCIPAL_REGION", "us-chicago-1")
	o := &OCI{}
	err := o.Configure(context.Background(), &provider.Config{Instance: "rp",
		JSON: []byte(`{"auth":"resource_principal","endpoint":"` + f.URL() + `","compartment_id":"` + f.Compartment() + `"}`)})
	if err != nil {
		t.Fatal(err)
	}
	req := &provider.Request{Body: []byte(body(genericModel, hello))}
	if _, err := o.ChatCompletion(context.Background(), req); golden.Status(err) != 401 {
		t.Fatalf("before the fake trusts the session key: want 401, got %v", err)
	}
	f.TrustKey("ST$"+rpst, f.Key().Public)
	if _, err := o.ChatCompletion(context.Background(), req); err != nil {
		t.Fatalf("chat signed by the resource principal: %v", err)
	}
	if auth := f.LastRequest().Header.Get("Authorization"); !strings.Contains(auth, `keyId="ST$`+rpst+`"`) {
		t.Errorf("Authorization %q does not use the session token", auth)
	}
}

// TestInstancePrincipalAuth signs as an OCI compute instance: oci-go-sdk
// reads the identity certificate from the (fake) metadata service,
// exchanges it at the (fake) federation endpoint for a security token,
// and signs with its session key; the fake verifies every step.
func TestInstancePrincipalAuth(t *testing.T) {
	f := startFake(t)
	ip, err := ocifake.NewInstancePrincipal(f, "us-chicago-1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ip.Close() })
	for k, v := range ip.Env() {
		t.Setenv(k, v)
	}
	o := &OCI{}
	err = o.Configure(context.Background(), &provider.Config{Instance: "ip",
		JSON: []byte(`{"auth":"instance_principal","endpoint":"` + f.URL() + `","compartment_id":"` + f.Compartment() + `"}`)})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if _, err := o.ChatCompletion(context.Background(), &provider.Request{Body: []byte(body(genericModel, hello))}); err != nil {
			t.Fatalf("chat signed by the instance principal: %v", err)
		}
	}
	if auth := f.LastRequest().Header.Get("Authorization"); !strings.Contains(auth, `keyId="ST$`) {
		t.Errorf("Authorization %q does not use a security token", auth)
	}
	if n := ip.Tokens(); n != 1 {
		t.Errorf("%d security tokens issued; the token must be cached", n)
	}
	if s := o.state.Load(); s.region != "us-chicago-1" {
		t.Errorf("region %q, want the metadata service's", s.region)
	}
}

// TestInstancePrincipalTokenRefused: when the federation endpoint refuses
// the token exchange, requests fail with a 401 the host treats as an
// upstream credential failure, and the message names no secret.
func TestInstancePrincipalTokenRefused(t *testing.T) {
	f := startFake(t)
	ip, err := ocifake.NewInstancePrincipal(f, "us-chicago-1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ip.Close() })
	t.Setenv("OCI_METADATA_BASE_URL", ip.Env()["OCI_METADATA_BASE_URL"])
	// The inference fake does not know the instance's leaf key: it
	// refuses the federation request.
	t.Setenv("OCI_SDK_AUTH_CLIENT_REGION_URL", f.URL())
	o := &OCI{}
	err = o.Configure(context.Background(), &provider.Config{Instance: "ip",
		JSON: []byte(`{"auth":"instance_principal","endpoint":"` + f.URL() + `","compartment_id":"` + f.Compartment() + `"}`)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = o.ChatCompletion(context.Background(), &provider.Request{Body: []byte(body(genericModel, hello))})
	var oe *openai.Error
	if !errors.As(err, &oe) || oe.Status != http.StatusUnauthorized || strings.Contains(oe.Message, "PRIVATE KEY") {
		t.Fatalf("want a generic 401, got %v", err)
	}
	for _, r := range f.Requests() {
		if r.Path == chatPath {
			t.Errorf("a chat request went out unsigned or signed without a token")
		}
	}
}
