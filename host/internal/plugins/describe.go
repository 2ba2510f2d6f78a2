package plugins

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/llmproxy/llmproxy/sdk/middleware"
	"github.com/llmproxy/llmproxy/sdk/provider"
	"github.com/llmproxy/llmproxy/sdk/schema"
	"github.com/llmproxy/llmproxy/sdk/secrets"
	"github.com/llmproxy/llmproxy/sdk/storage"
)

// Description is what a plugin binary says about itself in Describe: what
// `llmproxy validate` needs to check an instance without running it, and
// what `llmproxy plugins list` shows.
type Description struct {
	// Name and Version are the plugin's own.
	Name, Version string
	// Protocol is the plugin protocol major version the handshake agreed on.
	Protocol int
	// Capabilities are the optional features the plugin serves
	// ("chat_stream", "embeddings", "presign", "health", …).
	Capabilities []string
	// Schema is the shape of an instance's config block.
	Schema schema.Schema
	// Credentials are the secrets an instance may or must be given.
	Credentials []schema.Credential
}

// ErrNoClient is returned with a partial Description (the protocol
// version only) by Describe for a plugin of a kind it has no client for.
var ErrNoClient = errors.New("no client to describe plugins of this kind")

// NeedsConfig reports whether an instance of the plugin cannot be
// configured without settings or secrets: some attribute or credential is
// required.
func (d *Description) NeedsConfig() bool {
	for _, a := range d.Schema.Attributes {
		if a.Required {
			return true
		}
	}
	for _, c := range d.Credentials {
		if c.Required {
			return true
		}
	}
	return false
}

// Describe starts the plugin binary at path (kind "provider" or
// "storage") with an empty environment, asks it Describe and stops it
// again. Nothing is configured and no credential is handed over.
func Describe(ctx context.Context, kind, path string, log hclog.Logger) (*Description, error) {
	d, _, err := inspect(ctx, kind, path, log, false)
	return d, err
}

// SelfCheck starts the plugin binary at path as Describe does and checks
// that it answers and that its config schema is usable. A plugin that
// needs no config and no credential is then configured with an empty
// config block and, when it serves health checks, asked for its health.
// The returned steps name what was checked, in order, and why a step was
// skipped; the error says which step failed. A plugin that refuses an
// empty config, or reports an unreachable upstream, has not failed: it
// needs an instance's config to do more.
func SelfCheck(ctx context.Context, kind, path string, log hclog.Logger) (*Description, []string, error) {
	return inspect(ctx, kind, path, log, true)
}

func inspect(ctx context.Context, kind, path string, log hclog.Logger, check bool) (*Description, []string, error) {
	var drv driver
	// A kind this command has no client for is still started and
	// handshaken: the process, the cookie and the protocol version are
	// the same for every kind.
	versions := map[int]goplugin.PluginSet{int(handshake.ProtocolVersion): {}}
	switch kind {
	case "provider":
		drv = providerDriver{}
	case "storage":
		drv = storageDriver{}
	case "secrets":
		drv = secretsDriver{}
	case MiddlewareKind:
		drv = middlewareDriver{}
	}
	if drv != nil {
		versions = drv.plugins()
	}
	if log == nil {
		log = hclog.NewNullLogger()
	}
	cmd := exec.CommandContext(ctx, path)
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin"}
	bindToHost(cmd)
	client := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig:  handshake,
		VersionedPlugins: versions,
		Cmd:              cmd,
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		AutoMTLS:         true,
		SkipHostEnv:      true,
		Logger:           log,
		StartTimeout:     15 * time.Second,
		GRPCDialOptions:  dialOptions(),
	})
	defer client.Kill()
	steps := []string{"start"}
	proto, err := client.Client()
	if err != nil {
		return nil, steps, startError(path, versions, err)
	}
	steps = append(steps, "handshake")
	if drv == nil {
		desc := &Description{Protocol: client.NegotiatedVersion()}
		if !check {
			return desc, steps, fmt.Errorf("plugin %s: %w: %s", path, ErrNoClient, kind)
		}
		return desc, append(steps, "describe skipped (no "+kind+" client in this command)"), nil
	}
	raw, err := proto.Dispense(kind)
	if err != nil {
		return nil, steps, fmt.Errorf("plugin %s does not serve the %s service (protocol v%d): %w", path, kind, client.NegotiatedVersion(), err)
	}
	if c, ok := raw.(interface{ Close() }); ok {
		defer c.Close()
	}
	d, err := drv.describe(ctx, raw)
	if err != nil {
		return nil, steps, fmt.Errorf("plugin %s: describe: %w", path, err)
	}
	steps = append(steps, "describe")
	desc := &Description{Name: d.name, Version: d.version, Protocol: client.NegotiatedVersion(),
		Schema: d.schema, Credentials: d.credentials}
	switch full := d.full.(type) {
	case *provider.Description:
		desc.Capabilities = full.Capabilities
	case *storage.Description:
		desc.Capabilities = full.Capabilities
	case *secrets.Description:
		desc.Capabilities = full.Capabilities
	case *middleware.Described:
		desc.Capabilities = full.Hooks
	}
	if !check {
		return desc, steps, nil
	}
	if err := checkSchema(desc.Schema); err != nil {
		return desc, steps, fmt.Errorf("plugin %s: config schema: %w", path, err)
	}
	if desc.NeedsConfig() {
		return desc, append(steps, "configure skipped (needs config)"), nil
	}
	creds := map[string]string{}
	if kind == "storage" {
		key := make([]byte, 32)
		rand.Read(key)
		creds[SigningKeyCredential] = hex.EncodeToString(key)
	}
	diags, err := drv.configure(ctx, raw, "self-check", []byte(`{}`), creds, nil)
	if err != nil {
		return desc, steps, fmt.Errorf("plugin %s: configure: %w", path, err)
	}
	if diags.HasErrors() {
		// The plugin answered and refused: it needs config its schema
		// does not mark required. That is its right, not a failure.
		return desc, append(steps, "configure skipped (needs config: "+brief(diags.Error())+")"), nil
	}
	steps = append(steps, "configure")
	if slices.Contains(desc.Capabilities, provider.CapHealth) {
		if err := drv.health(ctx, raw); err != nil {
			// Without config, an upstream is usually out of reach; the
			// plugin answering the call is what is checked.
			return desc, append(steps, "health fails without config ("+brief(err.Error())+")"), nil
		}
		steps = append(steps, "health")
	}
	return desc, steps, nil
}

// checkSchema reports the first attribute whose type is not an HCL type
// expression: an instance of such a plugin could never be configured.
func checkSchema(s schema.Schema) error {
	for _, a := range s.Attributes {
		expr, diags := hclsyntax.ParseExpression([]byte(a.Type), "type", hcl.InitialPos)
		if !diags.HasErrors() {
			_, diags = typeexpr.TypeConstraint(expr)
		}
		if diags.HasErrors() {
			return fmt.Errorf("attribute %s: type %q is not an HCL type", a.Name, a.Type)
		}
	}
	for _, b := range s.Blocks {
		if err := checkSchema(b.Schema); err != nil {
			return fmt.Errorf("block %s: %w", b.Name, err)
		}
	}
	return nil
}

// brief shortens a message to one line of at most 60 characters.
func brief(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return s
}

// startError explains a failed start. A plugin that speaks none of the
// protocol versions this host serves is refused with both sides' versions
// (an *IncompatibleError), so that the operator knows whether to update
// the plugin or the host.
func startError(path string, versions map[int]goplugin.PluginSet, err error) error {
	m := incompatible.FindStringSubmatch(err.Error())
	if m == nil {
		return fmt.Errorf("start plugin %s: %w", path, err)
	}
	e := &IncompatibleError{Path: path, err: err}
	e.Plugin, _ = strconv.Atoi(m[1])
	for v := range versions {
		e.Host = append(e.Host, v)
	}
	slices.Sort(e.Host)
	return e
}

// incompatible matches go-plugin's refusal of a plugin whose announced
// protocol version the host did not offer.
var incompatible = regexp.MustCompile(`(?i)incompatible API version with plugin\. Plugin version: (\d+)`)

// IncompatibleError is the refusal of a plugin that speaks none of the
// host's plugin protocol versions.
type IncompatibleError struct {
	Path string
	// Plugin is the protocol version the plugin announced; Host lists the
	// versions this host serves.
	Plugin int
	Host   []int
	err    error
}

// Error implements error.
func (e *IncompatibleError) Error() string {
	host := make([]string, len(e.Host))
	for i, v := range e.Host {
		host[i] = fmt.Sprintf("v%d", v)
	}
	advice := "build it against an SDK of a protocol version this host serves"
	if len(e.Host) > 0 && e.Plugin > e.Host[len(e.Host)-1] {
		advice = "it was built for a newer host: upgrade llmproxy, or rebuild the plugin against an SDK of protocol " + host[len(host)-1]
	}
	return fmt.Sprintf("plugin %s refused: it speaks plugin protocol v%d, this host speaks %s; %s (see sdk/COMPATIBILITY.md)",
		e.Path, e.Plugin, strings.Join(host, ", "), advice)
}

// Unwrap returns go-plugin's error.
func (e *IncompatibleError) Unwrap() error { return e.err }
