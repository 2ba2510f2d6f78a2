package main

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/schema"
)

// Credential names the plugin asks the host for.
const (
	credAccountKey = "account_key"
	credSASToken   = "sas_token"
)

// Upload tuning defaults. A Put holds at most blockSize × concurrency bytes
// of the body in memory.
const (
	defaultBlockSize   = 2 << 20
	minBlockSize       = 1 << 20
	maxBlockSize       = 100 << 20
	defaultConcurrency = 2
	maxConcurrency     = 16
)

// config is the instance's config block.
type config struct {
	// AccountURL is the Blob service URL: https://<account>.blob.core.windows.net
	// or, for Azurite, http://127.0.0.1:10000/devstoreaccount1.
	AccountURL string `json:"account_url"`
	// Endpoint is an alias of AccountURL.
	Endpoint string `json:"endpoint"`
	// AccountName overrides the account name derived from the URL.
	AccountName string `json:"account_name"`
	// BlockSize is the size of one staged block in bytes.
	BlockSize int64 `json:"block_size"`
	// Concurrency is the number of blocks staged at once by one Put.
	Concurrency int `json:"concurrency"`
	// Auth is "static", "workload_identity" or empty (see configSchema).
	Auth string `json:"auth"`
	// ClientID names a user-assigned managed identity (workload_identity).
	ClientID string `json:"client_id"`
}

// Values of the auth attribute.
const (
	authStatic           = "static"
	authWorkloadIdentity = "workload_identity"
)

// settings is a validated config with its defaults applied.
type settings struct {
	serviceURL  string
	accountName string
	blockSize   int64
	concurrency int
	// insecure is true for a plain-HTTP endpoint (an emulator).
	insecure bool
	auth     string
	clientID string
}

// configSchema is the config block the plugin accepts.
func configSchema() schema.Schema {
	return schema.Schema{Attributes: []schema.Attribute{
		{Name: "account_url", Type: "string", Description: "Blob service URL, e.g. https://myaccount.blob.core.windows.net (Azurite: http://127.0.0.1:10000/devstoreaccount1)."},
		{Name: "endpoint", Type: "string", Description: "Alias of account_url."},
		{Name: "account_name", Type: "string", Description: "Storage account name; derived from account_url when unset."},
		{Name: "block_size", Type: "number", Description: "Bytes per staged block of an upload (1 MiB to 100 MiB, default 2 MiB)."},
		{Name: "auth", Type: "string", Description: `"static" (account_key or sas_token required), "workload_identity" (Entra token of the workload: the AKS federated token file, else the managed identity; no credentials) or unset (the credentials when given, else DefaultAzureCredential).`},
		{Name: "client_id", Type: "string", Description: "Client id of a user-assigned managed identity, for auth = \"workload_identity\" (AKS sets AZURE_CLIENT_ID itself)."},
		{Name: "concurrency", Type: "number", Description: "Blocks one upload stages at once (1 to 16, default 2); an upload buffers block_size × concurrency bytes."},
	}}
}

// credentials are the secrets the plugin may receive. With neither, it
// authenticates with the ambient Azure identity (environment, workload
// identity, managed identity, Azure CLI).
func credentials() []schema.Credential {
	return []schema.Credential{
		{Name: credAccountKey, Description: "Storage account key (shared key); enables presigned URLs as service SAS."},
		{Name: credSASToken, Description: "Account or container SAS token (query string, with or without a leading '?'); presigning is unavailable with it."},
	}
}

// resolve validates c and applies defaults.
func (c config) resolve() (settings, error) {
	raw := c.AccountURL
	path := []string{"account_url"}
	if raw == "" {
		raw, path = c.Endpoint, []string{"endpoint"}
	} else if c.Endpoint != "" && c.Endpoint != c.AccountURL {
		return settings{}, schema.Errorf(path, "account_url and endpoint are both set and differ; set one")
	}
	if raw == "" {
		return settings{}, schema.Errorf([]string{"account_url"}, "account_url is required")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return settings{}, schema.Errorf(path, "must be an absolute http(s) URL, got %q", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return settings{}, schema.Errorf(path, "must not carry a query or fragment; pass a SAS token as the %s credential", credSASToken)
	}
	name := c.AccountName
	if name == "" {
		name = accountFromURL(u)
	}
	if name == "" {
		return settings{}, schema.Errorf([]string{"account_name"}, "cannot derive the account name from %q; set account_name", raw)
	}
	s := settings{
		serviceURL:  strings.TrimRight(u.String(), "/") + "/",
		accountName: name,
		blockSize:   c.BlockSize,
		concurrency: c.Concurrency,
		insecure:    u.Scheme == "http",
		auth:        c.Auth,
		clientID:    c.ClientID,
	}
	switch c.Auth {
	case "", authStatic, authWorkloadIdentity:
	default:
		return settings{}, schema.Errorf([]string{"auth"}, `auth must be "static" or "workload_identity", got %q`, c.Auth)
	}
	if s.blockSize == 0 {
		s.blockSize = defaultBlockSize
	}
	if s.blockSize < minBlockSize || s.blockSize > maxBlockSize {
		return settings{}, schema.Errorf([]string{"block_size"}, "must be between %d and %d bytes, got %d", minBlockSize, maxBlockSize, s.blockSize)
	}
	if s.concurrency == 0 {
		s.concurrency = defaultConcurrency
	}
	if s.concurrency < 1 || s.concurrency > maxConcurrency {
		return settings{}, schema.Errorf([]string{"concurrency"}, "must be between 1 and %d, got %d", maxConcurrency, s.concurrency)
	}
	return s, nil
}

// accountFromURL derives the account name from a service URL: the first
// path segment for path-style URLs (Azurite, IP endpoints), otherwise the
// first label of the host name.
func accountFromURL(u *url.URL) string {
	if seg, _, _ := strings.Cut(strings.Trim(u.Path, "/"), "/"); seg != "" {
		return seg
	}
	host := u.Hostname()
	if strings.Count(host, ".") < 2 || isIP(host) {
		return ""
	}
	label, _, _ := strings.Cut(host, ".")
	return label
}

func isIP(host string) bool {
	return strings.Trim(host, "0123456789.") == "" || strings.Contains(host, ":")
}

// sasQuery normalizes a SAS token credential to a bare query string.
func sasQuery(token string) (string, error) {
	token = strings.TrimPrefix(strings.TrimSpace(token), "?")
	q, err := url.ParseQuery(token)
	if err != nil {
		return "", fmt.Errorf("parse %s: %w", credSASToken, err)
	}
	if q.Get("sig") == "" {
		return "", fmt.Errorf("%s has no sig parameter", credSASToken)
	}
	return token, nil
}

// validateMetadata checks user metadata names against Azure's rule: they
// must be valid C# identifiers.
func validateMetadata(md map[string]string) error {
	for k := range md {
		if !isIdentifier(k) {
			e := openai.InvalidRequest("metadata", fmt.Sprintf(
				"invalid metadata name %q: Azure metadata names start with a letter or '_' and hold only letters, digits and '_'", k))
			e.Code = codeInvalidMetadata
			return e
		}
	}
	return nil
}

func isIdentifier(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
