// Package main is the llmproxy-secrets-gcp-secretmanager plugin: it reads
// secret versions from Google Cloud Secret Manager through the official
// client, cloud.google.com/go/secretmanager/apiv1, authenticated by
// Application Default Credentials (a key file, GKE workload identity or
// the GCE metadata server) or a service-account key given as a
// credential.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/llmproxy/llmproxy/sdk/schema"
	"github.com/llmproxy/llmproxy/sdk/secrets"
)

// Name is the store type: the plugin binary is llmproxy-secrets-<Name>.
const Name = "gcp-secretmanager"

// CredentialServiceAccount is the credential holding a service-account
// key file's JSON, for auth = "service_account".
const CredentialServiceAccount = "service_account_json"

// Auth methods.
const (
	AuthADC            = "adc"
	AuthServiceAccount = "service_account"
)

// Defaults.
const (
	DefaultTimeout      = 10 * time.Second
	DefaultPollInterval = 5 * time.Minute
)

// ValueKey is the name of the one value a secret version gives.
const ValueKey = "value"

// SecretManager is the secrets store. Its client is swapped atomically
// on Configure.
type SecretManager struct {
	cur atomic.Pointer[session]
}

var (
	_ secrets.Store         = (*SecretManager)(nil)
	_ secrets.HealthChecker = (*SecretManager)(nil)
)

type session struct {
	client     *secretmanager.Client
	project    string
	timeout    time.Duration
	poll       time.Duration
	readExpiry bool
}

type config struct {
	Project    string `json:"project"`
	Auth       string `json:"auth"`
	Endpoint   string `json:"endpoint"`
	CAFile     string `json:"ca_file"`
	ReadExpiry *bool  `json:"read_expiry"`
	Timeout    string `json:"timeout"`
	Poll       string `json:"poll_interval"`
}

// Describe implements secrets.Store.
func (m *SecretManager) Describe(context.Context) (*secrets.Description, error) {
	return &secrets.Description{
		Name:    Name,
		Version: "0.1.0",
		ConfigSchema: schema.Schema{Attributes: []schema.Attribute{
			{Name: "project", Type: "string", Description: "Project id or number secrets are read from, unless a reference gives a full name (default $GOOGLE_CLOUD_PROJECT)."},
			{Name: "auth", Type: "string", Description: `"adc" (default: Application Default Credentials — GOOGLE_APPLICATION_CREDENTIALS, GKE workload identity, the GCE metadata server) or "service_account" (the credential service_account_json).`},
			{Name: "endpoint", Type: "string", Description: "Secret Manager's gRPC address, host:port (default secretmanager.googleapis.com:443; e.g. a regional endpoint)."},
			{Name: "ca_file", Type: "string", Description: "PEM file of the CAs trusted for endpoint, instead of the system's."},
			{Name: "read_expiry", Type: "bool", Description: "Whether the secret's expire_time is read too (default true; needs secretmanager.secrets.get, and is skipped when refused)."},
			{Name: "timeout", Type: "string", Description: `Limit on one read, a Go duration (default "10s").`},
			{Name: "poll_interval", Type: "string", Description: `How often a secret is read again to see a new version (default "5m").`},
		}},
		Credentials: []schema.Credential{
			{Name: CredentialServiceAccount, Description: `Service-account key file JSON, for auth = "service_account".`},
		},
		References: []schema.Attribute{
			{Name: "secret", Type: "string", Required: true, Description: "Secret id in the configured project, or a full name projects/<project>/secrets/<id>."},
			{Name: "version", Type: "string", Description: `"latest" (default) or a version number.`},
		},
	}, nil
}

// Configure implements secrets.Store. It finds the credentials and sets
// up the client; the first token is fetched at the first read.
func (m *SecretManager) Configure(ctx context.Context, cfg *secrets.Config) error {
	var c config
	if err := cfg.Decode(&c); err != nil {
		return err
	}
	var diags schema.Diagnostics
	add := func(path, summary, detail string) {
		diags = append(diags, schema.Diagnostic{Summary: summary, Detail: detail, Path: []string{path}})
	}
	if c.Project == "" {
		c.Project = os.Getenv("GOOGLE_CLOUD_PROJECT")
	}
	if c.Project != "" && !validID(c.Project, 6, 30, true) {
		add("project", "project must be a project id or number", "")
	}
	if c.Auth == "" {
		c.Auth = AuthADC
	}
	timeout := diags.Duration("timeout", c.Timeout, DefaultTimeout)
	poll := diags.Duration("poll_interval", c.Poll, DefaultPollInterval)
	opts := []option.ClientOption{option.WithUserAgent("llmproxy-secrets-gcp-secretmanager")}
	switch c.Auth {
	case AuthADC:
	case AuthServiceAccount:
		key := cfg.Credentials[CredentialServiceAccount]
		if key == "" {
			add("auth", `auth = "service_account" needs the credential service_account_json`, "")
		}
		opts = append(opts, option.WithAuthCredentialsJSON(option.ServiceAccount, []byte(key)))
	default:
		add("auth", `auth must be "adc" or "service_account"`, fmt.Sprintf("got %q", c.Auth))
	}
	if c.Endpoint != "" {
		if _, port, ok := strings.Cut(c.Endpoint, ":"); !ok || port == "" || strings.Contains(c.Endpoint, "/") {
			add("endpoint", "endpoint must be host:port", "")
		}
		opts = append(opts, option.WithEndpoint(c.Endpoint))
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		pool := x509.NewCertPool()
		if err != nil || !pool.AppendCertsFromPEM(pem) {
			add("ca_file", "ca_file holds no readable PEM certificate", fmt.Sprint(err))
		}
		opts = append(opts, option.WithGRPCDialOption(grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}))))
	}
	if diags.HasErrors() {
		return diags
	}
	client, err := secretmanager.NewClient(ctx, opts...)
	if err != nil {
		return schema.Diagnostics{{Summary: "cannot set up the Secret Manager client (no usable credentials?)", Detail: redactDetail(err), Path: []string{"auth"}}}
	}
	// The host retries with its own backoff and marks the instance
	// degraded meanwhile; the client's retries would only hide that.
	client.CallOptions.AccessSecretVersion = nil
	client.CallOptions.GetSecret = nil
	old := m.cur.Swap(&session{client: client, project: c.Project, timeout: timeout, poll: poll, readExpiry: c.ReadExpiry == nil || *c.ReadExpiry})
	if old != nil {
		// Reads in flight on the old client finish first.
		time.AfterFunc(old.timeout, func() { old.client.Close() })
	}
	return nil
}

// redactDetail keeps the first line of a credential error: the libraries
// do not quote keys, and the first line says what was missing.
func redactDetail(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

func (m *SecretManager) session() (*session, error) {
	s := m.cur.Load()
	if s == nil {
		return nil, errors.New("gcp-secretmanager: not configured")
	}
	return s, nil
}

// VersionName returns the full version name of a reference, given the
// configured project.
func VersionName(ref secrets.Reference, project string) (string, error) {
	id := ref["secret"]
	if full, ok := strings.CutPrefix(id, "projects/"); ok {
		p, sid, ok := strings.Cut(full, "/secrets/")
		if !ok {
			return "", errors.New("secret must be an id or projects/<project>/secrets/<id>")
		}
		project, id = p, sid
	}
	if !validID(id, 1, 255, false) {
		return "", errors.New(`the reference needs secret = "<id>" (letters, digits, - and _, at most 255)`)
	}
	if project == "" || !validID(project, 1, 30, true) {
		return "", errors.New("no project: set project in the secrets block or the reference")
	}
	version := ref["version"]
	if version == "" {
		version = "latest"
	}
	if version != "latest" {
		n, err := strconv.ParseUint(version, 10, 63)
		if err != nil || n == 0 || strconv.FormatUint(n, 10) != version {
			return "", errors.New(`version must be "latest" or a version number`)
		}
	}
	return "projects/" + project + "/secrets/" + id + "/versions/" + version, nil
}

func validID(s string, minLen, maxLen int, project bool) bool {
	if len(s) < minLen || len(s) > maxLen {
		return false
	}
	for _, r := range s {
		ok := r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r == '-'
		if !project {
			ok = ok || r >= 'A' && r <= 'Z' || r == '_'
		}
		if !ok {
			return false
		}
	}
	return true
}

// Resolve implements secrets.Store: one secret version as the value
// "value", the version number it resolved to as the version, and the
// secret's expire_time, when it has one, as the expiry. The payload's
// CRC32C is checked.
func (m *SecretManager) Resolve(ctx context.Context, ref secrets.Reference) (*secrets.Secret, error) {
	s, err := m.session()
	if err != nil {
		return nil, err
	}
	name, err := VersionName(ref, s.project)
	if err != nil {
		return nil, fmt.Errorf("gcp-secretmanager: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	r, err := s.client.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: name})
	if err != nil {
		return nil, callError("access "+name, err)
	}
	data := r.GetPayload().GetData()
	if sum := r.GetPayload().DataCrc32C; sum != nil && int64(crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli))) != *sum {
		return nil, fmt.Errorf("gcp-secretmanager: %s: the payload does not match its checksum", name)
	}
	out := &secrets.Secret{Values: map[string]string{ValueKey: string(data)}, Version: r.GetName()}
	if i := strings.LastIndexByte(out.Version, '/'); i >= 0 {
		out.Version = out.Version[i+1:]
	}
	if s.readExpiry {
		secretName, _, _ := strings.Cut(name, "/versions/")
		meta, err := s.client.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: secretName})
		switch {
		case status.Code(err) == codes.PermissionDenied:
			// The identity may read versions but not metadata: no expiry.
		case err != nil:
			return nil, callError("get "+secretName, err)
		case meta.GetExpireTime() != nil:
			exp := meta.GetExpireTime().AsTime()
			if !exp.After(time.Now()) {
				return nil, fmt.Errorf("gcp-secretmanager: %s expired at %s", secretName, exp.UTC().Format(time.RFC3339))
			}
			out.Expires = exp
		}
	}
	out.PollEvery(s.poll)
	return out, nil
}

// callError sorts a failed call: NOT_FOUND is unavailable, anything
// else (UNAUTHENTICATED, PERMISSION_DENIED, an outage) a failure.
func callError(what string, err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("gcp-secretmanager: %s: %w", what, err)
	}
	msg, _, _ := strings.Cut(st.Message(), "\n")
	if st.Code() == codes.NotFound {
		return fmt.Errorf("gcp-secretmanager: %s: %s: %w", what, msg, secrets.ErrUnavailable)
	}
	return fmt.Errorf("gcp-secretmanager: %s: %s: %s", what, st.Code(), msg)
}

// Health implements secrets.HealthChecker: Secret Manager answers a
// read of a probe secret with the plugin's credentials (a missing
// secret still proves both).
func (m *SecretManager) Health(ctx context.Context) error {
	s, err := m.session()
	if err != nil {
		return err
	}
	if s.project == "" {
		return nil
	}
	return secrets.Probe(ctx, m, secrets.Reference{"secret": "llmproxy-health-probe"})
}
