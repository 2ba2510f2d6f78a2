package e2e

import (
	"net/http"
	"testing"

	"github.com/llmproxy/llmproxy/test/harness"
)

const quantum = "Quantum computers use qubits that hold superpositions of zero and one, " +
	"so some problems such as factoring and simulation of molecules become tractable.\n"

// testSimpleRAG uploads a document, presigns it and sends the presigned
// URL as a document part: the provider must receive the object's bytes
// under the key's name, with its type and text.
func testSimpleRAG(t *testing.T, s *storageHost) {
	key := s.prefix + "rag/quantum.md"
	s.put(t, key, "text/markdown", quantum)
	p := s.presign(t, key, "600")
	if p.ExpiresIn != 600 || p.Operation != "GetObject" {
		t.Errorf("expires_in = %d, operation %q; want the granted 600 and GetObject", p.ExpiresIn, p.Operation)
	}
	reply := s.chatReply(t, urlDoc(p.URL))
	wantDocs(t, reply, docLine("quantum.md", "text/markdown", quantum))
}

// testMultiDocument sends a URL document, a storage reference and an
// inline file part in one message; the provider receives all three in
// message order.
func testMultiDocument(t *testing.T, s *storageHost) {
	guide := "# Setup guide\n\nInstall the gateway, then point any OpenAI client at it.\n"
	u := s.docs.add("/"+s.backend.Type+"/multi/guide.md", "text/markdown", guide, false)
	notes := "Storage notes: objects are streamed through the plugin and never buffered whole.\n"
	key := s.prefix + "multi/notes.txt"
	s.put(t, key, "text/plain", notes)
	inline := "Inline attachment with meeting minutes about the quarterly roadmap.\n"

	reply := s.chatReply(t, urlDoc(u), storageDoc(ragBucket, key), fileDoc("minutes.txt", "text/plain", inline))
	wantDocs(t, reply,
		docLine("guide.md", "text/markdown", guide),
		docLine("notes.txt", "text/plain", notes),
		docLine("minutes.txt", "text/plain", inline))
}

// testURLDocumentCache sends the same URL document twice: the second
// request is answered from the cache, so the document server sees one
// fetch. A response marked no-store is fetched every time.
func testURLDocumentCache(t *testing.T, s *storageHost) {
	body := "Cached document: the gateway keeps fetched documents for the configured ttl.\n"
	cached := "/" + s.backend.Type + "/cache/cached.txt"
	noStore := "/" + s.backend.Type + "/cache/volatile.txt"
	cachedURL := s.docs.add(cached, "text/plain", body, false)
	noStoreURL := s.docs.add(noStore, "text/plain", body, true)

	tests := []struct {
		name      string
		url, path string
		wantHits  []int // after each of the requests
	}{
		{"cacheable", cachedURL, cached, []int{1, 1, 1}},
		{"no-store", noStoreURL, noStore, []int{1, 2, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i, want := range tt.wantHits {
				reply := s.chatReply(t, urlDoc(tt.url))
				wantDocs(t, reply, docLine(baseName(tt.path), "text/plain", body))
				if got := s.docs.hitCount(tt.path); got != want {
					t.Fatalf("after request %d the document server saw %d fetches, want %d", i+1, got, want)
				}
			}
		})
	}
}

// testStorageDocumentCache checks what the storage document cache may and
// may not do. Entries are keyed by the object's ETag and the object is
// opened (with the caller's rights) before every lookup, so a cached
// document is served again, a replaced object is seen at once, a deleted
// one is gone, and a caller without read rights is refused even though
// the content is cached.
func testStorageDocumentCache(t *testing.T, s *storageHost) {
	key := s.prefix + "cache/policy.md"
	v1 := "Version one of the policy: documents are cached by entity tag.\n"
	v2 := "Version two of the policy: replaced content must never be served stale.\n"
	first := s.put(t, key, "text/markdown", v1)
	doc := storageDoc(ragBucket, key)

	for i := range 2 {
		reply := s.chatReply(t, doc)
		wantDocs(t, reply, docLine("policy.md", "text/markdown", v1))
		if t.Failed() {
			t.Fatalf("request %d", i+1)
		}
	}

	status, out := s.chat(t, noStorageKey, doc)
	wantError(t, status, out, http.StatusForbidden, "document_access_denied")

	second := s.put(t, key, "text/markdown", v2)
	if second.ETag == first.ETag {
		t.Fatalf("replacing the object kept its ETag %q; the cache could not tell the versions apart", first.ETag)
	}
	wantDocs(t, s.chatReply(t, doc), docLine("policy.md", "text/markdown", v2))

	if status, _, out := s.Do(t, "DELETE", s.path("delete", ragBucket, key), ""); status != http.StatusOK {
		t.Fatalf("delete: status %d: %s", status, out)
	}
	status, out = s.chat(t, harness.Key, doc)
	wantError(t, status, out, http.StatusNotFound, "document_not_found")
}
