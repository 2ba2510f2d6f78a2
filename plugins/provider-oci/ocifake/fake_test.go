package ocifake

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/oracle/oci-go-sdk/v65/common"
)

// signed builds a request to f signed by oci-go-sdk with key.
func signed(t *testing.T, f *Server, key *Key, method, path, body string, edit func(*http.Request)) *http.Request {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r, err := http.NewRequest(method, f.URL()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	r.Header.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	c := f.Credentials()
	p := common.NewRawConfigurationProvider(c["tenancy_ocid"], c["user_ocid"], "us-chicago-1", c["fingerprint"], key.PrivatePEM, nil)
	if err := common.DefaultRequestSigner(p).Sign(r); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(r)
	}
	return r
}

func do(t *testing.T, r *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func start(t *testing.T) *Server {
	t.Helper()
	f := New(Options{})
	if err := f.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func chatBody(f *Server, model, inner string) string {
	return `{"compartmentId":"` + f.Compartment() + `","servingMode":{"servingType":"ON_DEMAND","modelId":"` + model + `"},"chatRequest":` + inner + `}`
}

func TestSignatureChecks(t *testing.T) {
	f := start(t)
	other, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	good := chatBody(f, "meta.llama-3.3-70b-instruct", `{"apiFormat":"GENERIC","messages":[{"role":"USER","content":[{"type":"TEXT","text":"hi"}]}],"maxTokens":10}`)
	cases := []struct {
		name   string
		key    *Key
		method string
		path   string
		body   string
		edit   func(*http.Request)
		want   int
	}{
		{"valid POST", f.Key(), "POST", "/20231130/actions/chat", good, nil, 200},
		{"valid GET", f.Key(), "GET", "/20231130/models?compartmentId=" + f.Compartment(), "", nil, 200},
		{"wrong key", other, "POST", "/20231130/actions/chat", good, nil, 401},
		{"body changed after signing", f.Key(), "POST", "/20231130/actions/chat", good, func(r *http.Request) {
			b := strings.Replace(good, "hi", "ho", 1)
			r.Body = io.NopCloser(strings.NewReader(b))
		}, 401},
		{"stale date", f.Key(), "POST", "/20231130/actions/chat", good, func(r *http.Request) {
			r.Header.Set("Date", time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat))
		}, 401},
		{"path changed after signing", f.Key(), "POST", "/20231130/actions/chat", good, func(r *http.Request) {
			r.URL.Path = "/20231130/actions/embedText"
		}, 401},
		{"no authorization", f.Key(), "POST", "/20231130/actions/chat", good, func(r *http.Request) { r.Header.Del("Authorization") }, 401},
		{"body headers unsigned", f.Key(), "POST", "/20231130/actions/chat", good, func(r *http.Request) {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), " content-length content-type x-content-sha256", "", 1))
		}, 401},
		{"unknown keyId", f.Key(), "POST", "/20231130/actions/chat", good, func(r *http.Request) {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), f.KeyID(), "ocid1.tenancy.oc1..x/ocid1.user.oc1..y/aa:bb", 1))
		}, 401},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := do(t, signed(t, f, tc.key, tc.method, tc.path, tc.body, tc.edit))
			if status != tc.want {
				t.Fatalf("status %d, want %d: %s", status, tc.want, body)
			}
			if tc.want == 401 && !strings.Contains(body, `"code":"NotAuthenticated"`) {
				t.Errorf("401 body %s", body)
			}
		})
	}
}

func TestValidation(t *testing.T) {
	f := start(t)
	cases := []struct {
		name, model, inner string
		want               int
	}{
		{"generic for cohere", "cohere.command-r-plus", `{"apiFormat":"GENERIC","messages":[{"role":"USER"}]}`, 400},
		{"cohere for meta", "meta.llama-3.3-70b-instruct", `{"apiFormat":"COHERE","message":"hi"}`, 400},
		{"openai maxTokens", "openai.gpt-oss-120b", `{"apiFormat":"GENERIC","messages":[{"role":"USER"}],"maxTokens":5}`, 400},
		{"openai maxCompletionTokens", "openai.gpt-oss-120b", `{"apiFormat":"GENERIC","messages":[{"role":"USER"}],"maxCompletionTokens":5}`, 200},
		{"unknown key", "meta.llama-3.3-70b-instruct", `{"apiFormat":"GENERIC","messages":[{"role":"USER"}],"max_tokens":5}`, 400},
		{"cohere toolChoice", "cohere.command-r-plus", `{"apiFormat":"COHERE","message":"hi","toolChoice":{"type":"AUTO"}}`, 400},
		{"strict not isStrict", "meta.llama-3.3-70b-instruct", `{"apiFormat":"GENERIC","messages":[{"role":"USER"}],"responseFormat":{"type":"JSON_SCHEMA","jsonSchema":{"name":"x","strict":true}}}`, 400},
		{"string toolChoice", "meta.llama-3.3-70b-instruct", `{"apiFormat":"GENERIC","messages":[{"role":"USER"}],"toolChoice":"auto"}`, 400},
		{"tool without id", "meta.llama-3.3-70b-instruct", `{"apiFormat":"GENERIC","messages":[{"role":"TOOL"}]}`, 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := do(t, signed(t, f, f.Key(), "POST", "/20231130/actions/chat", chatBody(f, tc.model, tc.inner), nil))
			if status != tc.want {
				t.Fatalf("status %d, want %d: %s", status, tc.want, body)
			}
		})
	}
}

func TestStreamFraming(t *testing.T) {
	f := start(t)
	f.SetScenario(Scenario{Text: "abcdefgh", ChunkSize: 4, SingleNewline: true, ToolCalls: []ToolCall{{Name: "f", Arguments: `{"a":1}`}}})
	inner := `{"apiFormat":"GENERIC","messages":[{"role":"USER","content":[{"type":"TEXT","text":"hi"}]}],"isStream":true,"streamOptions":{"isIncludeUsage":true}}`
	status, body := do(t, signed(t, f, f.Key(), "POST", "/20231130/actions/chat", chatBody(f, "google.gemini-2.5-flash", inner), nil))
	if status != 200 {
		t.Fatal(status, body)
	}
	lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
	for _, l := range lines {
		if !strings.HasPrefix(l, "data: ") || !json.Valid([]byte(strings.TrimPrefix(l, "data: "))) {
			t.Fatalf("line %q", l)
		}
	}
	if strings.Contains(body, "[DONE]") || strings.Contains(body, `"id"`) || len(lines) != 2+1+2+1+1 {
		t.Errorf("stream:\n%s", body)
	}
	if !bytes.Contains([]byte(lines[len(lines)-1]), []byte(`{"usage":`)) {
		t.Errorf("last event is not usage: %s", lines[len(lines)-1])
	}
}
