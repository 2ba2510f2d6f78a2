package e2e

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path"
	"strings"
	"sync"
	"testing"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/test/harness"
)

// The storage scenarios run against every storage backend, each behind
// its own llmproxy with one storage instance named "store", the echo
// provider (which describes every document it receives) and a document
// server on 127.0.0.1 that counts its hits. Objects of one run live under
// a random key prefix in the bucket "rag-docs", so runs against shared
// emulators do not meet.

// API keys of the storage hosts besides harness.Key.
const (
	// readerKey may only get objects.
	readerKey = "sk-e2e-reader"
	// noStorageKey may use models but address no instance.
	noStorageKey = "sk-e2e-no-storage"
)

const (
	ragBucket    = "rag-docs"
	deniedBucket = "forbidden-bucket"
)

// storageConfig is the HCL of a storage host; %s are the plugin type and
// the backend's config and credential blocks.
const storageConfig = harness.APIKeyBlock + harness.EchoBlock + `
api_key "reader" {
  key         = "` + readerKey + `"
  models      = ["*"]
  instances   = ["*"]
  storage_ops = ["get"]
}

api_key "no-storage" {
  key       = "` + noStorageKey + `"
  models    = ["*"]
  instances = []
}

storage "store" {
  type            = %q
  allowed_buckets = ["` + ragBucket + `"]
  denied_prefixes = ["secret/"]
  presign {
    default_ttl = "5m"
    min_ttl     = "1s"
    max_ttl     = "1h"
  }
  %s
}

documents {
  allow_cidrs = ["127.0.0.1/32"]
  cache {
    ttl = "10m"
  }
}
`

// storageScenarios are the subtests run against every backend.
var storageScenarios = []struct {
	name string
	run  func(t *testing.T, s *storageHost)
}{
	{"rag", testSimpleRAG},
	{"multi_document", testMultiDocument},
	{"url_cache", testURLDocumentCache},
	{"storage_document_cache", testStorageDocumentCache},
	{"access_control", testStorageAccess},
	{"chat_access_control", testChatStorageAccess},
	{"presign_expiry", testPresignExpiry},
	{"presign_ttl_bounds", testPresignBounds},
	{"range", testRangeGet},
	{"head", testHead},
	{"list", testList},
	{"delete", testDelete},
	{"large_object", testLargeObject},
}

func TestStorage(t *testing.T) {
	for _, typ := range harness.StorageTypes {
		t.Run(typ, func(t *testing.T) {
			t.Parallel()
			s := startStorage(t, typ)
			for _, sc := range storageScenarios {
				t.Run(sc.name, func(t *testing.T) { sc.run(t, s) })
			}
		})
	}
}

// storageHost is a running llmproxy with the storage instance "store".
type storageHost struct {
	*harness.Host
	backend harness.StorageBackend
	// prefix is this run's key prefix, ending in "/".
	prefix string
	docs   *docServer
}

// startStorage starts the host of one backend, failing the test when the
// backend's emulator is not running.
func startStorage(t *testing.T, typ string) *storageHost {
	t.Helper()
	b := harness.StorageBackendFor(t, typ)
	if err := b.CreateBucket(t.Context(), ragBucket); err != nil {
		t.Fatalf("prepare %s backend: %v", typ, err)
	}
	h := harness.Start(t, fmt.Sprintf(storageConfig, typ, b.Body), harness.Options{WaitFor: []string{"echo", "store"}})
	return &storageHost{Host: h, backend: b, prefix: "e2e-" + randomHex(t, 6) + "/", docs: newDocServer(t)}
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// path returns the host path of a storage operation.
func (s *storageHost) path(op, bucket, key string) string {
	p := "/-" + s.backend.Type + "/store/" + op + "/" + bucket
	if key != "" {
		p += "/" + key
	}
	return p
}

// as sends a request with apiKey and extra header pairs.
func (s *storageHost) as(t *testing.T, apiKey, method, p, body string, header ...string) (int, http.Header, []byte) {
	t.Helper()
	return s.Do(t, method, p, body, append([]string{"Authorization", "Bearer " + apiKey}, header...)...)
}

// putResult is the body of a successful put.
type putResult struct {
	Status      string `json:"status"`
	Bucket      string `json:"bucket"`
	Key         string `json:"key"`
	Size        int64  `json:"size"`
	ETag        string `json:"etag"`
	ContentType string `json:"content_type"`
}

// put uploads body to rag-docs/key and removes it when the test ends.
func (s *storageHost) put(t *testing.T, key, contentType, body string) putResult {
	t.Helper()
	status, _, out := s.Do(t, "PUT", s.path("put", ragBucket, key), body, "Content-Type", contentType)
	if status != http.StatusOK {
		t.Fatalf("put %s: status %d: %s", key, status, out)
	}
	var res putResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("put %s: %v: %s", key, err, out)
	}
	if res.Status != "success" || res.Key != key || res.Size != int64(len(body)) {
		t.Fatalf("put %s answered %+v, want status success, size %d", key, res, len(body))
	}
	t.Cleanup(func() { s.Do(t, "DELETE", s.path("delete", ragBucket, key), "") })
	return res
}

// presignResult is the body of a successful presign.
type presignResult struct {
	URL       string `json:"url"`
	ExpiresIn int64  `json:"expires_in"`
	ExpiresAt string `json:"expires_at"`
	Operation string `json:"operation"`
	Method    string `json:"method"`
	Bucket    string `json:"bucket"`
	Key       string `json:"key"`
}

// presign asks for a GET URL of rag-docs/key with ttl (seconds).
func (s *storageHost) presign(t *testing.T, key, ttl string) presignResult {
	t.Helper()
	status, _, out := s.Do(t, "GET", s.path("presign", ragBucket, key)+"?ttl="+ttl, "")
	if status != http.StatusOK {
		t.Fatalf("presign %s: status %d: %s", key, status, out)
	}
	var res presignResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("presign %s: %v: %s", key, err, out)
	}
	if res.URL == "" || res.Method != "GET" || res.Bucket != ragBucket || res.Key != key {
		t.Fatalf("presign %s answered %s", key, out)
	}
	return res
}

// chat sends one user message with a text part and parts to model echo.
func (s *storageHost) chat(t *testing.T, apiKey string, parts ...map[string]any) (int, []byte) {
	t.Helper()
	content := append([]map[string]any{{"type": "text", "text": "summarise"}}, parts...)
	body, err := json.Marshal(map[string]any{
		"model":    "echo",
		"messages": []map[string]any{{"role": "user", "content": content}},
	})
	if err != nil {
		t.Fatal(err)
	}
	status, _, out := s.as(t, apiKey, "POST", "/v1/chat/completions", string(body))
	return status, out
}

// chatReply is chat that must succeed; it returns the echo's answer.
func (s *storageHost) chatReply(t *testing.T, parts ...map[string]any) string {
	t.Helper()
	status, out := s.chat(t, harness.Key, parts...)
	if status != http.StatusOK {
		t.Fatalf("chat: status %d: %s", status, out)
	}
	var cc openai.ChatCompletion
	if err := json.Unmarshal(out, &cc); err != nil || len(cc.Choices) == 0 || cc.Choices[0].Message.Content == nil {
		t.Fatalf("chat answer is not a completion (%v): %s", err, out)
	}
	return *cc.Choices[0].Message.Content
}

// urlDoc is a document part with a URL source.
func urlDoc(u string) map[string]any {
	return map[string]any{"type": "document", "source": map[string]any{"type": "url", "url": u}}
}

// storageDoc is a document part naming an object of "store".
func storageDoc(bucket, key string) map[string]any {
	return map[string]any{"type": "document", "source": map[string]any{
		"type": "storage", "storage": "store", "bucket": bucket, "key": key}}
}

// fileDoc is an OpenAI file part carrying data inline as a data URL.
func fileDoc(name, mimeType, data string) map[string]any {
	return map[string]any{"type": "file", "file": map[string]any{
		"filename": name, "file_data": "data:" + mimeType + ";base64," + base64.StdEncoding.EncodeToString([]byte(data))}}
}

// docLine is the line the echo provider writes for a received text
// document: its name, type, size and first twelve words.
func docLine(name, mimeType, text string) string {
	words := strings.Fields(text)
	if len(words) > 12 {
		words = words[:12]
	}
	return fmt.Sprintf("[document %q (%s, %d bytes): %s]", name, mimeType, len(text), strings.Join(words, " "))
}

// docLines returns the document lines of an echo answer.
func docLines(reply string) []string {
	var out []string
	for _, l := range strings.Split(reply, "\n") {
		if strings.HasPrefix(l, "[document ") {
			out = append(out, l)
		}
	}
	return out
}

// wantDocs checks that reply reports exactly the documents want, in order.
func wantDocs(t *testing.T, reply string, want ...string) {
	t.Helper()
	got := docLines(reply)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("the provider received\n  %s\nwant\n  %s\n(full answer %q)", strings.Join(got, "\n  "), strings.Join(want, "\n  "), reply)
	}
}

// apiError is the OpenAI error body.
type apiError struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	} `json:"error"`
}

// wantError checks status and that body is an OpenAI error with code
// (any code when code is empty); it returns the error.
func wantError(t *testing.T, status int, body []byte, wantStatus int, code string) apiError {
	t.Helper()
	if status != wantStatus {
		t.Fatalf("status %d, want %d: %s", status, wantStatus, body)
	}
	var raw map[string]map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil || raw["error"] == nil {
		t.Fatalf("body is not an OpenAI error: %s", body)
	}
	for _, k := range []string{"message", "type", "param", "code"} {
		if _, ok := raw["error"][k]; !ok {
			t.Errorf("error lacks %q: %s", k, body)
		}
	}
	var e apiError
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("decode error body: %v: %s", err, body)
	}
	if e.Error.Message == "" || e.Error.Type == "" {
		t.Errorf("error without message or type: %s", body)
	}
	if code != "" && (e.Error.Code == nil || *e.Error.Code != code) {
		t.Errorf("error code %v, want %q: %s", e.Error.Code, code, body)
	}
	return e
}

// docServer serves documents over HTTP on 127.0.0.1 and counts the
// requests for each path.
type docServer struct {
	srv  *httptest.Server
	mu   sync.Mutex
	docs map[string]served
	hits map[string]int
}

type served struct {
	contentType, body string
	noStore           bool
}

func newDocServer(t *testing.T) *docServer {
	d := &docServer{docs: map[string]served{}, hits: map[string]int{}}
	d.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		d.hits[r.URL.Path]++
		doc, ok := d.docs[r.URL.Path]
		d.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", doc.contentType)
		if doc.noStore {
			w.Header().Set("Cache-Control", "no-store")
		}
		fmt.Fprint(w, doc.body)
	}))
	t.Cleanup(d.srv.Close)
	return d
}

// add serves body at p and returns its URL.
func (d *docServer) add(p, contentType, body string, noStore bool) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.docs[p] = served{contentType: contentType, body: body, noStore: noStore}
	return d.srv.URL + p
}

// hitCount returns how many requests p received.
func (d *docServer) hitCount(p string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.hits[p]
}

// baseName is the document name the host gives an object key.
func baseName(key string) string { return path.Base(key) }
