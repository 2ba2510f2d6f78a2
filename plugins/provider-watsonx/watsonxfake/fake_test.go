package watsonxfake

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// token exchanges the fake's key for a token.
func token(t *testing.T, srv *httptest.Server, key string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(srv.URL+"/identity/token", "application/x-www-form-urlencoded",
		strings.NewReader(url.Values{"grant_type": {"urn:ibm:params:oauth:grant-type:apikey"}, "apikey": {key}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

func call(t *testing.T, srv *httptest.Server, path, tok, body string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(body))
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func errorCode(t *testing.T, body string) string {
	t.Helper()
	var eb struct {
		Errors []struct {
			Code string `json:"code"`
		} `json:"errors"`
		StatusCode int `json:"status_code"`
	}
	if err := json.Unmarshal([]byte(body), &eb); err != nil || len(eb.Errors) == 0 || eb.StatusCode == 0 {
		t.Fatalf("not a watsonx.ai error body: %s", body)
	}
	return eb.Errors[0].Code
}

const chatPath = "/ml/v1/text/chat?version=2024-05-31"

func TestIAMAndTokens(t *testing.T) {
	f := New(Options{TokenTTL: 1500 * time.Millisecond})
	srv := httptest.NewServer(f.Handler())
	defer srv.Close()

	status, body := token(t, srv, "wrong")
	if status != 400 || body["errorCode"] != "BXNIM0415E" {
		t.Fatalf("wrong key: %d %v", status, body)
	}
	status, body = token(t, srv, DefaultAPIKey)
	if status != 200 || body["token_type"] != "Bearer" || body["expires_in"] != float64(2) || body["expiration"] == nil {
		t.Fatalf("token: %d %v", status, body)
	}
	tok := body["access_token"].(string)
	chat := `{"model_id":"m","project_id":"p","messages":[{"role":"user","content":"hi"}]}`

	for _, tc := range []struct{ name, tok, code string }{
		{"no token", "", "authorization_rejected"},
		{"foreign token", "eyJ.not-issued", "authentication_token_not_valid"},
	} {
		if status, _, b := call(t, srv, chatPath, tc.tok, chat); status != 401 || errorCode(t, b) != tc.code {
			t.Errorf("%s: %d %s", tc.name, status, b)
		}
	}
	if status, _, b := call(t, srv, chatPath, tok, chat); status != 200 {
		t.Fatalf("live token: %d %s", status, b)
	}
	time.Sleep(1600 * time.Millisecond)
	if status, _, b := call(t, srv, chatPath, tok, chat); status != 401 || errorCode(t, b) != "authentication_token_expired" {
		t.Errorf("expired token: %d %s", status, b)
	}
	if f.ExpiredRefusals() != 1 || f.Exchanges() != 1 {
		t.Errorf("refusals %d exchanges %d", f.ExpiredRefusals(), f.Exchanges())
	}
}

func TestChatValidation(t *testing.T) {
	f := New(Options{ProjectID: "p1"})
	srv := httptest.NewServer(f.Handler())
	defer srv.Close()
	_, body := token(t, srv, DefaultAPIKey)
	tok := body["access_token"].(string)
	msgs := `"messages":[{"role":"user","content":"hi"}]`
	cases := []struct {
		name, path, body string
		status           int
	}{
		{"ok", chatPath, `{"model_id":"m","project_id":"p1",` + msgs + `}`, 200},
		{"no version", "/ml/v1/text/chat", `{"model_id":"m","project_id":"p1",` + msgs + `}`, 400},
		{"no model", chatPath, `{"project_id":"p1",` + msgs + `}`, 400},
		{"no scope", chatPath, `{"model_id":"m",` + msgs + `}`, 400},
		{"both scopes", chatPath, `{"model_id":"m","project_id":"p1","space_id":"s",` + msgs + `}`, 400},
		{"other project", chatPath, `{"model_id":"m","project_id":"p2",` + msgs + `}`, 400},
		{"openai model field", chatPath, `{"model":"m","model_id":"m","project_id":"p1",` + msgs + `}`, 400},
		{"string tool_choice", chatPath, `{"model_id":"m","project_id":"p1","tool_choice":"auto",` + msgs + `}`, 400},
		{"bad tool_choice_option", chatPath, `{"model_id":"m","project_id":"p1","tool_choice_option":"any",` + msgs + `}`, 400},
		{"developer role", chatPath, `{"model_id":"m","project_id":"p1","messages":[{"role":"developer","content":"x"}]}`, 400},
		{"orphan tool result", chatPath, `{"model_id":"m","project_id":"p1","messages":[{"role":"user","content":"x"},{"role":"tool","tool_call_id":"c1","content":"r"}]}`, 400},
		{"object arguments", chatPath, `{"model_id":"m","project_id":"p1","messages":[{"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":{}}}]}]}`, 400},
		{"file part", chatPath, `{"model_id":"m","project_id":"p1","messages":[{"role":"user","content":[{"type":"file","file":{}}]}]}`, 400},
		{"deployment with model_id", "/ml/v1/deployments/d1/text/chat?version=2024-05-31", `{"model_id":"m",` + msgs + `}`, 400},
		{"deployment", "/ml/v1/deployments/d1/text/chat?version=2024-05-31", `{` + msgs + `}`, 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, _, b := call(t, srv, tc.path, tok, tc.body)
			if status != tc.status {
				t.Errorf("%d %s, want %d", status, b, tc.status)
			}
		})
	}
}

func TestStreamShape(t *testing.T) {
	f := New(Options{})
	srv := httptest.NewServer(f.Handler())
	defer srv.Close()
	_, body := token(t, srv, DefaultAPIKey)
	tok := body["access_token"].(string)
	f.SetScenario(Scenario{Text: "Hello there", ChunkSize: 4, ToolCalls: []ToolCall{{ID: "c1", Name: "f", Arguments: `{"a":1}`}}, FinishReason: "stop"})
	status, hdr, b := call(t, srv, "/ml/v1/text/chat_stream?version=2024-05-31", tok, `{"model_id":"m","project_id":"p","messages":[{"role":"user","content":"hi"}]}`)
	if status != 200 || hdr.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("%d %v", status, hdr)
	}
	sc := bufio.NewScanner(strings.NewReader(b))
	var ids, events, datas int
	var last string
	for sc.Scan() {
		switch line := sc.Text(); {
		case strings.HasPrefix(line, "id: "):
			ids++
		case line == "event: message":
			events++
		case strings.HasPrefix(line, "data: "):
			datas++
			last = strings.TrimPrefix(line, "data: ")
		}
	}
	if ids != datas || events != datas || datas < 6 || strings.Contains(b, "[DONE]") {
		t.Errorf("ids %d events %d data %d: %s", ids, events, datas, b)
	}
	if !strings.Contains(last, `"finish_reason":"stop"`) || !strings.Contains(last, `"usage"`) {
		t.Errorf("last event %s", last)
	}

	f.FailNext(1, Failure{Status: 429, RetryAfter: "4"})
	status, hdr, b = call(t, srv, chatPath, tok, `{"model_id":"m","project_id":"p","messages":[{"role":"user","content":"hi"}]}`)
	if status != 429 || hdr.Get("Retry-After") != "4" || errorCode(t, b) != "rate_limit_exceeded" {
		t.Errorf("forced 429: %d %v %s", status, hdr, b)
	}
}
