// Package vaultfake is a local stand-in for the parts of the HashiCorp
// Vault HTTP API that llmproxy uses, speaking Vault's wire format:
//
//   - auth: POST|PUT /v1/auth/approle/login {role_id, secret_id} and
//     /v1/auth/kubernetes/login {role, jwt}, each returning an auth block
//     with a client token; GET /v1/auth/token/lookup-self and
//     POST|PUT /v1/auth/token/renew-self;
//   - KV v2: GET /v1/<mount>/data/<path>[?version=N];
//   - the AWS secrets engine: GET /v1/aws/creds/<role> and
//     GET|POST|PUT /v1/aws/sts/<role>, minting a new key pair per read with
//     a lease;
//   - leases: PUT /v1/sys/leases/renew and /v1/sys/leases/revoke.
//
// Every call but the logins must carry, in X-Vault-Token, a token the
// fake issued (or the root token) that has not expired; other calls get
// 403 {"errors":["permission denied"]}. SetDown makes every call answer
// 503, as a sealed or unreachable Vault would. Keys reports whether an
// AWS key pair it minted is still valid, for a provider fake to check
// signatures with.
package vaultfake

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a Server.
type Options struct {
	// RootToken is always accepted; empty means none is.
	RootToken string
	// RoleID and SecretID are the AppRole credentials accepted at
	// auth/approle/login.
	RoleID, SecretID string
	// KubernetesRole and ServiceAccountJWT are what auth/kubernetes/login
	// accepts.
	KubernetesRole, ServiceAccountJWT string
	// TokenTTL is the lifetime of issued tokens (default 1h); renew-self
	// extends it by the same.
	TokenTTL time.Duration
	// AWSRole is the role served under aws/creds/ and aws/sts/, and
	// LeaseTTL the lifetime of each key pair it mints (default 1h).
	AWSRole  string
	LeaseTTL time.Duration
	// RenewableLeases makes the AWS engine's leases renewable (as for
	// iam_user roles) up to MaxLeaseTTL from their issue (default three
	// times LeaseTTL); otherwise renewing one fails (as for STS roles).
	RenewableLeases bool
	MaxLeaseTTL     time.Duration
	// Now is the fake's clock (default time.Now).
	Now func() time.Time
}

// Server is the fake Vault. Its methods are safe for concurrent use.
type Server struct {
	opts Options
	ts   *httptest.Server
	down atomic.Bool

	mu      sync.Mutex
	tokens  map[string]time.Time // token → expiry
	kv      map[string][]map[string]any
	leases  map[string]*lease
	keys    map[string]*lease // access key id → lease
	minted  int
	renewed int
	calls   map[string]int
}

type lease struct {
	id                   string
	accessKey, secretKey string
	token                string
	issued, expires      time.Time
	revoked              bool
}

// New returns a Server; call Start to listen.
func New(o Options) *Server {
	if o.TokenTTL <= 0 {
		o.TokenTTL = time.Hour
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = time.Hour
	}
	if o.MaxLeaseTTL <= 0 {
		o.MaxLeaseTTL = 3 * o.LeaseTTL
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Server{opts: o, tokens: map[string]time.Time{}, kv: map[string][]map[string]any{},
		leases: map[string]*lease{}, keys: map[string]*lease{}, calls: map[string]int{}}
}

// Start serves on a fresh port on 127.0.0.1.
func (s *Server) Start() { s.ts = httptest.NewServer(s) }

// URL is the server's address, for VAULT_ADDR.
func (s *Server) URL() string { return s.ts.URL }

// Close stops the server.
func (s *Server) Close() {
	if s.ts != nil {
		s.ts.CloseClientConnections()
		s.ts.Close()
	}
}

// SetDown makes every call answer 503 (true) or be served again (false).
func (s *Server) SetDown(down bool) { s.down.Store(down) }

// PutKV writes a new version of the KV v2 secret at mount/path.
func (s *Server) PutKV(mount, path string, data map[string]any) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := mount + "/" + path
	s.kv[k] = append(s.kv[k], data)
	return len(s.kv[k])
}

// Keys returns the secret key and session token of a key pair the AWS
// engine minted, if its lease has neither expired nor been revoked.
func (s *Server) Keys(accessKeyID string) (secretKey, sessionToken string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.keys[accessKeyID]
	if l == nil || l.revoked || !s.opts.Now().Before(l.expires) {
		return "", "", false
	}
	return l.secretKey, l.token, true
}

// SecretKeys returns the secret keys and session tokens of every key pair
// minted so far, e.g. to check that none of them reaches a log.
func (s *Server) SecretKeys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, 2*len(s.leases))
	for _, l := range s.leases {
		out = append(out, l.secretKey, l.token)
	}
	return out
}

// Minted counts the AWS key pairs issued.
func (s *Server) Minted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.minted
}

// Calls counts the calls to an endpoint kind: "approle", "kubernetes",
// "renew-self", "lookup-self", "kv", "aws", "renew", "revoke".
func (s *Server) Calls(kind string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[kind]
}

type authBlock struct {
	ClientToken   string   `json:"client_token"`
	Accessor      string   `json:"accessor"`
	Policies      []string `json:"policies"`
	TokenPolicies []string `json:"token_policies"`
	LeaseDuration int      `json:"lease_duration"`
	Renewable     bool     `json:"renewable"`
}

type response struct {
	RequestID     string     `json:"request_id"`
	LeaseID       string     `json:"lease_id"`
	Renewable     bool       `json:"renewable"`
	LeaseDuration int        `json:"lease_duration"`
	Data          any        `json:"data"`
	WrapInfo      any        `json:"wrap_info"`
	Warnings      []string   `json:"warnings"`
	Auth          *authBlock `json:"auth"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeErrors(w http.ResponseWriter, status int, msgs ...string) {
	writeJSON(w, status, map[string][]string{"errors": msgs})
}

func random(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.down.Load() {
		writeErrors(w, http.StatusServiceUnavailable, "Vault is sealed")
		return
	}
	path, ok := strings.CutPrefix(r.URL.Path, "/v1/")
	if !ok {
		writeErrors(w, http.StatusNotFound)
		return
	}
	write := r.Method == http.MethodPost || r.Method == http.MethodPut
	var body map[string]any
	if write {
		b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if len(b) > 0 && json.Unmarshal(b, &body) != nil {
			writeErrors(w, http.StatusBadRequest, "failed to parse JSON input")
			return
		}
	}
	str := func(k string) string { v, _ := body[k].(string); return v }
	switch {
	case path == "auth/approle/login" && write:
		s.count("approle")
		if s.opts.RoleID == "" || str("role_id") != s.opts.RoleID || str("secret_id") != s.opts.SecretID {
			writeErrors(w, http.StatusBadRequest, "invalid role or secret ID")
			return
		}
		s.login(w)
		return
	case path == "auth/kubernetes/login" && write:
		s.count("kubernetes")
		if s.opts.KubernetesRole == "" || str("role") != s.opts.KubernetesRole || str("jwt") != s.opts.ServiceAccountJWT {
			writeErrors(w, http.StatusForbidden, "permission denied")
			return
		}
		s.login(w)
		return
	}
	token := r.Header.Get("X-Vault-Token")
	if !s.tokenValid(token) {
		writeErrors(w, http.StatusForbidden, "permission denied")
		return
	}
	switch {
	case path == "auth/token/lookup-self" && r.Method == http.MethodGet:
		s.count("lookup-self")
		s.mu.Lock()
		ttl := int(s.ttl(token).Seconds())
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, response{RequestID: random(8), Data: map[string]any{"ttl": ttl, "renewable": token != s.opts.RootToken}})
	case path == "auth/token/renew-self" && write:
		s.count("renew-self")
		if token == s.opts.RootToken {
			writeErrors(w, http.StatusBadRequest, "lease is not renewable")
			return
		}
		s.mu.Lock()
		s.tokens[token] = s.opts.Now().Add(s.opts.TokenTTL)
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, response{RequestID: random(8), Auth: &authBlock{ClientToken: token, LeaseDuration: int(s.opts.TokenTTL.Seconds()), Renewable: true}})
	case path == "sys/leases/renew" && write:
		s.count("renew")
		s.renew(w, str("lease_id"), body["increment"])
	case path == "sys/leases/revoke" && write:
		s.count("revoke")
		s.mu.Lock()
		if l := s.leases[str("lease_id")]; l != nil {
			l.revoked = true
		}
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	case s.opts.AWSRole != "" && (path == "aws/creds/"+s.opts.AWSRole && r.Method == http.MethodGet ||
		path == "aws/sts/"+s.opts.AWSRole && (r.Method == http.MethodGet || write)):
		s.count("aws")
		s.mintAWS(w, path)
	case strings.HasPrefix(path, "aws/"):
		writeErrors(w, http.StatusBadRequest, fmt.Sprintf("role %q not found", strings.TrimPrefix(path, "aws/creds/")))
	case r.Method == http.MethodGet && strings.Contains(path, "/data/"):
		s.count("kv")
		s.readKV(w, r, path)
	default:
		writeErrors(w, http.StatusNotFound)
	}
}

// renew extends an AWS engine lease by increment seconds (default the
// lease TTL), never past its maximum lifetime.
func (s *Server) renew(w http.ResponseWriter, id string, increment any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.leases[id]
	now := s.opts.Now()
	switch {
	case l == nil || l.revoked || !now.Before(l.expires):
		writeErrors(w, http.StatusBadRequest, "lease not found or lease is not renewable")
		return
	case !s.opts.RenewableLeases:
		// AWS engine leases of STS type cannot be extended.
		writeErrors(w, http.StatusBadRequest, "lease is not renewable")
		return
	}
	inc := s.opts.LeaseTTL
	if n, ok := increment.(float64); ok && n > 0 {
		inc = time.Duration(n) * time.Second
	}
	l.expires = now.Add(inc)
	if limit := l.issued.Add(s.opts.MaxLeaseTTL); l.expires.After(limit) {
		l.expires = limit
	}
	s.renewed++
	writeJSON(w, http.StatusOK, response{RequestID: random(8), LeaseID: l.id, Renewable: true, LeaseDuration: int(l.expires.Sub(now).Round(time.Second) / time.Second)})
}

// Revoked reports whether the lease behind an access key id was revoked.
func (s *Server) Revoked(accessKeyID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.keys[accessKeyID]
	return l != nil && l.revoked
}

// Renewed is how many lease renewals succeeded.
func (s *Server) Renewed() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.renewed
}

func (s *Server) count(kind string) {
	s.mu.Lock()
	s.calls[kind]++
	s.mu.Unlock()
}

func (s *Server) tokenValid(token string) bool {
	if token == "" {
		return false
	}
	if s.opts.RootToken != "" && token == s.opts.RootToken {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.tokens[token]
	return ok && s.opts.Now().Before(exp)
}

// ttl is what is left of a token's life; the caller holds mu.
func (s *Server) ttl(token string) time.Duration {
	if token == s.opts.RootToken {
		return 0
	}
	return s.tokens[token].Sub(s.opts.Now())
}

func (s *Server) login(w http.ResponseWriter) {
	token := "hvs." + random(12)
	s.mu.Lock()
	s.tokens[token] = s.opts.Now().Add(s.opts.TokenTTL)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, response{RequestID: random(8), Auth: &authBlock{
		ClientToken: token, Accessor: random(8), Policies: []string{"default", "llmproxy"}, TokenPolicies: []string{"default", "llmproxy"},
		LeaseDuration: int(s.opts.TokenTTL.Seconds()), Renewable: true,
	}})
}

func (s *Server) mintAWS(w http.ResponseWriter, path string) {
	s.mu.Lock()
	s.minted++
	l := &lease{
		id:        path + "/" + random(6),
		accessKey: fmt.Sprintf("ASIAVAULT%011d", s.minted),
		secretKey: random(20),
		token:     "FwoVAULT" + random(16),
		issued:    s.opts.Now(),
		expires:   s.opts.Now().Add(s.opts.LeaseTTL),
	}
	s.leases[l.id] = l
	s.keys[l.accessKey] = l
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, response{
		RequestID: random(8), LeaseID: l.id, LeaseDuration: int(s.opts.LeaseTTL / time.Second), Renewable: s.opts.RenewableLeases,
		Data: map[string]any{"access_key": l.accessKey, "secret_key": l.secretKey, "security_token": l.token, "arn": "arn:aws:sts::123456789012:assumed-role/llmproxy/vault"},
	})
}

func (s *Server) readKV(w http.ResponseWriter, r *http.Request, path string) {
	mount, rest, _ := strings.Cut(path, "/data/")
	s.mu.Lock()
	versions := s.kv[mount+"/"+rest]
	s.mu.Unlock()
	if len(versions) == 0 {
		writeErrors(w, http.StatusNotFound)
		return
	}
	n := len(versions)
	if v := r.URL.Query().Get("version"); v != "" && v != "0" {
		x, err := strconv.Atoi(v)
		if err != nil || x < 1 || x > len(versions) {
			writeErrors(w, http.StatusNotFound)
			return
		}
		n = x
	}
	writeJSON(w, http.StatusOK, response{RequestID: random(8), Data: map[string]any{
		"data": versions[n-1],
		"metadata": map[string]any{
			"created_time": s.opts.Now().UTC().Format(time.RFC3339Nano), "custom_metadata": nil,
			"deletion_time": "", "destroyed": false, "version": n,
		},
	}})
}
