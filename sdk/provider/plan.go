package provider

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/llmproxy/llmproxy/sdk/internal/rpc"
	providerv1 "github.com/llmproxy/llmproxy/sdk/proto/llmproxy/provider/v1"
)

// CapForwardPlan says the provider hands the host a forwarding plan (see
// Planner). The SDK adds it for a provider that implements Planner.
const CapForwardPlan = "forward_plan"

// PlanVersion is the forwarding plan format this SDK writes and reads.
// A host refuses a plan of another version and calls the plugin instead.
const PlanVersion = 1

// Rewrites and error mappings a plan may name. sdk/relay implements
// them (SetModel, UpstreamError) for the host and for plugins alike.
const (
	// RewriteModel sets the body's top-level "model" to the routed model.
	RewriteModel = "model"
	// MappingOpenAI maps upstream errors in OpenAI's shape.
	MappingOpenAI = "openai"
)

// Operations a plan may cover.
const (
	// OpChat is POST chat completions, streamed or not.
	OpChat = "chat"
	// OpEmbeddings is POST embeddings.
	OpEmbeddings = "embeddings"
)

// Plan is a forwarding plan: what the host needs to send a call to the
// upstream itself and relay the answer's bytes unchanged, without calling
// the plugin. See Planner.
type Plan struct {
	// Version is the plan format; zero means PlanVersion.
	Version int
	// Name is the upstream's name in error messages, e.g. "openai".
	Name string
	// URLs maps each covered operation (OpChat, OpEmbeddings) to its
	// absolute http or https upstream URL. An operation not listed is
	// served by the plugin.
	URLs map[string]string
	// Header holds the headers every upstream request carries: the
	// credential (Authorization, api-key ...) and any fixed extras. The
	// host sets Content-Type, Accept and the trace context itself.
	Header map[string]string
	// ModelRewrite is how the routed model reaches the body:
	// RewriteModel sets the top-level "model"; "" sends the body as
	// the client wrote it.
	ModelRewrite string
	// ErrorMapping names how an upstream error answer becomes the
	// client's error; MappingOpenAI is the only one today.
	ErrorMapping string
	// RelayedHeaders maps upstream response header names to the names
	// the client sees them under.
	RelayedHeaders map[string]string
	// Timeout bounds one upstream request, streams included; zero means
	// ten minutes.
	Timeout time.Duration
	// Expires is when the plan stops being valid (it carries a token that
	// expires, say); zero means it lasts until the next Configure. The
	// host asks for a new plan when two thirds of its life have passed,
	// and calls the plugin once it has expired without a successor.
	Expires time.Time

	// Resolved by the host's client when it accepts the plan.
	urls   map[string]*url.URL
	header [][2]string
	issued time.Time
}

// URL returns where op goes; ok is false when the plan does not cover
// op. The URL must not be changed.
func (p *Plan) URL(op string) (u *url.URL, ok bool) {
	u, ok = p.urls[op]
	return u, ok
}

// HeaderList returns the plan's headers as name/value pairs, in a stable
// order, ready to add to a request.
func (p *Plan) HeaderList() [][2]string { return p.header }

// Planner is implemented by a provider whose upstream speaks the OpenAI
// API closely enough that most calls need no translation: the plugin
// sets the model, adds a credential and relays the answer unchanged.
// Such a provider can hand the host a forwarding plan instead of serving
// each call: the host then sends planned calls to the upstream with its
// own pooled client and streams the bytes back itself, which spares the
// host → plugin hop on the hot path, while the plugin stays the control
// plane (it builds the plan, validates config, answers Describe and
// Health, and still serves everything the plan does not cover).
//
// The host asks for a plan after every successful Configure (so a
// credential rotation, which arrives as a Configure, yields a plan with
// the new credential) and again once two thirds of a plan's life have
// passed when it has an expiry. Until it has a plan, when asking fails,
// when the plan is of a version, rewrite or error mapping the host does
// not know, or once it has expired, the host calls the plugin as usual.
// It also calls the plugin for requests a plan cannot carry: chat
// requests with documents, transparent mode, and operations the plan
// does not list.
//
// What a plan costs: the host parses the upstream's answers to planned
// calls, with bounded reads and no translation; the credential in
// Header is held by the host (which resolved it for the plugin in the
// first place); and the error mapping is named, not shipped, so that
// both sides map errors with the same code (sdk/relay). A plugin whose
// upstream needs per-request signing, translation or an ambient cloud
// identity that only its SDK can use must not implement Planner, or must
// return a nil plan when its configuration needs that.
//
// Plan returns nil, nil when no plan applies to the current
// configuration (the plugin then serves every call).
type Planner interface {
	Plan(ctx context.Context) (*Plan, error)
}

// resolve checks p as a host that knows PlanVersion, the model rewrite
// RewriteModel and the error mapping MappingOpenAI, and
// prepares its targets and headers.
func (p *Plan) resolve(now time.Time) error {
	if p.Version == 0 {
		p.Version = PlanVersion
	}
	if p.Version != PlanVersion {
		return fmt.Errorf("plan version %d is not known (this host reads version %d)", p.Version, PlanVersion)
	}
	if p.ModelRewrite != "" && p.ModelRewrite != RewriteModel {
		return fmt.Errorf("plan model rewrite %q is not known", p.ModelRewrite)
	}
	if p.ErrorMapping != MappingOpenAI {
		return fmt.Errorf("plan error mapping %q is not known", p.ErrorMapping)
	}
	if !p.Expires.IsZero() && !now.Before(p.Expires) {
		return errors.New("plan has already expired")
	}
	if p.Name == "" {
		p.Name = "upstream"
	}
	if p.Timeout <= 0 {
		p.Timeout = 10 * time.Minute
	}
	p.urls = map[string]*url.URL{}
	for op, raw := range p.URLs {
		if op != OpChat && op != OpEmbeddings {
			continue // an operation this host does not forward
		}
		u, err := url.Parse(raw)
		if err != nil {
			return fmt.Errorf("plan URL of %s: %w", op, err)
		}
		if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.User != nil || u.Fragment != "" {
			return fmt.Errorf("plan URL of %s (%s) is not an absolute http or https URL", op, u.Redacted())
		}
		p.urls[op] = u
	}
	for k, v := range p.Header {
		if k == "" || strings.ContainsAny(k, " \t\r\n:\x00") || strings.ContainsAny(v, "\r\n\x00") {
			return fmt.Errorf("plan header %q is not a valid header", k)
		}
		p.header = append(p.header, [2]string{http.CanonicalHeaderKey(k), v})
	}
	sortPairs(p.header)
	p.issued = now
	return nil
}

func sortPairs(h [][2]string) {
	for i := 1; i < len(h); i++ {
		for j := i; j > 0 && h[j][0] < h[j-1][0]; j-- {
			h[j], h[j-1] = h[j-1], h[j]
		}
	}
}

// renewAt is when a plan with an expiry is asked for again.
func (p *Plan) renewAt() time.Time {
	if p.Expires.IsZero() {
		return time.Time{}
	}
	return p.issued.Add(p.Expires.Sub(p.issued) * 2 / 3)
}

func planToProto(p *Plan) *providerv1.ForwardPlanResponse {
	out := &providerv1.ForwardPlanResponse{
		Version:        uint32(p.Version),
		ModelRewrite:   p.ModelRewrite,
		ErrorMapping:   p.ErrorMapping,
		TimeoutMs:      p.Timeout.Milliseconds(),
		RelayedHeaders: p.RelayedHeaders,
		Name:           p.Name,
	}
	if out.Version == 0 {
		out.Version = PlanVersion
	}
	if !p.Expires.IsZero() {
		out.ExpiresUnixNano = p.Expires.UnixNano()
	}
	for op, u := range p.URLs {
		out.Operations = append(out.Operations, &providerv1.PlannedOperation{Operation: op, Url: u})
	}
	for k, v := range p.Header {
		out.Headers = append(out.Headers, &providerv1.Header{Name: k, Values: []string{v}})
	}
	return out
}

func planFromProto(r *providerv1.ForwardPlanResponse) *Plan {
	if r.Version == 0 {
		return nil
	}
	p := &Plan{
		Version:        int(r.Version),
		Name:           r.Name,
		URLs:           map[string]string{},
		Header:         map[string]string{},
		ModelRewrite:   r.ModelRewrite,
		ErrorMapping:   r.ErrorMapping,
		RelayedHeaders: r.RelayedHeaders,
		Timeout:        time.Duration(r.TimeoutMs) * time.Millisecond,
	}
	if r.ExpiresUnixNano != 0 {
		p.Expires = time.Unix(0, r.ExpiresUnixNano)
	}
	for _, o := range r.Operations {
		p.URLs[o.Operation] = o.Url
	}
	for _, h := range r.Headers {
		if len(h.Values) > 0 {
			p.Header[h.Name] = h.Values[0]
		}
	}
	return p
}

// planState is the client's view of the plugin's plan.
type planState struct {
	// announced is set by Describe when the plugin has CapForwardPlan.
	announced atomic.Bool
	cur       atomic.Pointer[Plan]
	// gen counts Configure calls, so that a refresh that raced a newer
	// Configure does not store a stale plan.
	gen        atomic.Uint64
	refreshing atomic.Bool
	mu         sync.Mutex
	err        error
}

// ForwardPlan asks the plugin for its plan now. It returns nil, nil when
// the plugin has none for its configuration.
func (c *Client) ForwardPlan(ctx context.Context) (*Plan, error) {
	r, err := c.rpc.ForwardPlan(ctx, &providerv1.ForwardPlanRequest{})
	if err != nil {
		return nil, rpc.FromStatus(err)
	}
	p := planFromProto(r)
	if p == nil {
		return nil, nil
	}
	if err := p.resolve(time.Now()); err != nil {
		return nil, err
	}
	return p, nil
}

// refreshPlan asks for a new plan and stores it. When asking fails, a
// renewal (renew) keeps the current plan until it expires, and a
// Configure drops it, since it may carry the credentials that Configure
// replaced; calls then go to the plugin.
func (c *Client) refreshPlan(ctx context.Context, renew bool) {
	gen := c.plan.gen.Load()
	p, err := c.ForwardPlan(ctx)
	c.plan.mu.Lock()
	defer c.plan.mu.Unlock()
	if c.plan.gen.Load() != gen {
		return
	}
	c.plan.err = err
	if err != nil && renew {
		return
	}
	c.plan.cur.Store(p)
}

// Plan returns the plugin's current forwarding plan, or nil when calls
// must go to the plugin: it announced no plan, asking for one failed, the
// plan is not one this host knows, or it has expired. When a plan nears
// its expiry Plan asks for the next one in the background.
func (c *Client) Plan() *Plan {
	p := c.plan.cur.Load()
	if p == nil || p.Expires.IsZero() {
		return p
	}
	now := time.Now()
	if !now.Before(p.renewAt()) && c.plan.refreshing.CompareAndSwap(false, true) {
		go func() {
			defer c.plan.refreshing.Store(false)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c.refreshPlan(ctx, true)
		}()
	}
	if !now.Before(p.Expires) {
		return nil
	}
	return p
}

// PlanError returns why the last request for a plan failed or was
// refused; nil when it succeeded or none was made.
func (c *Client) PlanError() error {
	c.plan.mu.Lock()
	defer c.plan.mu.Unlock()
	return c.plan.err
}
