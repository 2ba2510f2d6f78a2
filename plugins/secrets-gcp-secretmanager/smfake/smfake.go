// Package smfake is an in-process Google Cloud Secret Manager for tests:
// a gRPC server of google.cloud.secretmanager.v1.SecretManagerService
// (AccessSecretVersion and GetSecret) on loopback with TLS and its own CA,
// and a GCE metadata server that hands out access tokens. Every call to
// Secret Manager must carry a bearer token the metadata server issued or
// a self-signed service-account JWT signed with the key of a known
// service account; anything else is UNAUTHENTICATED.
package smfake

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"hash/crc32"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Scope is the OAuth scope Secret Manager accepts.
const Scope = "https://www.googleapis.com/auth/cloud-platform"

// Server is the fake Secret Manager and metadata server.
type Server struct {
	secretmanagerpb.UnimplementedSecretManagerServiceServer

	project string
	grpc    *grpc.Server
	lis     net.Listener
	md      *httptest.Server
	caPEM   []byte

	mu       sync.Mutex
	secrets  map[string]*secret // by secret id
	tokens   map[string]time.Time
	accounts map[string]*rsa.PublicKey // service-account email → key
	accesses int
	refused  int
	mdTokens int
	jwts     int
	// subject and audience are what the STS token exchange accepts.
	subject, audience string
	exchanges         int
	stsRefused        int
	down              bool
	corrupt           bool
}

type secret struct {
	versions []string // data by version number - 1
	expire   time.Time
}

// New starts the fake for one project (id and number are both
// accepted in names: the number is "123456789012").
func New(project string) (*Server, error) {
	cert, caPEM, err := selfSigned()
	if err != nil {
		return nil, err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{project: project, lis: lis, caPEM: caPEM, secrets: map[string]*secret{}, tokens: map[string]time.Time{}, accounts: map[string]*rsa.PublicKey{}}
	s.grpc = grpc.NewServer(grpc.Creds(credentials.NewServerTLSFromCert(&cert)))
	secretmanagerpb.RegisterSecretManagerServiceServer(s.grpc, s)
	go s.grpc.Serve(lis)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /computeMetadata/v1/instance/service-accounts/default/token", s.metadataToken)
	mux.HandleFunc("GET /computeMetadata/v1/project/project-id", s.metadataValue(project))
	mux.HandleFunc("GET /computeMetadata/v1/universe/universe-domain", s.metadataValue("googleapis.com"))
	mux.HandleFunc("GET /computeMetadata/v1/instance/service-accounts/default/email", s.metadataValue("llmproxy@"+project+".iam.gserviceaccount.com"))
	mux.HandleFunc("GET /computeMetadata/v1/", s.metadataValue(""))
	mux.HandleFunc("POST /v1/token", s.stsToken)
	s.md = httptest.NewServer(mux)
	return s, nil
}

// Close stops both servers.
func (s *Server) Close() {
	s.grpc.Stop()
	s.md.Close()
}

// Endpoint is the Secret Manager address, host:port.
func (s *Server) Endpoint() string { return s.lis.Addr().String() }

// MetadataHost is the metadata server's host:port, for GCE_METADATA_HOST.
func (s *Server) MetadataHost() string { return strings.TrimPrefix(s.md.URL, "http://") }

// CAPEM is the PEM certificate clients must trust for Endpoint.
func (s *Server) CAPEM() []byte { return s.caPEM }

// ServiceAccountJSON returns a service-account key file the fake
// accepts: its key signs the self-signed JWTs the client sends.
func (s *Server) ServiceAccountJSON(name string) ([]byte, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	email := name + "@" + s.project + ".iam.gserviceaccount.com"
	s.mu.Lock()
	s.accounts[email] = &key.PublicKey
	s.mu.Unlock()
	id := make([]byte, 20)
	rand.Read(id)
	return json.Marshal(map[string]string{
		"type": "service_account", "project_id": s.project, "private_key_id": hex.EncodeToString(id),
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": email, "client_id": "1000000000000000001",
		"auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": "https://oauth2.googleapis.com/token",
	})
}

// ExternalAccountJSON returns a workload identity federation credential
// config (type external_account) whose subject token is read from
// tokenFile and exchanged at the fake's STS endpoint; the fake accepts
// subject as that token.
func (s *Server) ExternalAccountJSON(tokenFile, subject string) ([]byte, error) {
	audience := "//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/llmproxy/providers/kube"
	s.mu.Lock()
	s.subject, s.audience = subject, audience
	s.mu.Unlock()
	return json.Marshal(map[string]any{
		"type": "external_account", "audience": audience,
		"subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
		"token_url":          s.md.URL + "/v1/token",
		"credential_source":  map[string]any{"file": tokenFile},
	})
}

// stsToken is the RFC 8693 token exchange of Google's STS: a subject
// token for an access token.
func (s *Server) stsToken(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
		return
	}
	f := r.PostForm
	s.mu.Lock()
	ok := s.subject != "" && f.Get("grant_type") == "urn:ietf:params:oauth:grant-type:token-exchange" &&
		f.Get("subject_token") == s.subject && f.Get("audience") == s.audience &&
		f.Get("subject_token_type") == "urn:ietf:params:oauth:token-type:jwt" && strings.Contains(f.Get("scope"), Scope)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if !ok {
		s.mu.Lock()
		s.stsRefused++
		s.mu.Unlock()
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(map[string]string{"error": "invalid_grant", "error_description": "The subject token is invalid or the audience does not match."})
		return
	}
	b := make([]byte, 24)
	rand.Read(b)
	tok := "ya29.sts-" + hex.EncodeToString(b)
	s.mu.Lock()
	s.tokens[tok] = time.Now().Add(time.Hour)
	s.exchanges++
	s.mu.Unlock()
	json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "issued_token_type": "urn:ietf:params:oauth:token-type:access_token", "token_type": "Bearer", "expires_in": 3600})
}

// Add adds a version to a secret (creating it) and returns the version
// number.
func (s *Server) Add(id, data string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec := s.secrets[id]
	if sec == nil {
		sec = &secret{}
		s.secrets[id] = sec
	}
	sec.versions = append(sec.versions, data)
	return len(sec.versions)
}

// SetExpire sets a secret's expire_time (zero: none).
func (s *Server) SetExpire(id string, t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sec := s.secrets[id]; sec != nil {
		sec.expire = t
	}
}

// SetDown makes every call fail with UNAVAILABLE (an outage) or recover.
func (s *Server) SetDown(down bool) {
	s.mu.Lock()
	s.down = down
	s.mu.Unlock()
}

// SetCorrupt makes AccessSecretVersion send a wrong data_crc32c.
func (s *Server) SetCorrupt(c bool) {
	s.mu.Lock()
	s.corrupt = c
	s.mu.Unlock()
}

// Stats is what the fake has seen.
type Stats struct {
	// Accesses is AccessSecretVersion calls that were authenticated.
	Accesses int
	// Refused is calls with a missing or unknown credential.
	Refused int
	// MetadataTokens is tokens the metadata server issued.
	MetadataTokens int
	// JWTs is calls authenticated with a service-account JWT.
	JWTs int
	// Exchanges is tokens the STS token exchange issued, and
	// ExchangesRefused the exchanges it refused.
	Exchanges, ExchangesRefused int
}

// Stats returns what the fake has seen.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Accesses: s.accesses, Refused: s.refused, MetadataTokens: s.mdTokens, JWTs: s.jwts, Exchanges: s.exchanges, ExchangesRefused: s.stsRefused}
}

func (s *Server) metadataValue(v string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Metadata-Flavor") != "Google" {
			http.Error(w, "Missing Metadata-Flavor:Google header.", http.StatusForbidden)
			return
		}
		if v == "" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Metadata-Flavor", "Google")
		w.Header().Set("Content-Type", "application/text")
		w.Write([]byte(v))
	}
}

func (s *Server) metadataToken(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Metadata-Flavor") != "Google" {
		http.Error(w, "Missing Metadata-Flavor:Google header.", http.StatusForbidden)
		return
	}
	if sc := r.URL.Query().Get("scopes"); sc != "" && !strings.Contains(sc, Scope) {
		http.Error(w, "scope not granted", http.StatusForbidden)
		return
	}
	b := make([]byte, 24)
	rand.Read(b)
	tok := "ya29.fake-" + hex.EncodeToString(b)
	s.mu.Lock()
	s.tokens[tok] = time.Now().Add(time.Hour)
	s.mdTokens++
	s.mu.Unlock()
	w.Header().Set("Metadata-Flavor", "Google")
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "expires_in": 3599, "token_type": "Bearer"})
}

// admit lets a call through: its bearer token must be valid and the
// service up. The caller holds s.mu.
func (s *Server) admit(ctx context.Context) error {
	if err := s.authorize(ctx); err != nil {
		return err
	}
	if s.down {
		return status.Error(codes.Unavailable, "The service is currently unavailable.")
	}
	return nil
}

// authorize checks the call's bearer token; the caller holds s.mu.
func (s *Server) authorize(ctx context.Context) error {
	md, _ := metadata.FromIncomingContext(ctx)
	var auth string
	if v := md.Get("authorization"); len(v) == 1 {
		auth = v[0]
	}
	tok, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok {
		s.refused++
		return status.Error(codes.Unauthenticated, "Request is missing required authentication credential.")
	}
	if exp, known := s.tokens[tok]; known && time.Now().Before(exp) {
		return nil
	}
	if s.validJWT(tok) {
		s.jwts++
		return nil
	}
	s.refused++
	return status.Error(codes.Unauthenticated, "Request had invalid authentication credentials.")
}

// validJWT checks a self-signed service-account JWT: RS256, signed by a
// known account's key, issued by and about that account, for the
// cloud-platform scope or the Secret Manager audience, not expired.
func (s *Server) validJWT(tok string) bool {
	var claims struct {
		jwt.RegisteredClaims
		Scope string `json:"scope"`
	}
	t, err := jwt.ParseWithClaims(tok, &claims, func(t *jwt.Token) (any, error) {
		iss, _ := t.Claims.GetIssuer()
		if k := s.accounts[iss]; k != nil {
			return k, nil
		}
		return nil, fmt.Errorf("unknown issuer %q", iss)
	}, jwt.WithValidMethods([]string{"RS256"}), jwt.WithExpirationRequired(), jwt.WithIssuedAt())
	if err != nil || !t.Valid || claims.Subject != claims.Issuer {
		return false
	}
	if claims.Scope != "" {
		return strings.Contains(claims.Scope, Scope)
	}
	for _, a := range claims.Audience {
		if strings.Contains(a, "secretmanager") {
			return true
		}
	}
	return false
}

// parse splits projects/{p}/secrets/{s}[/versions/{v}].
func (s *Server) parse(name string, withVersion bool) (string, string, error) {
	p := strings.Split(name, "/")
	ok := len(p) >= 4 && p[0] == "projects" && p[2] == "secrets"
	if withVersion {
		ok = ok && len(p) == 6 && p[4] == "versions"
	} else {
		ok = ok && len(p) == 4
	}
	if !ok {
		return "", "", status.Errorf(codes.InvalidArgument, "Invalid resource field value in the request: %s", name)
	}
	if p[1] != s.project && p[1] != "123456789012" {
		return "", "", status.Errorf(codes.PermissionDenied, "Permission 'secretmanager.versions.access' denied for resource '%s' (or it may not exist).", name)
	}
	v := ""
	if withVersion {
		v = p[5]
	}
	return p[3], v, nil
}

// AccessSecretVersion implements SecretManagerServiceServer.
func (s *Server) AccessSecretVersion(ctx context.Context, r *secretmanagerpb.AccessSecretVersionRequest) (*secretmanagerpb.AccessSecretVersionResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.admit(ctx); err != nil {
		return nil, err
	}
	id, v, err := s.parse(r.GetName(), true)
	if err != nil {
		return nil, err
	}
	s.accesses++
	sec := s.secrets[id]
	if sec == nil {
		return nil, status.Errorf(codes.NotFound, "Secret [projects/123456789012/secrets/%s] not found or has no versions.", id)
	}
	n := len(sec.versions)
	if v != "latest" {
		n, err = strconv.Atoi(v)
		if err != nil || n < 1 {
			return nil, status.Errorf(codes.InvalidArgument, "Invalid secret version: %s", v)
		}
		if n > len(sec.versions) {
			return nil, status.Errorf(codes.NotFound, "Secret Version [projects/123456789012/secrets/%s/versions/%d] not found.", id, n)
		}
	}
	data := []byte(sec.versions[n-1])
	crc := int64(crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli)))
	if s.corrupt {
		crc++
	}
	return &secretmanagerpb.AccessSecretVersionResponse{
		Name:    fmt.Sprintf("projects/123456789012/secrets/%s/versions/%d", id, n),
		Payload: &secretmanagerpb.SecretPayload{Data: data, DataCrc32C: &crc},
	}, nil
}

// GetSecret implements SecretManagerServiceServer: the secret's
// metadata, with its expire_time when it has one.
func (s *Server) GetSecret(ctx context.Context, r *secretmanagerpb.GetSecretRequest) (*secretmanagerpb.Secret, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.admit(ctx); err != nil {
		return nil, err
	}
	id, _, err := s.parse(r.GetName(), false)
	if err != nil {
		return nil, err
	}
	sec := s.secrets[id]
	if sec == nil {
		return nil, status.Errorf(codes.NotFound, "Secret [projects/123456789012/secrets/%s] not found.", id)
	}
	out := &secretmanagerpb.Secret{Name: "projects/123456789012/secrets/" + id, CreateTime: timestamppb.Now()}
	if !sec.expire.IsZero() {
		out.Expiration = &secretmanagerpb.Secret_ExpireTime{ExpireTime: timestamppb.New(sec.expire)}
	}
	return out, nil
}

// selfSigned makes a CA-signed-by-itself certificate for 127.0.0.1.
func selfSigned() (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "smfake"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	return cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}
