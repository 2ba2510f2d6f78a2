package ocifake

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// InstancePrincipal fakes what an OCI compute instance uses to sign as
// itself: the instance metadata service (region and identity certificate
// under /opc/v2, behind "Authorization: Bearer Oracle") and the auth
// service's federation endpoint POST /v1/x509, which takes the leaf
// certificate and a session public key in a request signed with the leaf
// key, and returns a security token. The Server then trusts the session
// key under keyId "ST$<token>", as OCI does.
//
// Point oci-go-sdk at it with the variables Env returns.
type InstancePrincipal struct {
	server *Server
	region string

	caPEM, leafPEM, leafKeyPEM []byte
	leaf                       *x509.Certificate
	leafKey                    *rsa.PrivateKey

	mu     sync.Mutex
	tokens int

	srv *http.Server
	ln  net.Listener
}

// NewInstancePrincipal issues an intermediate CA and a leaf certificate
// for an instance of s's tenancy in region, and starts the metadata and
// auth endpoints on 127.0.0.1.
func NewInstancePrincipal(s *Server, region string) (*InstancePrincipal, error) {
	p := &InstancePrincipal{server: s, region: region}
	caKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("ocifake: ca key: %w", err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ocifake intermediate CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("ocifake: ca certificate: %w", err)
	}
	if p.leafKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		return nil, fmt.Errorf("ocifake: leaf key: %w", err)
	}
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2),
		Subject: pkix.Name{CommonName: "ocid1.instance.oc1.fake", OrganizationalUnit: []string{
			"opc-certtype:instance", "opc-instance:ocid1.instance.oc1.fake", "opc-compartment:" + s.opts.Compartment, "opc-tenant:" + s.opts.Tenancy}},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	caCert, _ := x509.ParseCertificate(caDER)
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, caCert, &p.leafKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("ocifake: leaf certificate: %w", err)
	}
	p.leaf, _ = x509.ParseCertificate(leafDER)
	p.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	p.leafPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER})
	p.leafKeyPEM = pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(p.leafKey)})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("ocifake: listen: %w", err)
	}
	p.ln = ln
	p.srv = &http.Server{Handler: http.HandlerFunc(p.serve), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// URL is the base URL of the metadata and auth endpoints.
func (p *InstancePrincipal) URL() string { return "http://" + p.ln.Addr().String() }

// Env is the environment that points oci-go-sdk's instance principal
// provider at the fake.
func (p *InstancePrincipal) Env() map[string]string {
	return map[string]string{
		"OCI_METADATA_BASE_URL":          p.URL() + "/opc/v2",
		"OCI_SDK_AUTH_CLIENT_REGION_URL": p.URL(),
	}
}

// Tokens is the number of security tokens issued.
func (p *InstancePrincipal) Tokens() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.tokens
}

// Close stops the endpoints.
func (p *InstancePrincipal) Close() error { return p.srv.Close() }

func (p *InstancePrincipal) serve(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/opc/v2/") {
		if r.Header.Get("Authorization") != "Bearer Oracle" {
			http.Error(w, "metadata requests need Authorization: Bearer Oracle", http.StatusUnauthorized)
			return
		}
		switch strings.TrimPrefix(r.URL.Path, "/opc/v2") {
		case "/instance/region":
			_, _ = io.WriteString(w, p.region)
		case "/identity/cert.pem":
			_, _ = w.Write(p.leafPEM)
		case "/identity/key.pem":
			_, _ = w.Write(p.leafKeyPEM)
		case "/identity/intermediate.pem":
			_, _ = w.Write(p.caPEM)
		default:
			http.NotFound(w, r)
		}
		return
	}
	if r.URL.Path != "/v1/x509" || r.Method != http.MethodPost {
		writeError(w, http.StatusNotFound, "NotFound", "Not found.")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		writeError(w, http.StatusBadRequest, "InvalidParameter", "unreadable body")
		return
	}
	// The federation request is signed with the leaf key under
	// <tenancy>/fed-x509-sha256/<certificate fingerprint>; the SDK's
	// federation signer leaves the host out.
	keyID := p.server.opts.Tenancy + "/fed-x509-sha256/" + sha256Colon(p.leaf.Raw)
	if err := verify(r, body, map[string]*rsa.PublicKey{keyID: &p.leafKey.PublicKey}, time.Now(), "date", "(request-target)"); err != nil {
		w.Header().Set("x-ocifake-auth-error", err.Error())
		writeError(w, http.StatusUnauthorized, "NotAuthenticated", "The required information to complete authentication was not provided or was incorrect.")
		return
	}
	var req struct {
		Certificate string `json:"certificate"`
		PublicKey   string `json:"publicKey"`
	}
	if err := json.Unmarshal(body, &req); err != nil || req.Certificate != base64.StdEncoding.EncodeToString(p.leaf.Raw) {
		writeError(w, http.StatusBadRequest, "InvalidParameter", "certificate does not match the instance")
		return
	}
	der, err := base64.StdEncoding.DecodeString(req.PublicKey)
	if err != nil {
		writeError(w, http.StatusBadRequest, "InvalidParameter", "publicKey is not base64")
		return
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	sessionKey, ok := pub.(*rsa.PublicKey)
	if err != nil || !ok {
		writeError(w, http.StatusBadRequest, "InvalidParameter", "publicKey is not an RSA public key")
		return
	}
	p.mu.Lock()
	p.tokens++
	n := p.tokens
	p.mu.Unlock()
	seg := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	token := seg(map[string]string{"alg": "RS256", "typ": "JWT", "kid": "ocifake"}) + "." +
		seg(map[string]any{"sub": "ocid1.instance.oc1.fake", "tenant": p.server.opts.Tenancy, "ptype": "instance",
			"exp": time.Now().Add(time.Hour).Unix(), "jti": fmt.Sprintf("ocifake-%d", n)}) + "." +
		base64.RawURLEncoding.EncodeToString([]byte("ocifake-signature"))
	p.server.TrustKey("ST$"+token, sessionKey)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{"token": token})
}

// sha256Colon is the colon-separated hex SHA-256 of b.
func sha256Colon(b []byte) string {
	sum := sha256Sum(b)
	hexes := make([]string, len(sum))
	for i, c := range sum {
		hexes[i] = fmt.Sprintf("%02x", c)
	}
	return strings.Join(hexes, ":")
}
