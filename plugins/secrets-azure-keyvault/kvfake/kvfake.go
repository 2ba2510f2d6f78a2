// Package kvfake is an in-process Azure Key Vault and Microsoft Entra ID
// for tests, on one HTTPS server on loopback. The vault part answers
// "Get Secret" (GET /secrets/{name}[/{version}]) with Key Vault's
// challenge flow: a request without a bearer token gets 401 and a
// WWW-Authenticate header naming the fake authority and the vault
// resource; a request with a token the fake did not issue gets 401 too.
// The Entra part serves the OpenID configuration MSAL reads and a token
// endpoint for the client-credentials grant, with a client secret or a
// federated assertion, each checked; an App Service style managed
// identity endpoint (IDENTITY_ENDPOINT / IDENTITY_HEADER) issues tokens
// as well.
package kvfake

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Resource is the Key Vault audience tokens are asked for.
const Resource = "https://vault.azure.net"

// Identity is who may log in: one application with a client secret
// and/or a federated assertion, and the managed identity endpoint's
// header value.
type Identity struct {
	Tenant       string
	ClientID     string
	ClientSecret string
	// Assertion is the federated token (the content of the projected
	// service-account token file) the application accepts.
	Assertion string
	// IdentityHeader is the X-IDENTITY-HEADER value the managed identity
	// endpoint requires.
	IdentityHeader string
	// TokenLifetime is the lifetime of issued tokens (default one hour).
	TokenLifetime time.Duration
}

// Server is the fake.
type Server struct {
	srv *httptest.Server
	id  Identity

	mu       sync.Mutex
	secrets  map[string][]version // by name, oldest first
	tokens   map[string]time.Time // issued access tokens and their expiry
	grants   map[string]int       // token grants by kind
	reads    int
	refused  int
	down     bool
	lastAuth string
}

type version struct {
	id          string
	value       string
	contentType string
	expires     time.Time
	enabled     bool
}

// New starts the fake.
func New(id Identity) *Server {
	if id.TokenLifetime == 0 {
		id.TokenLifetime = time.Hour
	}
	s := &Server{id: id, secrets: map[string][]version{}, tokens: map[string]time.Time{}, grants: map[string]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /"+id.Tenant+"/v2.0/.well-known/openid-configuration", s.openID)
	mux.HandleFunc("POST /"+id.Tenant+"/oauth2/v2.0/token", s.token)
	mux.HandleFunc("GET /msi/token", s.managedIdentity)
	mux.HandleFunc("GET /secrets/", s.getSecret)
	s.srv = httptest.NewTLSServer(mux)
	return s
}

// Close stops the fake.
func (s *Server) Close() { s.srv.Close() }

// URL is the vault's URL and the authority host.
func (s *Server) URL() string { return s.srv.URL }

// CAPEM is the PEM certificate clients must trust.
func (s *Server) CAPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.srv.Certificate().Raw})
}

// Set adds a new version of a secret and returns its version id. A zero
// expires means the version does not expire.
func (s *Server) Set(name, value, contentType string, expires time.Time) string {
	b := make([]byte, 16)
	rand.Read(b)
	id := hex.EncodeToString(b)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.secrets[name] = append(s.secrets[name], version{id: id, value: value, contentType: contentType, expires: expires, enabled: true})
	return id
}

// Disable marks every version of a secret disabled.
func (s *Server) Disable(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.secrets[name] {
		s.secrets[name][i].enabled = false
	}
}

// SetDown makes the vault answer 503 (an outage) or recover.
func (s *Server) SetDown(down bool) {
	s.mu.Lock()
	s.down = down
	s.mu.Unlock()
}

// Reads is how many secret reads were served with a valid token.
func (s *Server) Reads() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reads
}

// Refused is how many secret reads carried a token the fake did not
// issue (or an expired one).
func (s *Server) Refused() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refused
}

// Grants is how many tokens were issued for a grant: "client_secret",
// "assertion" or "managed_identity".
func (s *Server) Grants(kind string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.grants[kind]
}

func (s *Server) openID(w http.ResponseWriter, r *http.Request) {
	base := s.srv.URL + "/" + s.id.Tenant
	writeJSON(w, http.StatusOK, map[string]any{
		"token_endpoint":                        base + "/oauth2/v2.0/token",
		"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
		"issuer":                                base + "/v2.0",
		"tenant_region_scope":                   "WW",
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
	})
}

// entraError writes Entra's OAuth error shape.
func entraError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]any{"error": code, "error_description": desc, "error_codes": []int{7000215}})
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		entraError(w, http.StatusBadRequest, "invalid_request", "unreadable form")
		return
	}
	f := r.PostForm
	switch {
	case f.Get("grant_type") != "client_credentials":
		entraError(w, http.StatusBadRequest, "unsupported_grant_type", "only client_credentials")
		return
	case f.Get("client_id") != s.id.ClientID:
		entraError(w, http.StatusBadRequest, "unauthorized_client", "AADSTS700016: application not found")
		return
	case !slices.Contains(strings.Fields(f.Get("scope")), Resource+"/.default"):
		entraError(w, http.StatusBadRequest, "invalid_scope", "AADSTS70011: scope "+f.Get("scope"))
		return
	}
	kind := ""
	switch {
	case f.Get("client_secret") != "":
		if s.id.ClientSecret == "" || f.Get("client_secret") != s.id.ClientSecret {
			entraError(w, http.StatusUnauthorized, "invalid_client", "AADSTS7000215: invalid client secret")
			return
		}
		kind = "client_secret"
	case f.Get("client_assertion") != "":
		if f.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" ||
			s.id.Assertion == "" || f.Get("client_assertion") != s.id.Assertion {
			entraError(w, http.StatusUnauthorized, "invalid_client", "AADSTS700213: no matching federated identity record")
			return
		}
		kind = "assertion"
	default:
		entraError(w, http.StatusUnauthorized, "invalid_client", "AADSTS7000216: client_assertion or client_secret required")
		return
	}
	tok, exp := s.issue(kind)
	writeJSON(w, http.StatusOK, map[string]any{
		"token_type": "Bearer", "access_token": tok,
		"expires_in": int(time.Until(exp).Seconds()), "ext_expires_in": int(time.Until(exp).Seconds()),
	})
}

func (s *Server) managedIdentity(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	switch {
	case s.id.IdentityHeader == "" || r.Header.Get("X-IDENTITY-HEADER") != s.id.IdentityHeader:
		writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "unauthorized", "error_description": "X-IDENTITY-HEADER missing or wrong"})
		return
	case q.Get("api-version") == "" || (q.Get("resource") != Resource && q.Get("resource") != Resource+"/"):
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_request", "error_description": "resource must be " + Resource})
		return
	case q.Get("client_id") != "" && q.Get("client_id") != s.id.ClientID:
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_request", "error_description": "no such user-assigned identity"})
		return
	}
	tok, exp := s.issue("managed_identity")
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": tok, "expires_on": strconv.FormatInt(exp.Unix(), 10),
		"resource": Resource, "token_type": "Bearer", "client_id": s.id.ClientID,
	})
}

func (s *Server) issue(kind string) (string, time.Time) {
	b := make([]byte, 18)
	rand.Read(b)
	tok := "kv-at-" + hex.EncodeToString(b)
	exp := time.Now().Add(s.id.TokenLifetime)
	s.mu.Lock()
	s.tokens[tok] = exp
	s.grants[kind]++
	s.mu.Unlock()
	return tok, exp
}

// kvError writes Key Vault's error shape.
func kvError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"code": code, "message": msg}})
}

func (s *Server) getSecret(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("api-version") == "" {
		kvError(w, http.StatusBadRequest, "BadParameter", "api-version is required")
		return
	}
	auth := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(auth, "Bearer ")
	s.mu.Lock()
	defer s.mu.Unlock()
	if !ok {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer authorization="%s/%s", resource="%s"`, s.srv.URL, s.id.Tenant, Resource))
		kvError(w, http.StatusUnauthorized, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.")
		return
	}
	if exp, known := s.tokens[tok]; !known || time.Now().After(exp) {
		s.refused++
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer authorization="%s/%s", resource="%s"`, s.srv.URL, s.id.Tenant, Resource))
		kvError(w, http.StatusUnauthorized, "Unauthorized", "AKV10032: Invalid issuer or expired token.")
		return
	}
	if s.down {
		kvError(w, http.StatusServiceUnavailable, "ServiceUnavailable", "The service is unavailable.")
		return
	}
	name, want, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/secrets/"), "/")
	versions := s.secrets[name]
	if len(versions) == 0 {
		kvError(w, http.StatusNotFound, "SecretNotFound", fmt.Sprintf("A secret with (name/id) %s was not found in this key vault.", name))
		return
	}
	v := versions[len(versions)-1]
	if want != "" {
		found := false
		for _, x := range versions {
			if strings.EqualFold(x.id, want) {
				v, found = x, true
			}
		}
		if !found {
			kvError(w, http.StatusNotFound, "SecretNotFound", fmt.Sprintf("A secret with (name/id) %s/%s was not found in this key vault.", name, want))
			return
		}
	}
	if !v.enabled {
		kvError(w, http.StatusForbidden, "Forbidden", "Operation get is not allowed on a disabled secret.")
		return
	}
	s.reads++
	attrs := map[string]any{"enabled": true, "created": time.Now().Unix(), "updated": time.Now().Unix(), "recoveryLevel": "Recoverable+Purgeable"}
	if !v.expires.IsZero() {
		attrs["exp"] = v.expires.Unix()
	}
	body := map[string]any{
		"value":      v.value,
		"id":         s.srv.URL + "/secrets/" + name + "/" + v.id,
		"attributes": attrs,
	}
	if v.contentType != "" {
		body["contentType"] = v.contentType
	}
	writeJSON(w, http.StatusOK, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
