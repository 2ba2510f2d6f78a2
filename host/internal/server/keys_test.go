package server

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/llmproxy/llmproxy/host/internal/admin"
	"github.com/llmproxy/llmproxy/host/internal/auth"
	"github.com/llmproxy/llmproxy/host/internal/config"
	"github.com/llmproxy/llmproxy/host/internal/plugins"
	"github.com/llmproxy/llmproxy/host/internal/router"
	"github.com/llmproxy/llmproxy/host/internal/store"
)

// storeServer serves a host whose keys are those of testServer plus the
// keys of st (nil: no store) over an in-memory listener.
func storeServer(t *testing.T, st store.Store) *fasthttp.Client {
	t.Helper()
	keys, err := auth.New([]config.APIKey{
		{Name: "admin", Key: "sk-admin", Admin: true},
		{Name: "echo-only", Key: "sk-echo", Models: []string{"echo"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	rtr, err := router.New([]config.Route{{Model: "echo", Targets: []config.Target{{Instance: "echo"}}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	mgr := plugins.Start(&config.File{}, plugins.Options{Logger: hclog.NewNullLogger()})
	t.Cleanup(mgr.Stop)
	opts := Options{Keys: keys, Router: rtr, Plugins: mgr, Logger: hclog.NewNullLogger(), MaxBodyBytes: 1 << 16, RequestTimeout: 5 * time.Second}
	if st != nil {
		opts.StoredKeys = auth.NewStored(st)
		opts.Admin = admin.New(admin.Options{Store: st})
	}
	s := New(opts)
	ln := fasthttputil.NewInmemoryListener()
	hs := s.HTTPServer()
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Shutdown(); ln.Close() })
	return &fasthttp.Client{Dial: func(string) (net.Conn, error) { return ln.Dial() }}
}

func sqliteStore(t *testing.T) store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), store.DriverSQLite, filepath.Join(t.TempDir(), "llmproxy.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// do sends one request and returns the status and decoded JSON body.
func do(t *testing.T, c *fasthttp.Client, method, path, key, body string) (int, map[string]any) {
	t.Helper()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(method)
	req.SetRequestURI("http://llmproxy" + path)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if body != "" {
		req.SetBodyString(body)
		req.Header.SetContentType("application/json")
	}
	if err := c.DoTimeout(req, resp, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(resp.Body(), &out); err != nil {
		t.Fatalf("%s %s: body %q is not a JSON object: %v", method, path, resp.Body(), err)
	}
	return resp.StatusCode(), out
}

func errCode(body map[string]any) string {
	e, _ := body["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

func TestStoredKeyLifecycle(t *testing.T) {
	c := storeServer(t, sqliteStore(t))
	status, created := do(t, c, "POST", "/admin/v1/keys", "sk-admin",
		`{"name":"team-a","group":"research","models":["echo"],"storage_ops":["get"],"budget":{"usd":1.5},"expires_at":"2099-01-01T00:00:00Z"}`)
	if status != 201 {
		t.Fatalf("create: %d %v", status, created)
	}
	secret, _ := created["key"].(string)
	id, _ := created["id"].(string)
	if !strings.HasPrefix(secret, admin.SecretPrefix) || !strings.HasPrefix(id, "key_") || created["object"] != "api_key" ||
		created["source"] != "store" || created["prefix"] != secret[:12] || created["revoked_at"] != nil ||
		created["expires_at"] != "2099-01-01T00:00:00Z" || created["group"] != "research" {
		t.Fatalf("created %v", created)
	}
	if b, _ := created["budget"].(map[string]any); b["usd"] != 1.5 || b["period"] != "month" {
		t.Fatalf("budget %v", created["budget"])
	}

	// The new key works at once.
	if status, body := do(t, c, "GET", "/v1/models", secret, ""); status != 200 {
		t.Fatalf("use: %d %v", status, body)
	}
	// It is no admin key.
	if status, body := do(t, c, "GET", "/admin/v1/keys", secret, ""); status != 403 || errCode(body) != "admin_required" {
		t.Fatalf("non-admin on admin API: %d %v", status, body)
	}

	// Reads never show the secret.
	status, got := do(t, c, "GET", "/admin/v1/keys/"+id, "sk-admin", "")
	if status != 200 || got["key"] != nil || got["name"] != "team-a" {
		t.Fatalf("get: %d %v", status, got)
	}
	status, list := do(t, c, "GET", "/admin/v1/keys", "sk-admin", "")
	data, _ := list["data"].([]any)
	if status != 200 || list["object"] != "list" || len(data) != 3 {
		t.Fatalf("list: %d %v", status, list)
	}
	sources := map[string]string{}
	for _, d := range data {
		o := d.(map[string]any)
		if o["key"] != nil {
			t.Fatalf("list shows a secret: %v", o)
		}
		sources[o["name"].(string)] = o["source"].(string)
	}
	if sources["admin"] != "config" || sources["echo-only"] != "config" || sources["team-a"] != "store" {
		t.Fatalf("sources %v", sources)
	}
	if status, got := do(t, c, "GET", "/admin/v1/keys/config:echo-only", "sk-admin", ""); status != 200 || got["source"] != "config" {
		t.Fatalf("get config key: %d %v", status, got)
	}

	// A patch changes rights at once: a stored key made admin may
	// manage keys.
	status, patched := do(t, c, "PATCH", "/admin/v1/keys/"+id, "sk-admin", `{"admin":true,"budget":null,"group":"ops"}`)
	if status != 200 || patched["admin"] != true || patched["budget"] != nil || patched["group"] != "ops" || patched["name"] != "team-a" {
		t.Fatalf("patch: %d %v", status, patched)
	}
	if status, body := do(t, c, "GET", "/admin/v1/keys", secret, ""); status != 200 {
		t.Fatalf("stored admin key on admin API: %d %v", status, body)
	}

	// Revoke: refused on the very next request.
	status, revoked := do(t, c, "DELETE", "/admin/v1/keys/"+id, "sk-admin", "")
	if status != 200 || revoked["revoked_at"] == nil {
		t.Fatalf("revoke: %d %v", status, revoked)
	}
	if status, body := do(t, c, "GET", "/v1/models", secret, ""); status != 401 || errCode(body) != "invalid_api_key" {
		t.Fatalf("revoked key: %d %v", status, body)
	}

	// Expiry set by a patch ends a key too.
	_, second := do(t, c, "POST", "/admin/v1/keys", "sk-admin", `{"name":"team-b","models":["*"]}`)
	secret2 := second["key"].(string)
	if status, _ := do(t, c, "GET", "/v1/models", secret2, ""); status != 200 {
		t.Fatalf("second key: %d", status)
	}
	if status, body := do(t, c, "PATCH", "/admin/v1/keys/"+second["id"].(string), "sk-admin", `{"expires_at":"2020-01-01T00:00:00Z"}`); status != 200 {
		t.Fatalf("expire: %d %v", status, body)
	}
	if status, _ := do(t, c, "GET", "/v1/models", secret2, ""); status != 401 {
		t.Fatalf("expired key: %d", status)
	}
}

func TestAdminAPIErrors(t *testing.T) {
	c := storeServer(t, sqliteStore(t))
	if status, body := do(t, c, "POST", "/admin/v1/keys", "sk-admin", `{"name":"taken"}`); status != 201 {
		t.Fatalf("setup: %d %v", status, body)
	}
	tests := []struct {
		name, method, path, key, body string
		status                        int
		code, param                   string
	}{
		{"no key", "GET", "/admin/v1/keys", "", "", 401, "invalid_api_key", ""},
		{"bad key", "GET", "/admin/v1/keys", "sk-nope", "", 401, "invalid_api_key", ""},
		{"not admin", "GET", "/admin/v1/keys", "sk-echo", "", 403, "admin_required", ""},
		{"unknown path", "GET", "/admin/v1/nope", "sk-admin", "", 404, "unknown_path", ""},
		{"wrong method", "PUT", "/admin/v1/keys", "sk-admin", "", 405, "method_not_allowed", ""},
		{"wrong method on key", "POST", "/admin/v1/keys/key_1", "sk-admin", "", 405, "method_not_allowed", ""},
		{"not json", "POST", "/admin/v1/keys", "sk-admin", `{"name":`, 400, "", ""},
		{"not an object", "POST", "/admin/v1/keys", "sk-admin", `[1]`, 400, "", ""},
		{"no name", "POST", "/admin/v1/keys", "sk-admin", `{"models":["*"]}`, 400, "", "name"},
		{"empty name", "POST", "/admin/v1/keys", "sk-admin", `{"name":""}`, 400, "", "name"},
		{"control in name", "POST", "/admin/v1/keys", "sk-admin", `{"name":"a\nb"}`, 400, "", "name"},
		{"unknown field", "POST", "/admin/v1/keys", "sk-admin", `{"name":"x","key":"sk-mine"}`, 400, "", "key"},
		{"models not a list", "POST", "/admin/v1/keys", "sk-admin", `{"name":"x","models":"*"}`, 400, "", "models"},
		{"empty pattern", "POST", "/admin/v1/keys", "sk-admin", `{"name":"x","models":[""]}`, 400, "", "models"},
		{"bad storage op", "POST", "/admin/v1/keys", "sk-admin", `{"name":"x","storage_ops":["rm"]}`, 400, "", "storage_ops"},
		{"admin not bool", "POST", "/admin/v1/keys", "sk-admin", `{"name":"x","admin":"yes"}`, 400, "", "admin"},
		{"bad expiry", "POST", "/admin/v1/keys", "sk-admin", `{"name":"x","expires_at":"tomorrow"}`, 400, "", "expires_at"},
		{"past expiry", "POST", "/admin/v1/keys", "sk-admin", `{"name":"x","expires_at":"2001-01-01T00:00:00Z"}`, 400, "", "expires_at"},
		{"negative budget", "POST", "/admin/v1/keys", "sk-admin", `{"name":"x","budget":{"usd":-1}}`, 400, "", "budget"},
		{"budget without usd", "POST", "/admin/v1/keys", "sk-admin", `{"name":"x","budget":{"period":"day"}}`, 400, "", "budget"},
		{"bad period", "POST", "/admin/v1/keys", "sk-admin", `{"name":"x","budget":{"usd":1,"period":"year"}}`, 400, "", "budget"},
		{"config name", "POST", "/admin/v1/keys", "sk-admin", `{"name":"echo-only"}`, 409, "key_exists", "name"},
		{"stored name", "POST", "/admin/v1/keys", "sk-admin", `{"name":"taken"}`, 409, "key_exists", "name"},
		{"unknown id", "GET", "/admin/v1/keys/key_nope", "sk-admin", "", 404, "key_not_found", ""},
		{"unknown config id", "GET", "/admin/v1/keys/config:nope", "sk-admin", "", 404, "key_not_found", ""},
		{"patch unknown", "PATCH", "/admin/v1/keys/key_nope", "sk-admin", `{"admin":true}`, 404, "key_not_found", ""},
		{"revoke unknown", "DELETE", "/admin/v1/keys/key_nope", "sk-admin", "", 404, "key_not_found", ""},
		{"patch config key", "PATCH", "/admin/v1/keys/config:echo-only", "sk-admin", `{"admin":true}`, 403, "key_read_only", ""},
		{"revoke config key", "DELETE", "/admin/v1/keys/config:admin", "sk-admin", "", 403, "key_read_only", ""},
		{"usage bad group", "GET", "/admin/v1/usage?group_by=color", "sk-admin", "", 400, "", "group_by"},
		{"usage bad time", "GET", "/admin/v1/usage?from=yesterday", "sk-admin", "", 400, "", "from"},
		{"usage bad limit", "GET", "/admin/v1/usage?limit=0", "sk-admin", "", 400, "", "limit"},
		{"usage unknown param", "GET", "/admin/v1/usage?user=x", "sk-admin", "", 400, "", "user"},
		{"usage reversed range", "GET", "/admin/v1/usage?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z", "sk-admin", "", 400, "", "to"},
		{"usage wrong method", "POST", "/admin/v1/usage", "sk-admin", "", 405, "method_not_allowed", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := do(t, c, tt.method, tt.path, tt.key, tt.body)
			e, _ := body["error"].(map[string]any)
			if status != tt.status || e == nil || e["message"] == "" {
				t.Fatalf("got %d %v, want %d with an error", status, body, tt.status)
			}
			if tt.code != "" && errCode(body) != tt.code {
				t.Errorf("code %v, want %s", e["code"], tt.code)
			}
			if tt.param != "" && e["param"] != tt.param {
				t.Errorf("param %v, want %s", e["param"], tt.param)
			}
		})
	}
}

func TestAdminAPIWithoutStore(t *testing.T) {
	c := storeServer(t, nil)
	if status, body := do(t, c, "GET", "/admin/v1/keys", "sk-admin", ""); status != 501 || errCode(body) != "store_not_configured" {
		t.Fatalf("got %d %v", status, body)
	}
	if status, _ := do(t, c, "GET", "/admin/v1/keys", "", ""); status != 401 {
		t.Fatalf("without a key: %d", status)
	}
}

func TestStoredKeyNamedLikeConfigKey(t *testing.T) {
	st := sqliteStore(t)
	// A key stored before the config file gained a key of the same name
	// is ignored: the config file wins.
	k := &store.Key{ID: "key_x", Name: "echo-only", Digest: sha256Sum("sk-shadow"), Prefix: "sk-sha", Models: []string{"*"}, CreatedAt: time.Now()}
	if err := st.CreateKey(context.Background(), k); err != nil {
		t.Fatal(err)
	}
	c := storeServer(t, st)
	if status, _ := do(t, c, "GET", "/v1/models", "sk-shadow", ""); status != 401 {
		t.Fatalf("shadowed stored key: %d", status)
	}
}

func sha256Sum(s string) [32]byte { return sha256.Sum256([]byte(s)) }
