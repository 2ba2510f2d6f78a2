// Package main is the llmproxy-secrets-kubernetes plugin: it reads
// Kubernetes secrets through the API server with the pod's
// service-account token, confined to one namespace, using the official
// client, k8s.io/client-go. (A mounted secret volume needs no plugin: it
// is the host's file source.)
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"

	"github.com/llmproxy/llmproxy/sdk/schema"
	"github.com/llmproxy/llmproxy/sdk/secrets"
)

// Where Kubernetes mounts a pod's service-account files.
const (
	DefaultTokenPath     = "/var/run/secrets/kubernetes.io/serviceaccount/token"
	DefaultCAPath        = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
	DefaultNamespacePath = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
)

// DefaultTimeout bounds one call to the API server.
const DefaultTimeout = 10 * time.Second

// Kubernetes is the secrets store.
type Kubernetes struct {
	cur atomic.Pointer[conn]
}

var (
	_ secrets.Store         = (*Kubernetes)(nil)
	_ secrets.HealthChecker = (*Kubernetes)(nil)
)

type conn struct {
	secrets   corev1.SecretInterface
	namespace string
	poll      time.Duration
}

type config struct {
	Host      string `json:"host"`
	Namespace string `json:"namespace"`
	TokenPath string `json:"token_path"`
	CAPath    string `json:"ca_path"`
	Timeout   string `json:"timeout"`
	Poll      string `json:"poll_interval"`
}

// DefaultPollInterval is how often the host is asked to read a secret
// again, to see an update.
const DefaultPollInterval = 30 * time.Second

// Describe implements secrets.Store.
func (k *Kubernetes) Describe(context.Context) (*secrets.Description, error) {
	return &secrets.Description{
		Name:    "kubernetes",
		Version: "0.1.0",
		ConfigSchema: schema.Schema{Attributes: []schema.Attribute{
			{Name: "host", Type: "string", Description: "API server URL (default: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT)."},
			{Name: "namespace", Type: "string", Description: "The only namespace secrets are read from (default: the pod's own, from " + DefaultNamespacePath + ")."},
			{Name: "token_path", Type: "string", Description: "Service-account token file, re-read as the kubelet rotates it (default " + DefaultTokenPath + ")."},
			{Name: "ca_path", Type: "string", Description: "CA bundle that verifies the API server (default " + DefaultCAPath + ")."},
			{Name: "timeout", Type: "string", Description: `Limit on one call, a Go duration (default "10s").`},
			{Name: "poll_interval", Type: "string", Description: `How often a secret is read again to see an update (default "30s").`},
		}},
		References: []schema.Attribute{
			{Name: "secret", Type: "string", Required: true, Description: "Name of the secret."},
			{Name: "key", Type: "string", Description: "One key of the secret; without it every key is a value."},
			{Name: "namespace", Type: "string", Description: "Must be the configured namespace if given; other namespaces are refused."},
		},
	}, nil
}

// Configure implements secrets.Store.
func (k *Kubernetes) Configure(_ context.Context, cfg *secrets.Config) error {
	var c config
	if err := cfg.Decode(&c); err != nil {
		return err
	}
	var diags schema.Diagnostics
	if c.Host == "" {
		h, p := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
		if h == "" || p == "" {
			diags = append(diags, schema.Diagnostic{Summary: "host is not set and the plugin does not run in a pod (KUBERNETES_SERVICE_HOST is unset)", Path: []string{"host"}})
		}
		c.Host = "https://" + h + ":" + p
	}
	if c.TokenPath == "" {
		c.TokenPath = DefaultTokenPath
	}
	if c.CAPath == "" {
		c.CAPath = DefaultCAPath
	}
	if c.Namespace == "" {
		b, err := os.ReadFile(DefaultNamespacePath)
		if err != nil {
			diags = append(diags, schema.Diagnostic{Summary: "namespace is not set and the pod's namespace file cannot be read", Detail: err.Error(), Path: []string{"namespace"}})
		}
		c.Namespace = strings.TrimSpace(string(b))
	}
	timeout := DefaultTimeout
	if c.Timeout != "" {
		d, err := time.ParseDuration(c.Timeout)
		if err != nil || d <= 0 {
			diags = append(diags, schema.Diagnostic{Summary: "timeout must be a positive Go duration", Path: []string{"timeout"}})
		}
		timeout = d
	}
	poll := DefaultPollInterval
	if c.Poll != "" {
		d, err := time.ParseDuration(c.Poll)
		if err != nil || d <= 0 {
			diags = append(diags, schema.Diagnostic{Summary: "poll_interval must be a positive Go duration", Path: []string{"poll_interval"}})
		}
		poll = d
	}
	if _, err := os.Stat(c.TokenPath); err != nil {
		diags = append(diags, schema.Diagnostic{Summary: "the service-account token cannot be read", Detail: err.Error(), Path: []string{"token_path"}})
	}
	if diags.HasErrors() {
		return diags
	}
	rc := &rest.Config{
		Host:            c.Host,
		BearerTokenFile: c.TokenPath,
		TLSClientConfig: rest.TLSClientConfig{CAFile: c.CAPath},
		Timeout:         timeout,
		UserAgent:       "llmproxy-secrets-kubernetes",
	}
	client, err := corev1.NewForConfig(rc)
	if err != nil {
		return schema.Diagnostics{{Summary: "cannot build the Kubernetes client", Detail: err.Error()}}
	}
	k.cur.Store(&conn{secrets: client.Secrets(c.Namespace), namespace: c.Namespace, poll: poll})
	return nil
}

func (k *Kubernetes) conn() (*conn, error) {
	c := k.cur.Load()
	if c == nil {
		return nil, errors.New("kubernetes: not configured")
	}
	return c, nil
}

// Resolve implements secrets.Store: the secret's keys (or the one key
// asked for) as values, its resourceVersion as the version.
func (k *Kubernetes) Resolve(ctx context.Context, ref secrets.Reference) (*secrets.Secret, error) {
	c, err := k.conn()
	if err != nil {
		return nil, err
	}
	name := ref["secret"]
	if name == "" {
		return nil, errors.New("kubernetes: the reference needs secret = \"<name>\"")
	}
	if ns := ref["namespace"]; ns != "" && ns != c.namespace {
		return nil, fmt.Errorf("kubernetes: namespace %q is outside this store's namespace %q", ns, c.namespace)
	}
	s, err := c.secrets.Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil, fmt.Errorf("no secret %s in namespace %s: %w", name, c.namespace, secrets.ErrUnavailable)
	case err != nil:
		return nil, fmt.Errorf("kubernetes: get secret %s/%s: %w", c.namespace, name, err)
	}
	values := make(map[string]string, len(s.Data)+len(s.StringData))
	for key, v := range s.Data {
		values[key] = string(v)
	}
	for key, v := range s.StringData {
		values[key] = v
	}
	if key := ref["key"]; key != "" {
		v, ok := values[key]
		if !ok {
			return nil, fmt.Errorf("secret %s/%s has no key %q: %w", c.namespace, name, key, secrets.ErrUnavailable)
		}
		values = map[string]string{key: v}
	}
	return &secrets.Secret{Values: values, Version: s.ResourceVersion, RefreshAfter: time.Now().Add(c.poll)}, nil
}

// Health implements secrets.HealthChecker: the API server answers with
// the token (a missing probe secret still proves both).
func (k *Kubernetes) Health(ctx context.Context) error {
	c, err := k.conn()
	if err != nil {
		return err
	}
	_, err = c.secrets.Get(ctx, "llmproxy-health-probe", metav1.GetOptions{})
	if err == nil || apierrors.IsNotFound(err) {
		return nil
	}
	return fmt.Errorf("kubernetes: %w", err)
}
