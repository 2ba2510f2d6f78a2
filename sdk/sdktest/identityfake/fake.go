// Package identityfake serves the token endpoints cloud workloads get their
// identity from, for tests of plugins that authenticate with workload
// identity: AWS STS AssumeRoleWithWebIdentity, the EKS Pod Identity
// (container credentials) endpoint and IMDSv2; the GCE/GKE metadata server
// and Google's STS token exchange; Microsoft Entra's token endpoint for
// federated client assertions and the Azure managed-identity endpoints.
//
// Each endpoint checks the credential a real one would: the projected
// service-account token, the IMDSv2 session token, the Metadata-Flavor or
// Metadata header. Everything the fake issues is recorded, so a fake of the
// data plane (bedrockfake, vertexfake, azurefake …) can accept exactly the
// keys and tokens issued here:
//
//	f := identityfake.New(identityfake.Options{WebIdentityToken: "jwt"})
//	defer f.Close()
//	t.Setenv("AWS_ENDPOINT_URL_STS", f.URL())
//	bedrock := bedrockfake.New(bedrockfake.Options{Keys: f.AWSKeys})
//
// The package uses only the standard library, so plugins of any cloud can
// import it in their tests.
package identityfake

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"
)

// DefaultTTL is the lifetime of issued credentials when Options.TTL is 0.
const DefaultTTL = time.Hour

// Options configures the fake. A field left empty disables the endpoint
// that checks it: the endpoint then refuses every request.
type Options struct {
	// WebIdentityToken is the projected service-account token AWS STS,
	// Google STS (as the subject token) and Entra (as the client
	// assertion) accept.
	WebIdentityToken string
	// RoleARN is the role AssumeRoleWithWebIdentity may assume; empty
	// accepts any.
	RoleARN string
	// PodIdentityToken is the token the container credentials endpoint
	// expects in the Authorization header (EKS Pod Identity).
	PodIdentityToken string
	// InstanceRole is the role name IMDS reports ("llmproxy-node" when
	// empty).
	InstanceRole string
	// GoogleAudience is the workload identity pool provider the Google STS
	// exchange accepts; empty accepts any.
	GoogleAudience string
	// GoogleProject is the project id the metadata server reports.
	GoogleProject string
	// AzureTenant and AzureClientID are what Entra expects in the token
	// path and the client_id field.
	AzureTenant   string
	AzureClientID string
	// IdentityHeader is the secret an App Service-style managed identity
	// endpoint (IDENTITY_ENDPOINT) expects in X-IDENTITY-HEADER.
	IdentityHeader string
	// TTL is the lifetime of issued credentials.
	TTL time.Duration
}

// Fake is a running identity fake. It serves plain HTTP on URL() and, for
// Entra (whose clients insist on https), TLS on TLSURL().
type Fake struct {
	opts  Options
	plain *httptest.Server
	tls   *httptest.Server

	mu     sync.Mutex
	keys   map[string]awsKey      // access key id → issued pair
	tokens map[string]time.Time   // bearer token → expiry
	imds   map[string]time.Time   // IMDSv2 session token → expiry
	calls  map[string]int         // endpoint name → requests accepted
	last   map[string]http.Header // endpoint name → last request headers
	seen   map[string]map[string]string
}

type awsKey struct {
	secret, session string
	expires         time.Time
}

// New starts a fake with o.
func New(o Options) *Fake {
	if o.TTL <= 0 {
		o.TTL = DefaultTTL
	}
	if o.InstanceRole == "" {
		o.InstanceRole = "llmproxy-node"
	}
	f := &Fake{opts: o, keys: map[string]awsKey{}, tokens: map[string]time.Time{}, imds: map[string]time.Time{},
		calls: map[string]int{}, last: map[string]http.Header{}, seen: map[string]map[string]string{}}
	f.plain = httptest.NewServer(f.handler(false))
	f.tls = httptest.NewTLSServer(f.handler(true))
	return f
}

// URL is the base URL of the plain-HTTP endpoints (STS, container
// credentials, IMDS, GCE metadata, Google STS, managed identity).
func (f *Fake) URL() string { return f.plain.URL }

// Host is URL without its scheme, the form GCE_METADATA_HOST takes.
func (f *Fake) Host() string { return f.plain.Listener.Addr().String() }

// TLSURL is the base URL of the https Entra authority.
func (f *Fake) TLSURL() string { return f.tls.URL }

// TLSClient returns an http.Client that trusts the Entra authority's
// certificate.
func (f *Fake) TLSClient() *http.Client { return f.tls.Client() }

// TLSCertificatePEM is the Entra authority's certificate in PEM form, for
// SSL_CERT_FILE in end-to-end tests.
func (f *Fake) TLSCertificatePEM() []byte { return certPEM(f.tls.Certificate().Raw) }

// Close stops both servers.
func (f *Fake) Close() {
	f.plain.Close()
	f.tls.Close()
}

// Calls returns how many requests endpoint accepted: "sts", "container",
// "imds", "gce", "google-sts", "entra", "msi".
func (f *Fake) Calls(endpoint string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[endpoint]
}

// Form returns the form fields of the last accepted request of endpoint.
func (f *Fake) Form(endpoint string) map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.seen[endpoint]
}

// AWSKeys reports the secret and session token of an access key id the
// fake issued and that has not expired; it has the shape of
// bedrockfake.Options.Keys.
func (f *Fake) AWSKeys(accessKeyID string) (secret, session string, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k, ok := f.keys[accessKeyID]
	if !ok || time.Now().After(k.expires) {
		return "", "", false
	}
	return k.secret, k.session, true
}

// Issued reports whether token is a bearer token the fake issued (Google or
// Entra) that has not expired.
func (f *Fake) Issued(token string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	exp, ok := f.tokens[token]
	return ok && time.Now().Before(exp)
}

// accept records an accepted request of endpoint.
func (f *Fake) accept(endpoint string, r *http.Request, form map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[endpoint]++
	f.last[endpoint] = r.Header.Clone()
	f.seen[endpoint] = form
}

// issueAWS mints and records a temporary key pair.
func (f *Fake) issueAWS(prefix string) (id string, k awsKey) {
	id = prefix + randomHex(8)
	k = awsKey{secret: randomHex(20), session: "session-" + randomHex(24), expires: time.Now().Add(f.opts.TTL)}
	f.mu.Lock()
	f.keys[id] = k
	f.mu.Unlock()
	return id, k
}

// issueToken mints and records a bearer token.
func (f *Fake) issueToken(prefix string) string {
	tok := prefix + randomHex(24)
	f.mu.Lock()
	f.tokens[tok] = time.Now().Add(f.opts.TTL)
	f.mu.Unlock()
	return tok
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
