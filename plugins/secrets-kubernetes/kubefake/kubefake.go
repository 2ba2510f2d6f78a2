// Package kubefake is a local stand-in for the part of the Kubernetes API
// that reads secrets: GET /api/v1/namespaces/{namespace}/secrets/{name}
// over TLS, behind "Authorization: Bearer <service-account token>". A
// token it does not know gets 401; a namespace outside the token's RBAC
// grant gets 403; a missing secret gets 404; each as a metav1.Status
// body, as the real API server answers.
package kubefake

import (
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
)

// Server is the fake API server. Its methods are safe for concurrent use.
type Server struct {
	ts *httptest.Server

	mu        sync.Mutex
	token     string
	namespace string
	secrets   map[string]map[string][]byte
	versions  map[string]int
	rv        int
	requests  int
}

// New starts a fake that accepts token for reads in namespace.
func New(token, namespace string) *Server {
	s := &Server{token: token, namespace: namespace, secrets: map[string]map[string][]byte{}, versions: map[string]int{}}
	s.ts = httptest.NewTLSServer(s)
	return s
}

// URL is the API server's address.
func (s *Server) URL() string { return s.ts.URL }

// CAPEM is the PEM certificate clients must trust.
func (s *Server) CAPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.ts.Certificate().Raw})
}

// Close stops the server.
func (s *Server) Close() { s.ts.Close() }

// SetToken changes the accepted bearer token.
func (s *Server) SetToken(token string) {
	s.mu.Lock()
	s.token = token
	s.mu.Unlock()
}

// Put creates or updates a secret in the fake's namespace; its
// resourceVersion changes.
func (s *Server) Put(name string, data map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := map[string][]byte{}
	for k, v := range data {
		d[k] = []byte(v)
	}
	s.secrets[name] = d
	s.rv++
	s.versions[name] = s.rv
}

// Requests counts the secret reads received.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

func status(w http.ResponseWriter, code int, reason, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]any{
		"kind": "Status", "apiVersion": "v1", "metadata": map[string]any{},
		"status": "Failure", "message": msg, "reason": reason, "code": code,
	})
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(bearer), []byte(s.token)) != 1 {
		status(w, http.StatusUnauthorized, "Unauthorized", "Unauthorized")
		return
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if r.Method != http.MethodGet || len(parts) != 6 || parts[0] != "api" || parts[1] != "v1" || parts[2] != "namespaces" || parts[4] != "secrets" {
		status(w, http.StatusNotFound, "NotFound", "the server could not find the requested resource")
		return
	}
	ns, name := parts[3], parts[5]
	if ns != s.namespace {
		status(w, http.StatusForbidden, "Forbidden", fmt.Sprintf(`secrets %q is forbidden: User "system:serviceaccount:%s:llmproxy" cannot get resource "secrets" in API group "" in the namespace %q`, name, s.namespace, ns))
		return
	}
	data, ok := s.secrets[name]
	if !ok {
		status(w, http.StatusNotFound, "NotFound", fmt.Sprintf(`secrets %q not found`, name))
		return
	}
	enc := map[string]string{}
	for k, v := range data {
		enc[k] = base64.StdEncoding.EncodeToString(v)
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"kind": "Secret", "apiVersion": "v1", "type": "Opaque",
		"metadata": map[string]any{"name": name, "namespace": ns, "resourceVersion": strconv.Itoa(s.versions[name]), "uid": fmt.Sprintf("uid-%s", name)},
		"data":     enc,
	})
}
