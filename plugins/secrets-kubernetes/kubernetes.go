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

	corev1api "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
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
	_ secrets.Watcher       = (*Kubernetes)(nil)
)

type conn struct {
	secrets corev1.SecretInterface
	// watcher is secrets without the per-call timeout, which would end
	// every watch after it.
	watcher   corev1.SecretInterface
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
	timeout := diags.Duration("timeout", c.Timeout, DefaultTimeout)
	poll := diags.Duration("poll_interval", c.Poll, DefaultPollInterval)
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
	wc := *rc
	wc.Timeout = 0
	watchClient, err := corev1.NewForConfig(&wc)
	if err != nil {
		return schema.Diagnostics{{Summary: "cannot build the Kubernetes client", Detail: err.Error()}}
	}
	k.cur.Store(&conn{secrets: client.Secrets(c.Namespace), watcher: watchClient.Secrets(c.Namespace), namespace: c.Namespace, poll: poll})
	return nil
}

func (k *Kubernetes) conn() (*conn, error) {
	c := k.cur.Load()
	if c == nil {
		return nil, errors.New("kubernetes: not configured")
	}
	return c, nil
}

// watchTimeout is how long one watch request lasts before it is renewed
// from the last resourceVersion (the API server ends watches anyway).
const watchTimeout = 5 * time.Minute

// Watch implements secrets.Watcher: a watch on the one secret (a field
// selector on its name, so that RBAC can grant watch on it alone), resumed
// from the last resourceVersion when the server ends it. A resourceVersion
// the server no longer has (410 Gone / Expired) means changes may have been
// missed: the secret is read again and the watch starts from there.
// changed is called with the version the watch starts from (the host
// may have read the secret before a change the watch did not see yet; it
// compares values, so an unchanged secret costs it one read), then for
// every new resourceVersion of the secret, deletion included.
func (k *Kubernetes) Watch(ctx context.Context, ref secrets.Reference, changed func(version string)) error {
	c, err := k.conn()
	if err != nil {
		return err
	}
	name, err := c.name(ref)
	if err != nil {
		return err
	}
	last := ""
	relist := func() error {
		s, err := c.secrets.Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			// Watch from now: a creation is an event.
			if last != "" {
				last = ""
				changed("")
			}
			return nil
		case err != nil:
			return fmt.Errorf("kubernetes: get secret %s/%s: %w", c.namespace, name, err)
		}
		if last != "" && s.ResourceVersion != last {
			changed(s.ResourceVersion)
		}
		last = s.ResourceVersion
		return nil
	}
	if err := relist(); err != nil {
		return err
	}
	changed(last)
	log := secrets.Logger().With("namespace", c.namespace, "secret", name)
	log.Debug("watching the secret", "resource_version", last)
	for {
		timeout := int64(watchTimeout / time.Second)
		w, err := c.watcher.Watch(ctx, metav1.ListOptions{
			FieldSelector:   fields.OneTermEqualSelector("metadata.name", name).String(),
			ResourceVersion: last,
			TimeoutSeconds:  &timeout,
		})
		switch {
		case ctx.Err() != nil:
			return nil
		case apierrors.IsGone(err) || apierrors.IsResourceExpired(err):
			if err := relist(); err != nil {
				return err
			}
			continue
		case err != nil:
			return fmt.Errorf("kubernetes: watch secret %s/%s: %w", c.namespace, name, err)
		}
		expired, err := c.drain(w, name, &last, changed)
		w.Stop()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		if expired {
			log.Debug("the watch's resourceVersion expired; reading the secret again", "resource_version", last)
			if err := relist(); err != nil {
				return err
			}
		}
	}
}

// drain passes a watch's events on until it ends; it reports whether it
// ended because the resourceVersion expired.
func (c *conn) drain(w watch.Interface, name string, last *string, changed func(string)) (bool, error) {
	for ev := range w.ResultChan() {
		switch ev.Type {
		case watch.Added, watch.Modified, watch.Deleted, watch.Bookmark:
			s, ok := ev.Object.(*corev1api.Secret)
			if !ok || (ev.Type != watch.Bookmark && s.Name != name) {
				continue
			}
			rv := s.ResourceVersion
			if rv == "" || rv == *last {
				continue
			}
			*last = rv
			if ev.Type == watch.Deleted {
				*last = ""
			}
			if ev.Type != watch.Bookmark {
				changed(rv)
			}
		case watch.Error:
			err := apierrors.FromObject(ev.Object)
			if apierrors.IsGone(err) || apierrors.IsResourceExpired(err) {
				return true, nil
			}
			return false, fmt.Errorf("kubernetes: watch secret %s/%s: %w", c.namespace, name, err)
		}
	}
	return false, nil
}

// name returns the secret a reference names, refusing other namespaces.
func (c *conn) name(ref secrets.Reference) (string, error) {
	name := ref["secret"]
	if name == "" {
		return "", errors.New("kubernetes: the reference needs secret = \"<name>\"")
	}
	if ns := ref["namespace"]; ns != "" && ns != c.namespace {
		return "", fmt.Errorf("kubernetes: namespace %q is outside this store's namespace %q", ns, c.namespace)
	}
	return name, nil
}

// Resolve implements secrets.Store: the secret's keys (or the one key
// asked for) as values, its resourceVersion as the version.
func (k *Kubernetes) Resolve(ctx context.Context, ref secrets.Reference) (*secrets.Secret, error) {
	c, err := k.conn()
	if err != nil {
		return nil, err
	}
	name, err := c.name(ref)
	if err != nil {
		return nil, err
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
