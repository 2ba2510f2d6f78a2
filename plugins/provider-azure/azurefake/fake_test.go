package azurefake

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

const (
	key    = "k-123"
	tenant = "tenant-1"
	client = "app-1"
	secret = "s-456"
)

func start(t *testing.T) *Server {
	t.Helper()
	s := New(Options{APIKey: key, TenantID: tenant, ClientID: client, ClientSecret: secret, TokenTTL: time.Minute}).Start()
	t.Cleanup(s.Close)
	return s
}

func post(t *testing.T, target string, header http.Header, body string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func TestDataPlaneChecks(t *testing.T) {
	s := start(t)
	chat := s.URL() + "/openai/deployments/gpt-4o/chat/completions"
	tests := []struct {
		name       string
		target     string
		header     http.Header
		wantStatus int
		wantCode   string
	}{
		{"ok", chat + "?api-version=2024-10-21", http.Header{"Api-Key": {key}}, 200, ""},
		{"missing api-version", chat, http.Header{"Api-Key": {key}}, 400, "MissingApiVersionParameter"},
		{"malformed api-version", chat + "?api-version=latest", http.Header{"Api-Key": {key}}, 404, "404"},
		{"no credential", chat + "?api-version=2024-10-21", nil, 401, "401"},
		{"wrong key", chat + "?api-version=2024-10-21", http.Header{"Api-Key": {"nope"}}, 401, "401"},
		{"both credentials", chat + "?api-version=2024-10-21", http.Header{"Api-Key": {key}, "Authorization": {"Bearer x"}}, 400, "BadRequest"},
		{"unknown token", chat + "?api-version=2024-10-21", http.Header{"Authorization": {"Bearer x"}}, 401, "401"},
		{"unknown deployment", s.URL() + "/openai/deployments/nope/chat/completions?api-version=2024-10-21", http.Header{"Api-Key": {key}}, 404, "DeploymentNotFound"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := post(t, tt.target, tt.header, `{"messages":[{"role":"user","content":"Hi"}]}`)
			var e errorBody
			json.Unmarshal(body, &e)
			if resp.StatusCode != tt.wantStatus || e.Error.Code != tt.wantCode {
				t.Errorf("got %d %q, want %d %q: %s", resp.StatusCode, e.Error.Code, tt.wantStatus, tt.wantCode, body)
			}
		})
	}
	if n := s.Requests(); n != len(tests) {
		t.Errorf("Requests() = %d, want %d", n, len(tests))
	}
}

func TestTokenEndpoint(t *testing.T) {
	s := start(t)
	form := func(tenantID, grant, id, sec, scope string) (string, string) {
		return s.URL() + "/" + tenantID + "/oauth2/v2.0/token",
			url.Values{"grant_type": {grant}, "client_id": {id}, "client_secret": {sec}, "scope": {scope}}.Encode()
	}
	tests := []struct {
		name                             string
		tenant, grant, id, secret, scope string
		wantStatus                       int
		wantError                        string
	}{
		{"ok", tenant, "client_credentials", client, secret, DefaultScope, 200, ""},
		{"unknown tenant", "other", "client_credentials", client, secret, DefaultScope, 400, "invalid_tenant"},
		{"wrong grant", tenant, "password", client, secret, DefaultScope, 400, "unsupported_grant_type"},
		{"unknown client", tenant, "client_credentials", "x", secret, DefaultScope, 400, "unauthorized_client"},
		{"wrong secret", tenant, "client_credentials", client, "x", DefaultScope, 401, "invalid_client"},
		{"wrong scope", tenant, "client_credentials", client, secret, "https://other/.default", 400, "invalid_scope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target, body := form(tt.tenant, tt.grant, tt.id, tt.secret, tt.scope)
			resp, b := post(t, target, http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, body)
			var out struct {
				Error       string `json:"error"`
				AccessToken string `json:"access_token"`
				ExpiresIn   int    `json:"expires_in"`
			}
			json.Unmarshal(b, &out)
			if resp.StatusCode != tt.wantStatus || out.Error != tt.wantError {
				t.Fatalf("got %d %q, want %d %q: %s", resp.StatusCode, out.Error, tt.wantStatus, tt.wantError, b)
			}
			if tt.wantStatus != 200 {
				return
			}
			if out.ExpiresIn != 60 || out.AccessToken == "" {
				t.Fatalf("token response: %s", b)
			}
			chat := s.URL() + "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
			if resp, b := post(t, chat, http.Header{"Authorization": {"Bearer " + out.AccessToken}}, `{"messages":[{"role":"user","content":"Hi"}]}`); resp.StatusCode != 200 {
				t.Fatalf("issued token rejected: %d %s", resp.StatusCode, b)
			}
			s.ExpireTokens()
			if resp, _ := post(t, chat, http.Header{"Authorization": {"Bearer " + out.AccessToken}}, `{"messages":[{"role":"user","content":"Hi"}]}`); resp.StatusCode != 401 {
				t.Fatalf("expired token accepted: %d", resp.StatusCode)
			}
		})
	}
	if n := s.TokenRequests(); n != len(tests) {
		t.Errorf("TokenRequests() = %d, want %d", n, len(tests))
	}
}

func TestStreamFraming(t *testing.T) {
	s := start(t)
	s.SetScenario(Scenario{Text: "a b", SplitWrites: true})
	resp, body := post(t, s.URL()+"/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21",
		http.Header{"Api-Key": {key}}, `{"messages":[{"role":"user","content":"Hi"}],"stream":true,"stream_options":{"include_usage":true}}`)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("content type %q", ct)
	}
	events := strings.Split(strings.TrimSuffix(string(body), "\n\n"), "\n\n")
	if !strings.HasPrefix(events[0], `data: {"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":`) {
		t.Errorf("first event is not the filter-only chunk: %s", events[0])
	}
	if events[len(events)-1] != "data: [DONE]" {
		t.Errorf("last event %q, want [DONE]", events[len(events)-1])
	}
	if !strings.Contains(events[len(events)-2], `"usage":{"prompt_tokens"`) {
		t.Errorf("usage chunk missing before [DONE]: %s", events[len(events)-2])
	}
	if got := s.LastRequest(); got == nil || got.Header.Get("Api-Key") != key {
		t.Errorf("last request not recorded: %+v", got)
	}
}

func TestFailNext(t *testing.T) {
	s := start(t)
	s.FailNext(1, http.StatusTooManyRequests, 2500*time.Millisecond)
	chat := s.URL() + "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
	resp, _ := post(t, chat, http.Header{"Api-Key": {key}}, `{"messages":[{"role":"user","content":"Hi"}]}`)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "3" || resp.Header.Get("retry-after-ms") != "2500" {
		t.Errorf("got %d Retry-After %q retry-after-ms %q", resp.StatusCode, resp.Header.Get("Retry-After"), resp.Header.Get("retry-after-ms"))
	}
	if resp, _ := post(t, chat, http.Header{"Api-Key": {key}}, `{"messages":[{"role":"user","content":"Hi"}]}`); resp.StatusCode != 200 {
		t.Errorf("second request: %d, want 200", resp.StatusCode)
	}
}
