package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/plugins/provider-openai/openaifake"
	"github.com/llmproxy/llmproxy/test/harness"
)

// The grant tests run a host with the echo provider, an openai instance
// in front of the OpenAI fake, and two local storage instances over one
// root: "store", guarded by the access rules, and "raw", without rules,
// through which the tests place objects the rules would refuse.

// Keys of the grants host besides harness.Key (full rights, admin).
const (
	keyNothing     = "sk-g-nothing"
	keyEmptyLists  = "sk-g-empty"
	keyStorageOnly = "sk-g-storage"
	keyNoOps       = "sk-g-noops"
	keyPassOnly    = "sk-g-pass"
	keyPresignOnly = "sk-g-presign"
	keyPresignGet  = "sk-g-presign-get"
	keyPresignPut  = "sk-g-presign-put"
	keyEchoOnly    = "sk-g-echo"
)

// grantsObjectCap is max_object_bytes of "store".
const grantsObjectCap = 4096

const grantsKeys = `
api_key "nothing" {
  key = "` + keyNothing + `"
}
api_key "empty-lists" {
  key         = "` + keyEmptyLists + `"
  models      = []
  passthrough = []
  instances   = []
  storage_ops = []
}
api_key "storage-only" {
  key         = "` + keyStorageOnly + `"
  instances   = ["store"]
  storage_ops = ["*"]
}
api_key "no-ops" {
  key       = "` + keyNoOps + `"
  models    = ["*"]
  instances = ["*"]
}
api_key "pass-only" {
  key         = "` + keyPassOnly + `"
  passthrough = ["openai_prod"]
}
api_key "presign-only" {
  key         = "` + keyPresignOnly + `"
  instances   = ["store"]
  storage_ops = ["presign"]
}
api_key "presign-get" {
  key         = "` + keyPresignGet + `"
  instances   = ["store"]
  storage_ops = ["presign", "get"]
}
api_key "presign-put" {
  key         = "` + keyPresignPut + `"
  instances   = ["store"]
  storage_ops = ["presign", "put"]
}
api_key "echo-only" {
  key    = "` + keyEchoOnly + `"
  models = ["echo"]
}
`

type grantsHost struct {
	*harness.Host
	fake *openaifake.Server
}

// startGrants starts the grants host; server is extra HCL for the server
// block.
func startGrants(t *testing.T, server string) *grantsHost {
	t.Helper()
	fake := openaifake.New(openaifake.Options{})
	fake.Start()
	t.Cleanup(fake.Close)
	root := filepath.Join(t.TempDir(), "objects")
	if err := os.MkdirAll(root, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := harness.APIKeyBlock + grantsKeys + harness.EchoBlock + fmt.Sprintf(`
provider "openai_prod" {
  type = "openai"
  credential "api_key" {
    from "value" { value = %q }
  }
  config {
    base_url = "%s/v1"
  }
}
route "gpt-4o" {
  target "openai_prod" {}
}
storage "store" {
  type             = "local"
  allowed_buckets  = ["rag-docs"]
  denied_prefixes  = ["secret/"]
  max_object_bytes = %d
  presign {
    default_ttl = "5m"
    min_ttl     = "1s"
    max_ttl     = "1h"
  }
  config {
    root           = %q
    create_buckets = true
  }
}
storage "raw" {
  type = "local"
  config {
    root           = %q
    create_buckets = true
  }
}
`, openaifake.DefaultKey, fake.URL(), grantsObjectCap, root, root)
	h := harness.Start(t, cfg, harness.Options{WaitFor: []string{"echo", "openai_prod", "store", "raw"}, Server: server})
	return &grantsHost{Host: h, fake: fake}
}

// as sends a request with apiKey ("" for none).
func (g *grantsHost) as(t *testing.T, apiKey, method, path, body string, header ...string) (int, http.Header, []byte) {
	t.Helper()
	auth := ""
	if apiKey != "" {
		auth = "Bearer " + apiKey
	}
	return g.Do(t, method, path, body, append([]string{"Authorization", auth}, header...)...)
}

func chatBody(model string) string {
	return `{"model":"` + model + `","messages":[{"role":"user","content":"hi"}]}`
}

// TestGrantsFailClosed checks each right on its own: a key gets exactly
// what its lists name, an empty or missing list is nothing, storage and
// transparent mode are separate rights, and storage instances without
// storage_ops allow no operation.
func TestGrantsFailClosed(t *testing.T) {
	g := startGrants(t, "")
	const (
		chat   = "/v1/chat/completions"
		native = "/-openai/openai_prod/v1/models"
		get    = "/-local/store/get/rag-docs/grants/a.txt"
		put    = "/-local/store/put/rag-docs/grants/a.txt"
	)
	if status, _, body := g.Do(t, "PUT", put, "grants\n"); status != 200 {
		t.Fatalf("seed object: %d %s", status, body)
	}
	tests := []struct {
		name, key, method, path, body string
		status                        int
		code                          string
	}{
		{"no lists: model", keyNothing, "POST", chat, chatBody("echo"), 403, "model_not_allowed"},
		{"no lists: transparent", keyNothing, "GET", native, "", 403, "instance_not_allowed"},
		{"no lists: storage", keyNothing, "GET", get, "", 403, "instance_not_allowed"},
		{"empty lists: model", keyEmptyLists, "POST", chat, chatBody("echo"), 403, "model_not_allowed"},
		{"empty lists: transparent", keyEmptyLists, "GET", native, "", 403, "instance_not_allowed"},
		{"empty lists: storage", keyEmptyLists, "GET", get, "", 403, "instance_not_allowed"},
		{"storage right: storage", keyStorageOnly, "GET", get, "", 200, ""},
		{"storage right: not transparent", keyStorageOnly, "GET", native, "", 403, "instance_not_allowed"},
		{"storage right: not models", keyStorageOnly, "POST", chat, chatBody("echo"), 403, "model_not_allowed"},
		{"storage right: only named instances", keyStorageOnly, "GET", "/-local/raw/get/rag-docs/grants/a.txt", "", 403, "instance_not_allowed"},
		{"passthrough right: transparent", keyPassOnly, "GET", native, "", 200, ""},
		{"passthrough right: not storage", keyPassOnly, "GET", get, "", 403, "instance_not_allowed"},
		{"passthrough right: not models", keyPassOnly, "POST", chat, chatBody("gpt-4o"), 403, "model_not_allowed"},
		{"instances without ops", keyNoOps, "GET", get, "", 403, "storage_op_not_allowed"},
		{"instances without ops: models", keyNoOps, "POST", chat, chatBody("echo"), 200, ""},
		{"instances without ops: not transparent", keyNoOps, "GET", native, "", 403, "instance_not_allowed"},
		{"one model", keyEchoOnly, "POST", chat, chatBody("echo"), 200, ""},
		{"one model: not another", keyEchoOnly, "POST", chat, chatBody("gpt-4o"), 403, "model_not_allowed"},
		{"full key: transparent", harness.Key, "GET", native, "", 200, ""},
		{"full key: model", harness.Key, "POST", chat, chatBody("gpt-4o"), 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, body := g.as(t, tt.key, tt.method, tt.path, tt.body)
			if tt.status == 200 {
				if status != 200 {
					t.Fatalf("status %d, want 200: %s", status, body)
				}
				return
			}
			wantError(t, status, body, tt.status, tt.code)
		})
	}
	t.Run("no models listed", func(t *testing.T) {
		for _, key := range []string{keyNothing, keyPassOnly, keyStorageOnly} {
			status, _, body := g.as(t, key, "GET", "/v1/models", "")
			var list struct {
				Data []struct{ ID string } `json:"data"`
			}
			if status != 200 || json.Unmarshal(body, &list) != nil || len(list.Data) != 0 {
				t.Errorf("%s: /v1/models %d %s, want an empty list", key, status, body)
			}
		}
	})
}

// TestDevKeyOnlyOnLoopback starts the host with the public development
// key on a non-loopback listener: it must refuse to start and say why,
// whether the key is given in clear or as its digest.
func TestDevKeyOnlyOnLoopback(t *testing.T) {
	bin := filepath.Join(harness.BinDir(t), "llmproxy")
	port := strings.Split(harness.FreeAddr(t), ":")[1]
	digest := sha256.Sum256([]byte("sk-llmproxy-dev"))
	hashed := filepath.Join(t.TempDir(), "hashed.hcl")
	if err := os.WriteFile(hashed, []byte(`server {
  listen = "0.0.0.0:`+port+`"
}
api_key "dev" {
  key_sha256 = "`+hex.EncodeToString(digest[:])+`"
  models     = ["*"]
}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		env  []string
		ok   bool
	}{
		{"embedded default on all interfaces", nil, []string{"LLMPROXY_LISTEN=0.0.0.0:" + port}, false},
		{"embedded default with -listen", []string{"-listen", ":" + port}, nil, false},
		{"embedded default, check only", []string{"-check"}, []string{"LLMPROXY_LISTEN=0.0.0.0:" + port}, false},
		{"dev key by digest", []string{"-config", hashed}, nil, false},
		{"own key on all interfaces", []string{"-check"}, []string{"LLMPROXY_LISTEN=0.0.0.0:" + port, "LLMPROXY_API_KEY=sk-own-secret-value"}, true},
		{"embedded default on loopback", []string{"-check"}, []string{"LLMPROXY_LISTEN=127.0.0.1:" + port}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, tt.args...)
			for _, kv := range os.Environ() {
				if !strings.HasPrefix(kv, "LLMPROXY_") {
					cmd.Env = append(cmd.Env, kv)
				}
			}
			cmd.Env = append(append(cmd.Env, "LLMPROXY_PLUGINS_DIR="+t.TempDir()), tt.env...)
			cmd.Dir = t.TempDir()
			out, err := cmd.CombinedOutput()
			if tt.ok {
				if err != nil {
					t.Fatalf("exit %v, want success:\n%s", err, out)
				}
				return
			}
			// Starting refuses with status 2; -check (llmproxy validate)
			// reports the error at the key's position and exits 1.
			check := slices.Contains(tt.args, "-check")
			wantCode, wants := 2, []string{"refusing to start", "development key", "loopback"}
			if check {
				wantCode, wants = 1, []string{"Invalid api_key", "development key", "loopback"}
			}
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != wantCode {
				t.Fatalf("exit %v, want status %d:\n%s", err, wantCode, out)
			}
			for _, want := range wants {
				if !strings.Contains(string(out), want) {
					t.Errorf("output does not say %q:\n%s", want, out)
				}
			}
		})
	}
}

// TestUnknownStorageOpIsConfigError checks that a misspelt operation is
// a config error at the file, line and column of the list element.
func TestUnknownStorageOpIsConfigError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ops.hcl")
	src := `server {
  listen = "127.0.0.1:0"
}
api_key "ops" {
  key         = "sk-ops-123"
  instances   = ["*"]
  storage_ops = ["get", "remove"]
}
`
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(harness.BinDir(t), "llmproxy"), "-check", "-config", path).CombinedOutput()
	if err == nil {
		t.Fatalf("-check accepted storage_ops = [\"remove\"]:\n%s", out)
	}
	want := path + `:7:25: Error: Unknown storage operation`
	if !strings.Contains(string(out), want) || !strings.Contains(string(out), `"remove"`) {
		t.Errorf("output lacks %q naming \"remove\":\n%s", want, out)
	}
}

// TestPresignNeedsMethodRight checks that a presigned URL needs the
// right of the operation it grants besides presign, and the answer's
// shape: expires_in is the granted ttl and operation the S3 name.
func TestPresignNeedsMethodRight(t *testing.T) {
	g := startGrants(t, "")
	if status, _, body := g.Do(t, "PUT", "/-local/store/put/rag-docs/p/doc.txt", "presigned\n"); status != 200 {
		t.Fatalf("seed: %d %s", status, body)
	}
	const presign = "/-local/store/presign/rag-docs/p/doc.txt?ttl=600"
	tests := []struct {
		name, key, method string
		status            int
		operation         string
	}{
		{"presign only, GET", keyPresignOnly, "GET", 403, ""},
		{"presign only, PUT", keyPresignOnly, "PUT", 403, ""},
		{"presign and get, GET", keyPresignGet, "GET", 200, "GetObject"},
		{"presign and get, PUT", keyPresignGet, "PUT", 403, ""},
		{"presign and put, PUT", keyPresignPut, "PUT", 200, "PutObject"},
		{"presign and put, GET", keyPresignPut, "GET", 403, ""},
		{"get without presign", keyStorageOnly, "GET", 200, "GetObject"},
		{"no presign right", keyNoOps, "GET", 403, ""},
	}
	urls := map[string]string{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, body := g.as(t, tt.key, "GET", presign+"&method="+tt.method, "")
			if tt.status != 200 {
				wantError(t, status, body, tt.status, "storage_op_not_allowed")
				return
			}
			var p presignResult
			if status != 200 || json.Unmarshal(body, &p) != nil {
				t.Fatalf("status %d: %s", status, body)
			}
			if p.ExpiresIn != 600 || p.Operation != tt.operation || p.Method != tt.method {
				t.Errorf("expires_in %d, operation %q, method %q; want 600, %q, %s", p.ExpiresIn, p.Operation, p.Method, tt.operation, tt.method)
			}
			urls[tt.method] = p.URL
		})
	}
	if urls["GET"] == "" || urls["PUT"] == "" {
		t.Fatal("no presigned URLs to try")
	}
	if status, got := plainGet(t, urls["GET"]); status != 200 || got != "presigned\n" {
		t.Errorf("presigned GET: %d %q", status, got)
	}
	// A host-signed upload obeys max_object_bytes like a routed one.
	for _, size := range []int{grantsObjectCap, grantsObjectCap + 1} {
		req, _ := http.NewRequest("PUT", urls["PUT"], strings.NewReader(strings.Repeat("x", size)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if size <= grantsObjectCap && resp.StatusCode != 200 {
			t.Errorf("signed PUT of %d bytes: %d %s", size, resp.StatusCode, body)
		}
		if size > grantsObjectCap {
			wantError(t, resp.StatusCode, body, 413, "object_too_large")
		}
	}
}

// TestPageTokensSealed pages through a listing whose hidden objects sort
// first: no page token reveals a key, and a token the host did not issue
// for this listing is refused.
func TestPageTokensSealed(t *testing.T) {
	g := startGrants(t, "")
	for _, k := range []string{"secret/aaa-payroll.txt", "secret/bbb-merger.txt", "visible/1.txt", "visible/2.txt"} {
		if status, _, body := g.Do(t, "PUT", "/-local/raw/put/rag-docs/"+k, "x"); status != 200 {
			t.Fatalf("put %s: %d %s", k, status, body)
		}
	}
	var tokens, seen []string
	token := ""
	for page := 0; page < 10; page++ {
		path := "/-local/store/list/rag-docs?max_keys=1"
		if token != "" {
			path += "&page_token=" + url.QueryEscape(token)
		}
		status, _, body := g.Do(t, "GET", path, "")
		var res listResult
		if status != 200 || json.Unmarshal(body, &res) != nil {
			t.Fatalf("page %d: %d %s", page, status, body)
		}
		for _, o := range res.Objects {
			seen = append(seen, o.Key)
		}
		seen = append(seen, res.CommonPrefixes...)
		if res.NextPageToken == "" {
			break
		}
		token = res.NextPageToken
		tokens = append(tokens, token)
	}
	if strings.Join(seen, ",") != "visible/1.txt,visible/2.txt" {
		t.Errorf("listed %v, want the two visible objects", seen)
	}
	if len(tokens) < 3 {
		t.Fatalf("only %d page tokens for 4 objects in pages of 1", len(tokens))
	}
	for _, tok := range tokens {
		for _, dec := range decodings(tok) {
			if strings.Contains(dec, "payroll") || strings.Contains(dec, "merger") || strings.Contains(dec, "visible") {
				t.Errorf("page token %q reveals %q", tok, dec)
			}
		}
	}
	raw := []byte(tokens[0])
	raw[len(raw)/2] ^= 0x01
	if raw[len(raw)/2] == '-' || raw[len(raw)/2] == '_' {
		raw[len(raw)/2] = 'A'
	}
	bad := map[string]string{
		"tampered":                 string(raw),
		"plugin token":             base64.RawURLEncoding.EncodeToString([]byte("ksecret/aaa-payroll.txt")),
		"garbage":                  "!!!",
		"token of another listing": tokens[0] + "&prefix=visible/",
	}
	for name, tok := range bad {
		t.Run(name, func(t *testing.T) {
			path := "/-local/store/list/rag-docs?max_keys=1&page_token=" + url.QueryEscape(tok)
			if name == "token of another listing" {
				path = "/-local/store/list/rag-docs?max_keys=1&prefix=visible/&page_token=" + url.QueryEscape(tokens[0])
			}
			status, _, body := g.Do(t, "GET", path, "")
			wantError(t, status, body, 400, "invalid_page_token")
		})
	}
}

// listResult is the body of a list.
type listResult struct {
	Objects []struct {
		Key string `json:"key"`
	} `json:"objects"`
	CommonPrefixes []string `json:"common_prefixes"`
	NextPageToken  string   `json:"next_page_token"`
}

// decodings returns tok and every base64 reading of it.
func decodings(tok string) []string {
	out := []string{tok}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(tok); err == nil {
			out = append(out, string(b))
		}
	}
	return out
}

// TestTraversalRefusedEverywhere sends keys that would leave their
// folder or bucket on every path that names an object: each is refused
// with 400 before a plugin sees it, and the provider is never called.
func TestTraversalRefusedEverywhere(t *testing.T) {
	g := startGrants(t, "")
	if status, _, body := g.Do(t, "PUT", "/-local/raw/put/rag-docs/secret/x", "top secret"); status != 200 {
		t.Fatalf("seed: %d %s", status, body)
	}
	base := "/-local/store/"
	tests := []struct {
		name, method, path string
	}{
		{"get", "GET", base + "get/rag-docs/a/../secret/x"},
		{"get escaped dots", "GET", base + "get/rag-docs/a/%2e%2e/secret/x"},
		{"get escaped slashes", "GET", base + "get/rag-docs/a%2F..%2Fsecret%2Fx"},
		{"get dot segment", "GET", base + "get/rag-docs/./secret/x"},
		{"get empty segment", "GET", base + "get/rag-docs/a//x"},
		{"get control char", "GET", base + "get/rag-docs/a%0Dx"},
		{"head", "HEAD", base + "head/rag-docs/a/../secret/x"},
		{"put", "PUT", base + "put/rag-docs/a/../secret/x"},
		{"delete", "DELETE", base + "delete/rag-docs/a/../secret/x"},
		{"presign", "GET", base + "presign/rag-docs/a/../secret/x"},
		{"presign put", "GET", base + "presign/rag-docs/a/%2e%2e/secret/x?method=PUT"},
		{"list prefix", "GET", base + "list/rag-docs?prefix=a/../secret/"},
		{"instance behind dots", "GET", "/-local/raw/../store/get/rag-docs/secret/x"},
		{"instance switched by dots", "GET", "/-local/store/get/../../../-local/raw/get/rag-docs/secret/x"},
		{"transparent dots", "GET", "/-openai/openai_prod/v1/../../admin"},
		{"transparent escaped dots", "GET", "/-openai/openai_prod/v1/%2e%2e/%2E%2E/admin"},
		{"transparent escaped slash", "GET", "/-openai/openai_prod/v1/..%2F..%2Fadmin"},
		{"from storage to transparent", "GET", "/-local/store/../../-openai/openai_prod/v1/models"},
	}
	upstream := g.fake.Requests()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, body := g.Do(t, tt.method, tt.path, "payload")
			if status != 400 {
				t.Fatalf("status %d, want 400: %s", status, body)
			}
			if tt.method != "HEAD" {
				e := wantError(t, status, body, 400, "")
				if e.Error.Code == nil || (*e.Error.Code != "invalid_key" && *e.Error.Code != "invalid_bucket" && *e.Error.Code != "invalid_path") {
					t.Errorf("code %v, want invalid_key, invalid_bucket or invalid_path", e.Error.Code)
				}
			}
		})
	}
	if n := g.fake.Requests() - upstream; n != 0 {
		t.Errorf("the upstream received %d requests for refused paths", n)
	}
	for _, key := range []string{"a/../secret/x", "./secret/x", "/secret/x", "a//../secret/x", "a/\u0000/x"} {
		t.Run("chat document "+key, func(t *testing.T) {
			doc, _ := json.Marshal(map[string]any{"model": "echo", "messages": []any{map[string]any{"role": "user", "content": []any{
				map[string]any{"type": "text", "text": "read this"},
				map[string]any{"type": "document", "source": map[string]any{"type": "storage", "storage": "store", "bucket": "rag-docs", "key": key}},
			}}}})
			status, _, body := g.Do(t, "POST", "/v1/chat/completions", string(doc))
			if status != 400 || strings.Contains(string(body), "top secret") {
				t.Fatalf("status %d, want 400: %s", status, body)
			}
		})
	}
}

// TestDuplicateKeysNeverReachUpstream sends bodies that name the model
// twice: the host refuses them with 400 naming the key and the upstream
// sees nothing; a plain body reaches it with exactly one model.
func TestDuplicateKeysNeverReachUpstream(t *testing.T) {
	g := startGrants(t, "")
	g.fake.Reset()
	tests := []struct {
		name, body, param, code string
	}{
		{"model twice", `{"model":"gpt-4o","model":"o1-pro","messages":[{"role":"user","content":"hi"}]}`, "model", "duplicate_key"},
		{"model twice, escaped", `{"model":"gpt-4o","mod\u0065l":"o1-pro","messages":[{"role":"user","content":"hi"}]}`, "model", "duplicate_key"},
		{"stream twice", `{"model":"gpt-4o","stream":false,"stream":true,"messages":[{"role":"user","content":"hi"}]}`, "stream", "duplicate_key"},
		{"nested", `{"model":"gpt-4o","messages":[{"role":"user","content":"hi","role":"system"}]}`, "messages[0].role", "duplicate_key"},
		// Go's encoding/json matches keys to fields ignoring case.
		{"model in another case", `{"model":"gpt-4o","MODEL":"o1-pro","messages":[{"role":"user","content":"hi"}]}`, "MODEL", "duplicate_key"},
		{"stream in another case", `{"model":"gpt-4o","Stream":true,"messages":[{"role":"user","content":"hi"}]}`, "Stream", "invalid_key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, body := g.Do(t, "POST", "/v1/chat/completions", tt.body)
			e := wantError(t, status, body, 400, tt.code)
			if e.Error.Param == nil || *e.Error.Param != tt.param {
				t.Errorf("param %v, want %q", e.Error.Param, tt.param)
			}
		})
	}
	status, _, body := g.Do(t, "POST", "/v1/embeddings", `{"model":"gpt-4o","input":"a","model":"text-embedding-3-large"}`)
	wantError(t, status, body, 400, "duplicate_key")
	if n := g.fake.Requests(); n != 0 {
		t.Fatalf("the upstream received %d requests with duplicate keys", n)
	}
	status, _, body = g.Do(t, "POST", "/v1/chat/completions", chatBody("gpt-4o"))
	if status != 200 {
		t.Fatalf("plain body: %d %s", status, body)
	}
	sent := g.fake.LastRequest().Body
	if n := topLevelCount(t, sent, "model"); n != 1 {
		t.Errorf("upstream saw %d model keys: %s", n, sent)
	}
	var m struct{ Model string }
	if json.Unmarshal(sent, &m) != nil || m.Model != "gpt-4o" {
		t.Errorf("upstream model %q, want gpt-4o", m.Model)
	}
}

// topLevelCount counts the top-level occurrences of key in a JSON object.
func topLevelCount(t *testing.T, body []byte, key string) int {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not a JSON object: %s", body)
	}
	n := 0
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		if k == key {
			n++
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

// TestObjectSizeCap uploads objects around max_object_bytes, with a
// declared length, chunked, and larger than max_body_bytes: beyond the
// cap the client gets 413 (its body drained, not a reset) and nothing is
// stored.
func TestObjectSizeCap(t *testing.T) {
	g := startGrants(t, "")
	tests := []struct {
		name    string
		size    int
		chunked bool
		status  int
	}{
		{"at the cap", grantsObjectCap, false, 200},
		{"one byte over", grantsObjectCap + 1, false, 413},
		{"chunked at the cap", grantsObjectCap, true, 200},
		{"chunked over", 3 * grantsObjectCap, true, 413},
		{"over max_body_bytes", 3 << 20, false, 413},
		{"chunked over max_body_bytes", 3 << 20, true, 413},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := fmt.Sprintf("cap/%d.bin", i)
			var body io.Reader = bytes.NewReader(bytes.Repeat([]byte("y"), tt.size))
			if tt.chunked {
				body = io.MultiReader(body)
			}
			req, _ := http.NewRequest("PUT", g.URL+"/-local/store/put/rag-docs/"+key, body)
			req.Header.Set("Authorization", "Bearer "+harness.Key)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("upload: %v (the host must answer, not reset)", err)
			}
			out, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if tt.status == 200 {
				if resp.StatusCode != 200 {
					t.Fatalf("status %d: %s", resp.StatusCode, out)
				}
				return
			}
			wantError(t, resp.StatusCode, out, 413, "object_too_large")
			if status, _, _ := g.Do(t, "HEAD", "/-local/raw/head/rag-docs/"+key, ""); status != 404 {
				t.Errorf("the refused upload was stored: HEAD %d", status)
			}
		})
	}
}

// slowBody yields n bytes in pieces of piece bytes, waiting gap before
// each piece after the first, and stall before the piece at stallAt.
type slowBody struct {
	left, piece     int
	gap             time.Duration
	stallAt         int
	stall           time.Duration
	sent            int
	started, paused bool
}

func (b *slowBody) Read(p []byte) (int, error) {
	if b.left == 0 {
		return 0, io.EOF
	}
	if b.started {
		time.Sleep(b.gap)
	}
	b.started = true
	if b.stall > 0 && !b.paused && b.sent >= b.stallAt {
		b.paused = true
		time.Sleep(b.stall)
	}
	n := min(len(p), b.piece, b.left)
	for i := range n {
		p[i] = 'z'
	}
	b.left -= n
	b.sent += n
	return n, nil
}

// TestUploadReadTimeoutByProgress uploads for longer than read_timeout
// while bytes keep coming, which must succeed, and stalls one upload for
// longer than read_idle_timeout, which must fail and store nothing.
func TestUploadReadTimeoutByProgress(t *testing.T) {
	g := startGrants(t, `  read_timeout      = "1s"
  read_idle_timeout = "1500ms"`)
	const size = 1536 << 10
	upload := func(key string, body io.Reader) (int, []byte, error) {
		req, _ := http.NewRequest("PUT", g.URL+"/-local/raw/put/rag-docs/"+key, body)
		req.ContentLength = size
		req.Header.Set("Authorization", "Bearer "+harness.Key)
		resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, out, nil
	}
	start := time.Now()
	status, out, err := upload("slow/moving.bin", &slowBody{left: size, piece: 128 << 10, gap: 250 * time.Millisecond})
	if err != nil || status != 200 {
		t.Fatalf("moving upload after %v: %d %s %v", time.Since(start), status, out, err)
	}
	if took := time.Since(start); took < 2*time.Second {
		t.Fatalf("the upload took %v, not longer than read_timeout; the test proves nothing", took)
	}
	var res putResult
	if json.Unmarshal(out, &res) != nil || res.Size != size {
		t.Errorf("stored %s, want %d bytes", out, size)
	}

	status, out, err = upload("slow/stalled.bin", &slowBody{left: size, piece: 128 << 10, gap: 10 * time.Millisecond,
		stallAt: 1100 << 10, stall: 4 * time.Second})
	if err == nil && status == 200 {
		t.Fatalf("a stalled upload succeeded: %s", out)
	}
	if status, _, _ := g.Do(t, "HEAD", "/-local/raw/head/rag-docs/slow/stalled.bin", ""); status != 404 {
		t.Errorf("the stalled upload was stored: HEAD %d", status)
	}
}

// TestMalformedRequestKeepsKeysOut sends requests the HTTP parser
// refuses, each carrying a key: neither the response nor the host's log
// (at debug level) may contain it.
func TestMalformedRequestKeepsKeysOut(t *testing.T) {
	g := startGrants(t, "")
	const canary = "sk-canary-7f3a9c1e5b"
	requests := []string{
		"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + canary + "\r\nContent-Length: nope\r\n\r\n",
		"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + canary + "\r\nno colon here\r\n\r\n",
		"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-API-Key: " + canary + "\r\nTransfer-Encoding: chunked\r\n\r\nnot-hex\r\n",
		"GET /v1/models HTTP/9.9\x00\r\nAuthorization: Bearer " + canary + "\r\n\r\n",
		"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + canary + "\r\n\r\n",
	}
	for i, raw := range requests {
		conn, err := net.DialTimeout("tcp", g.Addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Write([]byte(raw)); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("request %d: no response: %v", i, err)
		}
		var dump bytes.Buffer
		resp.Write(&dump)
		conn.Close()
		if resp.StatusCode < 400 {
			t.Errorf("request %d: status %d", i, resp.StatusCode)
		}
		if strings.Contains(dump.String(), canary) {
			t.Errorf("request %d: the response contains the key:\n%s", i, dump.String())
		}
	}
	time.Sleep(100 * time.Millisecond)
	if strings.Contains(g.Logs(), canary) {
		t.Errorf("the host log contains the key:\n%s", g.Logs())
	}
}

// TestReadyzAdminOnlyAndDraining checks that /readyz shows instance
// details only to admin keys, and that after SIGTERM it answers 503
// during drain_delay while requests are still served.
func TestReadyzAdminOnlyAndDraining(t *testing.T) {
	g := startGrants(t, `  drain_delay = "4s"`)
	ready := func(key string) (int, map[string]json.RawMessage) {
		status, _, body := g.as(t, key, "GET", "/readyz", "")
		var out map[string]json.RawMessage
		if err := json.Unmarshal(body, &out); err != nil {
			t.Fatalf("/readyz: %s", body)
		}
		return status, out
	}
	for _, key := range []string{"", keyEchoOnly, "sk-not-a-key"} {
		status, out := ready(key)
		if status != 200 || string(out["status"]) != `"ready"` {
			t.Errorf("key %q: %d %v", key, status, out)
		}
		if _, has := out["instances"]; has {
			t.Errorf("key %q sees instance details", key)
		}
	}
	if _, out := ready(harness.Key); !strings.Contains(string(out["instances"]), `"openai_prod"`) {
		t.Errorf("the admin key does not see instance details: %v", out)
	}

	if err := g.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		status, out := ready("")
		if status == 503 && string(out["status"]) == `"draining"` {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d %v after SIGTERM", status, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if status, _, body := g.Do(t, "POST", "/v1/chat/completions", chatBody("echo")); status != 200 {
		t.Errorf("request during the drain: %d %s", status, body)
	}
	select {
	case <-g.Exited():
	case <-time.After(15 * time.Second):
		t.Fatal("the host did not exit after the drain")
	}
}
