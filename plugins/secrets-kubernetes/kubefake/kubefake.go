// Package kubefake is a local stand-in for the part of the Kubernetes API
// that reads secrets: GET /api/v1/namespaces/{namespace}/secrets/{name}
// over TLS, behind "Authorization: Bearer <service-account token>". A
// token it does not know gets 401; a namespace outside the token's RBAC
// grant gets 403; a missing secret gets 404; each as a metav1.Status
// body, as the real API server answers.
//
// It also serves watches, GET /api/v1/namespaces/{namespace}/secrets
// ?watch=1&fieldSelector=metadata.name%3D{name}&resourceVersion={rv}: a
// stream of watch events (ADDED, MODIFIED, DELETED) after rv, or, with
// no rv, the secret as it is now followed by its changes. A rv older than
// the last Compact gets an ERROR event with a 410 Expired status, as the
// API server does once its watch cache has moved on.
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
	"time"
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

	events    []event
	compacted int
	changed   chan struct{} // closed and replaced at each change
	closeAll  chan struct{} // closed and replaced by Compact
	watches   int
}

// event is one change, for watches.
type event struct {
	rv   int
	typ  string
	name string
	obj  map[string]any
}

// New starts a fake that accepts token for reads in namespace.
func New(token, namespace string) *Server {
	s := &Server{token: token, namespace: namespace, secrets: map[string]map[string][]byte{}, versions: map[string]int{},
		changed: make(chan struct{}), closeAll: make(chan struct{})}
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
	s.put(name, data)
}

// put is Put with s.mu held.
func (s *Server) put(name string, data map[string]string) {
	d := map[string][]byte{}
	for k, v := range data {
		d[k] = []byte(v)
	}
	typ := "MODIFIED"
	if _, ok := s.secrets[name]; !ok {
		typ = "ADDED"
	}
	s.secrets[name] = d
	s.rv++
	s.versions[name] = s.rv
	s.record(typ, name, s.object(name))
}

// Delete removes a secret.
func (s *Server) Delete(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.secrets[name]; !ok {
		return
	}
	obj := s.object(name)
	delete(s.secrets, name)
	s.rv++
	obj["metadata"].(map[string]any)["resourceVersion"] = strconv.Itoa(s.rv)
	s.record("DELETED", name, obj)
}

// Compact ends every open watch, updates a secret and forgets the
// history before it: a watch resumed from an older resourceVersion gets
// 410 Expired and must read the secret again.
func (s *Server) Compact(name string, data map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.closeAll)
	s.closeAll = make(chan struct{})
	s.put(name, data)
	s.compacted = s.rv
	s.events = nil
}

// Watches is how many watches are open now.
func (s *Server) Watches() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.watches
}

// record appends an event and wakes the watches; s.mu is held.
func (s *Server) record(typ, name string, obj map[string]any) {
	s.events = append(s.events, event{rv: s.rv, typ: typ, name: name, obj: obj})
	close(s.changed)
	s.changed = make(chan struct{})
}

// object is a secret as the API returns it; s.mu is held.
func (s *Server) object(name string) map[string]any {
	enc := map[string]string{}
	for k, v := range s.secrets[name] {
		enc[k] = base64.StdEncoding.EncodeToString(v)
	}
	return map[string]any{
		"kind": "Secret", "apiVersion": "v1", "type": "Opaque",
		"metadata": map[string]any{"name": name, "namespace": s.namespace, "resourceVersion": strconv.Itoa(s.versions[name]), "uid": fmt.Sprintf("uid-%s", name)},
		"data":     enc,
	}
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
	if r.Method == http.MethodGet && len(parts) == 5 && parts[0] == "api" && parts[1] == "v1" && parts[2] == "namespaces" && parts[4] == "secrets" && r.URL.Query().Get("watch") != "" {
		s.watch(w, r, parts[3])
		return
	}
	if r.Method != http.MethodGet || len(parts) != 6 || parts[0] != "api" || parts[1] != "v1" || parts[2] != "namespaces" || parts[4] != "secrets" {
		status(w, http.StatusNotFound, "NotFound", "the server could not find the requested resource")
		return
	}
	ns, name := parts[3], parts[5]
	if ns != s.namespace {
		status(w, http.StatusForbidden, "Forbidden", fmt.Sprintf(`secrets %q is forbidden: User "system:serviceaccount:%s:llmproxy" cannot get resource "secrets" in API group "" in the namespace %q`, name, s.namespace, ns))
		return
	}
	if _, ok := s.secrets[name]; !ok {
		status(w, http.StatusNotFound, "NotFound", fmt.Sprintf(`secrets %q not found`, name))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(s.object(name))
}

// watch streams the events of one secret; it is called with s.mu held
// and releases it while it waits.
func (s *Server) watch(w http.ResponseWriter, r *http.Request, ns string) {
	q := r.URL.Query()
	name, ok := strings.CutPrefix(q.Get("fieldSelector"), "metadata.name=")
	if ns != s.namespace {
		status(w, http.StatusForbidden, "Forbidden", fmt.Sprintf(`secrets is forbidden: User "system:serviceaccount:%s:llmproxy" cannot watch resource "secrets" in API group "" in the namespace %q`, s.namespace, ns))
		return
	}
	if !ok || name == "" || strings.Contains(name, ",") {
		status(w, http.StatusForbidden, "Forbidden", `secrets is forbidden: the role grants watch on one secret only (fieldSelector=metadata.name=<name>)`)
		return
	}
	flusher, _ := w.(http.Flusher)
	enc := json.NewEncoder(w)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	send := func(typ string, obj map[string]any) bool {
		if err := enc.Encode(map[string]any{"type": typ, "object": obj}); err != nil {
			return false
		}
		if flusher != nil {
			flusher.Flush()
		}
		return true
	}
	from := -1 // -1: the current state first
	if v := q.Get("resourceVersion"); v != "" && v != "0" {
		n, err := strconv.Atoi(v)
		if err != nil {
			send("ERROR", map[string]any{"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "BadRequest", "code": 400, "message": "invalid resourceVersion"})
			return
		}
		if n < s.compacted {
			send("ERROR", map[string]any{"kind": "Status", "apiVersion": "v1", "metadata": map[string]any{}, "status": "Failure", "reason": "Expired", "code": http.StatusGone,
				"message": fmt.Sprintf("too old resource version: %d (%d)", n, s.compacted)})
			return
		}
		from = n
	}
	if from < 0 {
		if _, exists := s.secrets[name]; exists {
			send("ADDED", s.object(name))
		}
		from = s.rv
	}
	s.watches++
	defer func() { s.watches-- }()
	timeout := time.Duration(0)
	if t, err := strconv.Atoi(q.Get("timeoutSeconds")); err == nil && t > 0 {
		timeout = time.Duration(t) * time.Second
	}
	var expire <-chan time.Time
	if timeout > 0 {
		expire = time.After(timeout)
	}
	for {
		for _, e := range s.events {
			if e.rv > from && e.name == name {
				if !send(e.typ, e.obj) {
					return
				}
			}
		}
		from = s.rv
		changed, closeAll := s.changed, s.closeAll
		s.mu.Unlock()
		select {
		case <-changed:
			s.mu.Lock()
		case <-closeAll:
			s.mu.Lock()
			return
		case <-expire:
			s.mu.Lock()
			return
		case <-r.Context().Done():
			s.mu.Lock()
			return
		}
	}
}
