package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/schema"
	"github.com/llmproxy/llmproxy/sdk/storage"
)

// Version is the plugin's version, reported by Describe.
const Version = "0.1.0"

// Local is a storage plugin over a directory: each bucket is a
// subdirectory of the configured root, and each object a directory named
// after its key holding the object's data and a metadata sidecar (see
// layout.go).
type Local struct {
	state atomic.Pointer[state]
	locks [64]sync.Mutex
}

var (
	_ storage.Storage       = (*Local)(nil)
	_ storage.Presigner     = (*Local)(nil)
	_ storage.HealthChecker = (*Local)(nil)
)

// state is one configuration of a Local, swapped whole on Configure.
type state struct {
	rootPath      string
	root          *os.Root
	createBuckets bool
	instance      string
	publicURL     string
	signingKey    []byte
}

// config is the instance's config block.
type config struct {
	Root          string `json:"root"`
	CreateBuckets bool   `json:"create_buckets"`
}

// Describe returns the plugin's name, version, config schema and
// credentials.
func (l *Local) Describe(context.Context) (*storage.Description, error) {
	return &storage.Description{
		Name:         "local",
		Version:      Version,
		Capabilities: []string{storage.CapRange},
		ConfigSchema: schema.Schema{Attributes: []schema.Attribute{
			{Name: "root", Type: "string", Required: true,
				Description: "Directory holding one subdirectory per bucket; created when missing."},
			{Name: "create_buckets", Type: "bool",
				Description: "Create a bucket's directory on the first Put into it instead of answering 404 bucket_not_found."},
		}},
		Credentials: []schema.Credential{
			{Name: "signing_key", Description: "HMAC key (at least 16 bytes) that signs presigned URLs served by the host; presigning is off without it."},
		},
	}, nil
}

// Configure opens the root directory and takes the signing key and the
// host's public URL for presigned URLs.
func (l *Local) Configure(_ context.Context, cfg *storage.Config) error {
	var c config
	if err := cfg.Decode(&c); err != nil {
		return err
	}
	if c.Root == "" {
		return schema.Diagnostics{{Summary: "root is required", Detail: "Set root to the directory that holds the buckets.", Path: []string{"root"}}}
	}
	st := &state{
		rootPath:      c.Root,
		createBuckets: c.CreateBuckets,
		instance:      cfg.Instance,
		publicURL:     cfg.Settings["public_url"],
		signingKey:    []byte(cfg.Credentials["signing_key"]),
	}
	var diags schema.Diagnostics
	if len(st.signingKey) > 0 && len(st.signingKey) < storage.MinSigningKeyBytes {
		diags = append(diags, schema.Diagnostic{
			Summary: "signing_key is too short",
			Detail:  fmt.Sprintf("The signing key must be at least %d bytes.", storage.MinSigningKeyBytes),
		})
		return diags
	}
	if old := l.state.Load(); old != nil && old.rootPath == c.Root {
		st.root = old.root
	} else {
		if err := os.MkdirAll(c.Root, 0o750); err != nil {
			return schema.Diagnostics{{Summary: "cannot create root directory", Detail: err.Error(), Path: []string{"root"}}}
		}
		root, err := os.OpenRoot(c.Root)
		if err != nil {
			return schema.Diagnostics{{Summary: "cannot open root directory", Detail: err.Error(), Path: []string{"root"}}}
		}
		st.root = root
		if old != nil {
			// Requests in flight may still use the old root for a while.
			time.AfterFunc(10*time.Minute, func() { old.root.Close() })
		}
	}
	if len(st.signingKey) == 0 || st.publicURL == "" {
		diags = append(diags, schema.Diagnostic{
			Warning: true,
			Summary: "presigned URLs are disabled",
			Detail:  "They need the signing_key credential and the host's public_url setting.",
		})
	}
	l.state.Store(st)
	return diags
}

// current returns the configured state, or a 503 before Configure.
func (l *Local) current() (*state, error) {
	st := l.state.Load()
	if st == nil {
		return nil, openai.NewError(http.StatusServiceUnavailable, openai.TypeUnavailable, "not_configured",
			"the local storage instance is not configured")
	}
	return st, nil
}

// Health checks that the root directory is still there.
func (l *Local) Health(context.Context) error {
	st, err := l.current()
	if err != nil {
		return err
	}
	if _, err := st.root.Stat("."); err != nil {
		return fmt.Errorf("root directory %s: %w", st.rootPath, err)
	}
	return nil
}

// Presign returns a URL on the host, signed with the instance's signing
// key, that GETs or PUTs one object until the TTL runs out.
func (l *Local) Presign(_ context.Context, req *storage.PresignRequest) (*storage.PresignedURL, error) {
	st, err := l.current()
	if err != nil {
		return nil, err
	}
	if len(st.signingKey) == 0 || st.publicURL == "" {
		return nil, openai.NewError(http.StatusBadRequest, openai.TypeInvalidRequest, storage.CodePresignDisabled,
			"presigned URLs need the signing_key credential and the host's public_url setting")
	}
	if _, err := objectDir(req.Bucket, req.Key); err != nil {
		return nil, err
	}
	exp := time.Now().Add(req.TTL).Truncate(time.Second)
	so := storage.SignedObject{
		Type: "local", Instance: st.instance, Bucket: req.Bucket, Key: req.Key, Method: req.Method, Expires: exp,
	}
	h := http.Header{}
	if req.Method == http.MethodPut && req.ContentType != "" {
		so.ContentType = req.ContentType
		h.Set("Content-Type", req.ContentType)
	}
	u, err := storage.SignURL(st.signingKey, st.publicURL, so)
	if err != nil {
		return nil, fmt.Errorf("presign %s/%s: %w", req.Bucket, req.Key, err)
	}
	return &storage.PresignedURL{URL: u, Method: req.Method, Header: h, Expires: exp}, nil
}

// fsError turns a file system error into the error the client sees,
// without the server's paths; the full error goes to the plugin log.
func fsError(op, bucket, key string, err error) error {
	storage.Logger().Error("local storage operation failed", "op", op, "bucket", bucket, "error", err)
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	switch {
	case errors.Is(err, os.ErrPermission):
		return storage.AccessDenied(fmt.Sprintf("%s %s/%s: permission denied on the server's disk", op, bucket, key))
	case strings.Contains(err.Error(), "path escapes from parent"):
		return storage.AccessDenied(fmt.Sprintf("%s %s/%s: the path leaves the storage root", op, bucket, key))
	}
	return openai.NewError(http.StatusInternalServerError, openai.TypeServer, "storage_error",
		fmt.Sprintf("%s %s/%s: %v", op, bucket, key, err))
}
