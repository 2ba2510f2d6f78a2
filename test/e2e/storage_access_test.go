package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/test/harness"
)

// testStorageAccess drives the instance's and the keys' rules: every
// refusal is a 400 or 403 in the OpenAI error shape, and the refused
// write leaves nothing behind.
func testStorageAccess(t *testing.T, s *storageHost) {
	key := s.prefix + "access/readable.txt"
	s.put(t, key, "text/plain", "readable by the get-only key\n")
	base := "/-" + s.backend.Type + "/store/"

	tests := []struct {
		name         string
		apiKey       string
		method, path string
		status       int
		code         string
	}{
		{"get-only key may get", readerKey, "GET", s.path("get", ragBucket, key), 200, ""},
		{"bucket not allowed", harness.Key, "PUT", s.path("put", deniedBucket, "x.txt"), 403, "bucket_not_allowed"},
		{"bucket not allowed list", harness.Key, "GET", s.path("list", deniedBucket, ""), 403, "bucket_not_allowed"},
		{"denied prefix put", harness.Key, "PUT", s.path("put", ragBucket, "secret/x.txt"), 403, "prefix_denied"},
		{"denied prefix get", harness.Key, "GET", s.path("get", ragBucket, "secret/x.txt"), 403, "prefix_denied"},
		{"denied prefix presign", harness.Key, "GET", s.path("presign", ragBucket, "secret/x.txt"), 403, "prefix_denied"},
		{"denied prefix list", harness.Key, "GET", s.path("list", ragBucket, "") + "?prefix=secret/", 403, "prefix_denied"},
		{"key without instances", noStorageKey, "GET", s.path("get", ragBucket, key), 403, "instance_not_allowed"},
		{"get-only key put", readerKey, "PUT", s.path("put", ragBucket, s.prefix+"access/new.txt"), 403, "storage_op_not_allowed"},
		{"get-only key delete", readerKey, "DELETE", s.path("delete", ragBucket, key), 403, "storage_op_not_allowed"},
		{"get-only key presign", readerKey, "GET", s.path("presign", ragBucket, key), 403, "storage_op_not_allowed"},
		{"get-only key list", readerKey, "GET", s.path("list", ragBucket, ""), 403, "storage_op_not_allowed"},
		{"dot-dot segment", harness.Key, "PUT", base + "put/" + ragBucket + "/" + s.prefix + "a/../b.txt", 400, "invalid_key"},
		{"dot-dot out of the bucket", harness.Key, "GET", base + "get/" + ragBucket + "/../" + deniedBucket + "/x.txt", 400, "invalid_key"},
		{"escaped dot-dot", harness.Key, "PUT", base + "put/" + ragBucket + "/" + s.prefix + "a/%2e%2e/b.txt", 400, "invalid_key"},
		{"escaped slash and dot-dot", harness.Key, "GET", base + "get/" + ragBucket + "/x%2F..%2Fsecret%2Fy.txt", 400, "invalid_key"},
		{"dot segment", harness.Key, "GET", base + "get/" + ragBucket + "/./x.txt", 400, "invalid_key"},
		{"leading slash", harness.Key, "PUT", base + "put/" + ragBucket + "//etc/passwd", 400, "invalid_key"},
		{"escaped leading slash", harness.Key, "GET", base + "get/" + ragBucket + "/%2Fetc%2Fpasswd", 400, "invalid_key"},
		{"escaped bucket", harness.Key, "GET", base + "get/..%2F" + deniedBucket + "/x.txt", 400, "invalid_bucket"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, body := s.as(t, tt.apiKey, tt.method, tt.path, "payload", "Content-Type", "text/plain")
			if tt.status == http.StatusOK {
				if status != http.StatusOK {
					t.Fatalf("status %d, want 200: %s", status, body)
				}
				return
			}
			wantError(t, status, body, tt.status, tt.code)
		})
	}
	t.Run("refused put wrote nothing", func(t *testing.T) {
		status, _, body := s.Do(t, "HEAD", s.path("head", ragBucket, s.prefix+"access/new.txt"), "")
		if status != http.StatusNotFound {
			t.Errorf("head of the refused upload: status %d, want 404: %s", status, body)
		}
	})
}

// testChatStorageAccess sends storage references the caller may not read:
// the chat is refused with 403 before the provider is called.
func testChatStorageAccess(t *testing.T, s *storageHost) {
	key := s.prefix + "chat-access/report.txt"
	body := "Quarterly report with figures only some keys may read.\n"
	s.put(t, key, "text/plain", body)

	tests := []struct {
		name   string
		apiKey string
		doc    map[string]any
		status int
		code   string
	}{
		{"full key", harness.Key, storageDoc(ragBucket, key), 200, ""},
		{"get-only key", readerKey, storageDoc(ragBucket, key), 200, ""},
		{"key without instances", noStorageKey, storageDoc(ragBucket, key), 403, "document_access_denied"},
		{"denied prefix", harness.Key, storageDoc(ragBucket, "secret/report.txt"), 403, "document_access_denied"},
		{"bucket not allowed", harness.Key, storageDoc(deniedBucket, "report.txt"), 403, "document_access_denied"},
		{"unknown instance", harness.Key, map[string]any{"type": "document", "source": map[string]any{
			"type": "storage", "storage": "nope", "bucket": ragBucket, "key": key}}, 404, "document_not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, out := s.chat(t, tt.apiKey, tt.doc)
			if tt.status == http.StatusOK {
				if status != http.StatusOK {
					t.Fatalf("status %d, want 200: %s", status, out)
				}
				if !strings.Contains(string(out), "Quarterly report with figures") {
					t.Errorf("the provider did not receive the document: %s", out)
				}
				return
			}
			e := wantError(t, status, out, tt.status, tt.code)
			if e.Error.Param == nil || !strings.HasPrefix(*e.Error.Param, "messages[0].content[1]") {
				t.Errorf("error param %v, want the refused part messages[0].content[1]", e.Error.Param)
			}
		})
	}
}

// testPresignExpiry presigns with a short ttl: the URL serves the object
// to a plain HTTP client, then stops once it expires, and a chat carrying
// the expired URL is not served from storage.
func testPresignExpiry(t *testing.T, s *storageHost) {
	key := s.prefix + "expiry/short.txt"
	body := "Short lived presigned content.\n"
	s.put(t, key, "text/plain", body)
	const ttl = 3
	p := s.presign(t, key, "3")
	if p.ExpiresIn != ttl {
		t.Errorf("expires_in = %d, want %d", p.ExpiresIn, ttl)
	}
	expires, err := time.Parse(time.RFC3339, p.ExpiresAt)
	if err != nil {
		t.Fatalf("expires_at %q: %v", p.ExpiresAt, err)
	}

	status, got := plainGet(t, p.URL)
	if status != http.StatusOK || got != body {
		t.Fatalf("fresh presigned URL: status %d, body %q; want 200 and %q", status, got, body)
	}
	wantDocs(t, s.chatReply(t, urlDoc(p.URL)), docLine("short.txt", "text/plain", body))

	wantURLLifetime(t, p.URL, ttl)
	if !s.backend.ChecksExpiry {
		// The emulator serves signed URLs without checking them: the
		// lifetime the URL carries is what can be checked.
		return
	}

	// Wait for expiry; the bound only guards against a hang.
	deadline := time.Now().Add(30 * time.Second)
	for {
		status, got = plainGet(t, p.URL)
		if status != http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("presigned URL still served %q 30s after issue (expires_at %s)", got, p.ExpiresAt)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if status != http.StatusForbidden {
		t.Errorf("expired presigned URL: status %d, want 403: %s", status, got)
	}
	if now := time.Now(); now.Before(expires.Add(-time.Second)) {
		t.Errorf("presigned URL refused at %s, before it expires at %s", now.Format(time.RFC3339Nano), p.ExpiresAt)
	}
	cs, out := s.chat(t, harness.Key, urlDoc(p.URL))
	if cs == http.StatusOK {
		t.Fatalf("chat with an expired presigned URL succeeded: %s", out)
	}
	wantError(t, cs, out, cs, "")
}

// wantURLLifetime checks the lifetime a presigned S3 or GCS URL carries
// (X-Amz-Expires, X-Goog-Expires) against the requested ttl in seconds;
// URLs of other backends carry an absolute expiry instead.
func wantURLLifetime(t *testing.T, raw string, ttl int) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("presigned URL %q: %v", raw, err)
	}
	for _, name := range []string{"X-Amz-Expires", "X-Goog-Expires"} {
		if v := u.Query().Get(name); v != "" && v != strconv.Itoa(ttl) {
			t.Errorf("%s = %s, want the requested ttl %d (URL %s)", name, v, ttl, raw)
		}
	}
}

// plainGet fetches u with net/http and no credentials.
func plainGet(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", u, err)
	}
	return resp.StatusCode, string(b)
}

// testPresignBounds asks for lifetimes outside the instance's presign
// bounds (1s to 1h): 400 naming the bounds.
func testPresignBounds(t *testing.T, s *storageHost) {
	key := s.prefix + "bounds/x.txt"
	tests := []struct {
		name, ttl string
		status    int
		code      string
	}{
		{"at min", "1", 200, ""},
		{"at max", "3600", 200, ""},
		{"below min", "0.5", 400, "ttl_out_of_range"},
		{"zero", "0", 400, "ttl_out_of_range"},
		{"above max", "3601", 400, "ttl_out_of_range"},
		{"duration above max", "2h", 400, "ttl_out_of_range"},
		{"not a number", "soon", 400, ""},
	}
	s.put(t, key, "text/plain", "bounds\n")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, body := s.Do(t, "GET", s.path("presign", ragBucket, key)+"?ttl="+tt.ttl, "")
			if tt.status == http.StatusOK {
				if status != http.StatusOK {
					t.Fatalf("status %d, want 200: %s", status, body)
				}
				var p presignResult
				if err := json.Unmarshal(body, &p); err != nil {
					t.Fatalf("presign answer: %v: %s", err, body)
				}
				ttl, _ := strconv.Atoi(tt.ttl)
				wantURLLifetime(t, p.URL, ttl)
				return
			}
			e := wantError(t, status, body, tt.status, tt.code)
			if tt.code == "ttl_out_of_range" && !(strings.Contains(e.Error.Message, "1s") && strings.Contains(e.Error.Message, "1h0m0s") &&
				strings.Contains(e.Error.Message, "1 to 3600")) {
				t.Errorf("message does not name the bounds 1s and 1h: %q", e.Error.Message)
			}
		})
	}
}
