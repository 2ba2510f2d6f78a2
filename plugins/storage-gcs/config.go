package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"github.com/llmproxy/llmproxy/sdk/schema"
)

// credServiceAccount names the service account key credential.
const credServiceAccount = "service_account_json"

// Upload chunk sizes. A Put buffers one chunk of the body in memory;
// resumable uploads need a multiple of 256 KiB.
const (
	defaultChunkSize = 4 << 20
	chunkQuantum     = 256 << 10
	maxChunkSize     = 256 << 20
)

// config is the instance's config block.
type config struct {
	// Project is the Google Cloud project; Health lists its buckets.
	Project string `json:"project"`
	// Endpoint is the JSON API base URL, for emulators and private
	// endpoints, e.g. http://127.0.0.1:4443/storage/v1/.
	Endpoint string `json:"endpoint"`
	// Anonymous sends requests without credentials (emulators); a
	// service_account_json credential is then used only to sign URLs.
	Anonymous bool `json:"anonymous"`
	// ChunkSize is the resumable upload chunk size in bytes.
	ChunkSize int `json:"chunk_size"`
	// Auth is "static", "workload_identity" or empty (see configSchema).
	Auth string `json:"auth"`
}

// Values of the auth attribute.
const (
	authStatic           = "static"
	authWorkloadIdentity = "workload_identity"
)

// settings is a validated config with defaults applied.
type settings struct {
	project string
	// endpoint is the normalized JSON API base URL, empty for Google's.
	endpoint string
	// signHost is the host presigned URLs point at, empty for Google's.
	signHost string
	// insecure is true for a plain-HTTP endpoint.
	insecure  bool
	anonymous bool
	chunkSize int
}

// configSchema is the config block the plugin accepts.
func configSchema() schema.Schema {
	return schema.Schema{Attributes: []schema.Attribute{
		{Name: "project", Type: "string", Description: "Google Cloud project ID; health checks list its buckets (without it they only check the client is configured)."},
		{Name: "endpoint", Type: "string", Description: "JSON API base URL for emulators or private endpoints, e.g. http://127.0.0.1:4443/storage/v1/; presigned URLs then point at its host."},
		{Name: "anonymous", Type: "bool", Description: "Send requests without credentials (emulators); service_account_json is then used only to sign URLs."},
		{Name: "auth", Type: "string", Description: `"static" (service_account_json required), "workload_identity" (Application Default Credentials only: the GKE metadata server or workload identity federation; no credentials; URLs are signed through the IAM Credentials API) or unset (the credential when given, else Application Default Credentials).`},
		{Name: "chunk_size", Type: "number", Description: "Resumable upload chunk size in bytes, a multiple of 256 KiB (default 4 MiB); each upload buffers one chunk."},
	}}
}

// credentials are the secrets the plugin may receive. Without one it uses
// Application Default Credentials.
func credentials() []schema.Credential {
	return []schema.Credential{{
		Name:        credServiceAccount,
		Description: "Service account key JSON; also signs presigned URLs (V4). Without it the plugin uses Application Default Credentials and signs through the IAM Credentials API.",
	}}
}

// resolve validates c and applies defaults.
func (c config) resolve() (settings, error) {
	s := settings{project: c.Project, anonymous: c.Anonymous, chunkSize: c.ChunkSize}
	if s.chunkSize == 0 {
		s.chunkSize = defaultChunkSize
	}
	if s.chunkSize < chunkQuantum || s.chunkSize > maxChunkSize || s.chunkSize%chunkQuantum != 0 {
		return settings{}, schema.Errorf([]string{"chunk_size"}, "must be a multiple of %d between %d and %d bytes, got %d", chunkQuantum, chunkQuantum, maxChunkSize, s.chunkSize)
	}
	if c.Endpoint == "" {
		return s, nil
	}
	u, err := url.Parse(c.Endpoint)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.RawQuery != "" {
		return settings{}, schema.Errorf([]string{"endpoint"}, "must be an absolute http(s) URL without a query, got %q", c.Endpoint)
	}
	if strings.Trim(u.Path, "/") == "" {
		u.Path = "/storage/v1/"
	} else if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	s.endpoint = u.String()
	s.signHost = u.Host
	s.insecure = u.Scheme == "http"
	return s, nil
}

// serviceAccount is the part of a service account key the plugin reads.
type serviceAccount struct {
	Type        string `json:"type"`
	ClientEmail string `json:"client_email"`
	PrivateKey  string `json:"private_key"`
}

// parseServiceAccount checks a service account key JSON. Its errors never
// quote the key.
func parseServiceAccount(js string) (*serviceAccount, error) {
	var sa serviceAccount
	if err := json.Unmarshal([]byte(js), &sa); err != nil {
		return nil, fmt.Errorf("%s is not valid JSON", credServiceAccount)
	}
	switch {
	case sa.Type != "service_account":
		return nil, fmt.Errorf("%s has type %q, want service_account", credServiceAccount, sa.Type)
	case sa.ClientEmail == "" || sa.PrivateKey == "":
		return nil, fmt.Errorf("%s lacks client_email or private_key", credServiceAccount)
	}
	return &sa, nil
}
