package vertexfake

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func start(t *testing.T, opts Options) *Server {
	t.Helper()
	f := New(opts)
	if err := f.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// assertion builds a JWT-bearer assertion; mutate edits the claims.
func assertion(t *testing.T, f *Server, key *rsa.PrivateKey, alg string, mutate func(map[string]any)) string {
	t.Helper()
	now := time.Now().Unix()
	claims := map[string]any{"iss": DefaultClientEmail, "scope": Scope, "aud": f.TokenURL(), "iat": now, "exp": now + 3600}
	if mutate != nil {
		mutate(claims)
	}
	h, _ := json.Marshal(map[string]string{"alg": alg, "typ": "JWT", "kid": DefaultKeyID})
	c, _ := json.Marshal(claims)
	signing := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	sum := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func exchange(t *testing.T, f *Server, jwt string) (int, map[string]any) {
	t.Helper()
	form := url.Values{"grant_type": {jwtBearer}, "assertion": {jwt}}
	resp, err := http.Post(f.TokenURL(), "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func TestTokenEndpoint(t *testing.T) {
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	f := start(t, Options{Key: key, TokenTTL: time.Second})
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	tests := []struct {
		name   string
		jwt    string
		status int
	}{
		{"good", assertion(t, f, key, "RS256", nil), 200},
		{"wrong key", assertion(t, f, other, "RS256", nil), 400},
		{"wrong alg", assertion(t, f, key, "HS256", nil), 400},
		{"wrong audience", assertion(t, f, key, "RS256", func(c map[string]any) { c["aud"] = "https://oauth2.googleapis.com/token" }), 400},
		{"wrong issuer", assertion(t, f, key, "RS256", func(c map[string]any) { c["iss"] = "x@y" }), 400},
		{"no scope", assertion(t, f, key, "RS256", func(c map[string]any) { c["scope"] = "email" }), 400},
		{"expired", assertion(t, f, key, "RS256", func(c map[string]any) { c["iat"], c["exp"] = 1, 3601 }), 400},
		{"too long", assertion(t, f, key, "RS256", func(c map[string]any) { c["exp"] = time.Now().Unix() + 7200 }), 400},
		{"garbage", "a.b.c", 400},
	}
	for _, tt := range tests {
		status, body := exchange(t, f, tt.jwt)
		if status != tt.status {
			t.Errorf("%s: status %d %v, want %d", tt.name, status, body, tt.status)
		}
		if status == 200 && (body["token_type"] != "Bearer" || body["expires_in"] != float64(1) || !strings.HasPrefix(body["access_token"].(string), "ya29.")) {
			t.Errorf("%s: token response %v", tt.name, body)
		}
		if status == 400 && body["error"] != "invalid_grant" {
			t.Errorf("%s: error %v", tt.name, body)
		}
	}
	// Issued tokens work until they expire; others never do.
	_, body := exchange(t, f, assertion(t, f, key, "RS256", nil))
	tok := body["access_token"].(string)
	get := func(tok string) int {
		req, _ := http.NewRequest(http.MethodGet, f.URL()+"/v1beta1/publishers/google/models", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := get(tok); s != 200 {
		t.Errorf("issued token: %d", s)
	}
	if s := get("ya29.forged"); s != 401 {
		t.Errorf("forged token: %d", s)
	}
	time.Sleep(1100 * time.Millisecond)
	if s := get(tok); s != 401 {
		t.Errorf("expired token: %d", s)
	}
}

// call posts body to a model method with a fresh token.
func call(t *testing.T, f *Server, model, method, body string) (int, string) {
	t.Helper()
	_, tb := exchange(t, f, assertion(t, f, f.opts.Key, "RS256", nil))
	u := f.URL() + "/v1/projects/" + f.Project() + "/locations/" + f.Location() + "/publishers/google/models/" + model + ":" + method
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tb["access_token"].(string))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestValidation(t *testing.T) {
	f := start(t, Options{})
	user := `{"role":"user","parts":[{"text":"hi"}]}`
	tests := []struct {
		name, model, body, want string
	}{
		{"ok", "gemini-2.5-flash", `{"contents":[` + user + `]}`, ""},
		{"snake case", "gemini-2.5-flash", `{"contents":[` + user + `],"generation_config":{"max_output_tokens":5}}`, ""},
		{"unknown field", "gemini-2.5-flash", `{"contents":[` + user + `],"model":"x"}`, `Unknown name \"model\"`},
		{"no contents", "gemini-2.5-flash", `{"contents":[]}`, "at least one parts"},
		{"bad role", "gemini-2.5-flash", `{"contents":[{"role":"assistant","parts":[{"text":"x"}]}]}`, "valid role"},
		{"not alternating", "gemini-2.5-flash", `{"contents":[` + user + `,` + user + `]}`, "alternate"},
		{"refused schema keyword", "gemini-2.5-flash", `{"contents":[` + user + `],"tools":[{"functionDeclarations":[{"name":"f","parameters":{"type":"object","properties":{"a":{"type":"string"}},"additionalProperties":false}}]}]}`, `Unknown name \"additionalProperties\"`},
		{"empty object params", "gemini-2.5-flash", `{"contents":[` + user + `],"tools":[{"functionDeclarations":[{"name":"f","parameters":{"type":"object","properties":{}}}]}]}`, "non-empty"},
		{"responses do not match calls", "gemini-2.5-flash", `{"contents":[` + user + `,{"role":"model","parts":[{"functionCall":{"name":"f","args":{}}},{"functionCall":{"name":"g","args":{}}}]},{"role":"user","parts":[{"functionResponse":{"name":"f","response":{"output":"x"}}}]}]}`, "number of function response parts"},
		{"response not an object", "gemini-2.5-flash", `{"contents":[` + user + `,{"role":"model","parts":[{"functionCall":{"name":"f","args":{}}}]},{"role":"user","parts":[{"functionResponse":{"name":"f","response":"x"}}]}]}`, "expected an object"},
		{"missing signature on gemini-3", "gemini-3-pro-preview", `{"contents":[` + user + `,{"role":"model","parts":[{"functionCall":{"name":"f","args":{}}}]},{"role":"user","parts":[{"functionResponse":{"name":"f","response":{"output":"x"}}}]}]}`, "thought_signature"},
		{"function call id", "gemini-2.5-flash", `{"contents":[` + user + `,{"role":"model","parts":[{"functionCall":{"id":"call_1","name":"f","args":{}}}]},{"role":"user","parts":[{"functionResponse":{"name":"f","response":{"output":"x"}}}]}]}`, `Unknown name \"id\"`},
		{"forged signature", "gemini-2.5-flash", `{"contents":[` + user + `,{"role":"model","parts":[{"functionCall":{"name":"f","args":{}},"thoughtSignature":"AAAA"}]},{"role":"user","parts":[{"functionResponse":{"name":"f","response":{"output":"x"}}}]}]}`, "Corrupted thought signature"},
		{"bad base64", "gemini-2.5-flash", `{"contents":[{"role":"user","parts":[{"inlineData":{"mimeType":"image/png","data":"!!"}}]}]}`, "Base64"},
		{"two data fields", "gemini-2.5-flash", `{"contents":[{"role":"user","parts":[{"text":"a","fileData":{"mimeType":"image/png","fileUri":"gs://b/o.png"}}]}]}`, "exactly one"},
		{"allowed names without ANY", "gemini-2.5-flash", `{"contents":[` + user + `],"tools":[{"functionDeclarations":[{"name":"f"}]}],"toolConfig":{"functionCallingConfig":{"mode":"AUTO","allowedFunctionNames":["f"]}}}`, "only be set when mode is ANY"},
		{"schema without json", "gemini-2.5-flash", `{"contents":[` + user + `],"generationConfig":{"responseSchema":{"type":"object","properties":{"a":{"type":"string"}}}}}`, "response_mime_type"},
		{"temperature", "gemini-2.5-flash", `{"contents":[` + user + `],"generationConfig":{"temperature":2.5}}`, "supported range"},
		{"embedding model", "text-embedding-005", `{"contents":[` + user + `]}`, "Gemini cannot be accessed"},
	}
	for _, tt := range tests {
		status, body := call(t, f, tt.model, "generateContent", tt.body)
		if tt.want == "" {
			if status != 200 {
				t.Errorf("%s: %d %s", tt.name, status, body)
			}
			continue
		}
		if status != 400 || !strings.Contains(body, tt.want) || !strings.Contains(body, `"status": "INVALID_ARGUMENT"`) {
			t.Errorf("%s: %d %s, want 400 with %q", tt.name, status, body, tt.want)
		}
	}
}

func TestStreamShapes(t *testing.T) {
	f := start(t, Options{})
	f.SetScenario(Scenario{Parts: []Part{Text("Hello world"), FunctionCall("f", map[string]any{"a": 1}), FunctionCall("g", nil)}, ChunkSize: 5})
	body := `{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}`
	// Without alt=sse the stream is one JSON array.
	status, arr := call(t, f, "gemini-3-pro-preview", "streamGenerateContent", body)
	var events []map[string]any
	if status != 200 || json.Unmarshal([]byte(arr), &events) != nil || len(events) != 4 {
		t.Fatalf("array stream %d: %s", status, arr)
	}
	last := events[3]["candidates"].([]any)[0].(map[string]any)
	parts := last["content"].(map[string]any)["parts"].([]any)
	if last["finishReason"] != "STOP" || len(parts) != 2 || parts[0].(map[string]any)["thoughtSignature"] == nil || parts[1].(map[string]any)["thoughtSignature"] != nil {
		t.Errorf("last event %v: want both calls, the first signed, and the finish", last)
	}
	if _, ok := events[0]["candidates"].([]any)[0].(map[string]any)["index"]; ok {
		t.Errorf("stream candidates carry an index")
	}
	u0 := events[0]["usageMetadata"].(map[string]any)["candidatesTokenCount"].(float64)
	u3 := events[3]["usageMetadata"].(map[string]any)["candidatesTokenCount"].(float64)
	if !(u0 < u3) {
		t.Errorf("usage is not cumulative: %v then %v", u0, u3)
	}
}

func TestPredict(t *testing.T) {
	f := start(t, Options{})
	status, body := call(t, f, "text-embedding-005", "predict", `{"instances":[{"content":"a b"},{"content":"c","task_type":"RETRIEVAL_QUERY"}],"parameters":{"outputDimensionality":4}}`)
	var out struct {
		Predictions []struct {
			Embeddings struct {
				Values     []float64 `json:"values"`
				Statistics struct {
					TokenCount int `json:"token_count"`
				} `json:"statistics"`
			} `json:"embeddings"`
		} `json:"predictions"`
	}
	if status != 200 || json.Unmarshal([]byte(body), &out) != nil || len(out.Predictions) != 2 || len(out.Predictions[0].Embeddings.Values) != 4 || out.Predictions[0].Embeddings.Statistics.TokenCount != 2 {
		t.Fatalf("%d %s", status, body)
	}
	if status, body := call(t, f, "gemini-embedding-001", "predict", `{"instances":[{"content":"a"},{"content":"b"}]}`); status != 400 || !strings.Contains(body, "up to 1 instances") {
		t.Errorf("two instances on gemini-embedding-001: %d %s", status, body)
	}
	if status, _ := call(t, f, "gemini-2.5-flash", "predict", `{"instances":[{"content":"a"}]}`); status != 400 {
		t.Errorf("predict on a chat model: %d", status)
	}
}

func TestFailuresAndExpressMode(t *testing.T) {
	f := start(t, Options{APIKey: "k1"})
	f.FailNext(1, Failure{Status: 429, RetryDelay: "7s", RetryAfter: "7"})
	post := func(key string) (int, http.Header, string) {
		req, _ := http.NewRequest(http.MethodPost, f.URL()+"/v1/publishers/google/models/gemini-2.5-flash:generateContent",
			strings.NewReader(`{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}`))
		req.Header.Set("x-goog-api-key", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}
	status, h, body := post("k1")
	if status != 429 || h.Get("Retry-After") != "7" || !strings.Contains(body, `"retryDelay": "7s"`) || !strings.Contains(body, "RESOURCE_EXHAUSTED") {
		t.Errorf("forced 429: %d %v %s", status, h, body)
	}
	if status, _, _ := post("k1"); status != 200 {
		t.Errorf("express mode: %d", status)
	}
	if status, _, body := post("wrong"); status != 400 || !strings.Contains(body, "API_KEY_INVALID") {
		t.Errorf("wrong key: %d %s", status, body)
	}
	if f.Requests() != 3 || !strings.HasSuffix(f.LastRequest().Path, ":generateContent") {
		t.Errorf("recorded %d requests, last %s", f.Requests(), f.LastRequest().Path)
	}
}
