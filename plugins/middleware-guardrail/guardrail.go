package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/llmproxy/llmproxy/sdk/middleware"
	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/schema"
)

// Version is the plugin's version.
const Version = "0.1.0"

// Config is the guardrail's config block.
type Config struct {
	DenyPatterns []string `json:"deny_patterns"`
	DenyKeywords []string `json:"deny_keywords"`
	// Mask is nil when unset (the host sends null), which masks every
	// kind; an empty list masks none.
	Mask          *[]string `json:"mask"`
	MaskResponses bool      `json:"mask_responses"`
	CrashOn       string    `json:"crash_on"`
	HangOn        string    `json:"hang_on"`
}

// rule is one compiled deny rule and where it came from.
type rule struct {
	re   *regexp.Regexp
	name string
}

// policy is a configured guardrail; it is swapped whole on Configure.
type policy struct {
	deny          []rule
	mask          Masker
	maskResponses bool
	crashOn       string
	hangOn        string
}

// Guardrail vetoes chat requests whose text matches a deny rule and masks
// personal data in the text of requests and, when mask_responses is set,
// of answers.
type Guardrail struct {
	p atomic.Pointer[policy]
}

var (
	_ middleware.Middleware   = (*Guardrail)(nil)
	_ middleware.RequestHook  = (*Guardrail)(nil)
	_ middleware.ChunkHook    = (*Guardrail)(nil)
	_ middleware.ResponseHook = (*Guardrail)(nil)
	_ middleware.HookSelector = (*Guardrail)(nil)
)

// Describe names the plugin and its config.
func (g *Guardrail) Describe(context.Context) (*middleware.Description, error) {
	return &middleware.Description{
		Name: "guardrail", Version: Version,
		ConfigSchema: schema.Schema{Attributes: []schema.Attribute{
			{Name: "deny_patterns", Type: "list(string)", Description: "RE2 regular expressions; a request whose text matches one is refused (add (?i) for case-insensitive)."},
			{Name: "deny_keywords", Type: "list(string)", Description: "Words or phrases refused case-insensitively at word boundaries."},
			{Name: "mask", Type: "list(string)", Description: `Personal data masked in requests: any of "email", "phone", "card" (default all three; [] masks none).`},
			{Name: "mask_responses", Type: "bool", Description: "Also mask answers: the final JSON response and each streamed chunk."},
			{Name: "crash_on", Type: "string", Description: "Test-only fault switch: the process exits when a text it checks (request, or answer with mask_responses) contains this text."},
			{Name: "hang_on", Type: "string", Description: "Test-only fault switch: the hook blocks until the host's budget ends when a text it checks contains this text."},
		}},
	}, nil
}

// EnabledHooks leaves out the answer hooks unless mask_responses is set,
// so that streams without masking cost no call per chunk.
func (g *Guardrail) EnabledHooks() []string {
	if p := g.p.Load(); p != nil && (!p.maskResponses || !p.mask.Any()) {
		return []string{middleware.HookRequest}
	}
	return []string{middleware.HookRequest, middleware.HookChunk, middleware.HookResponse}
}

// Configure compiles the deny lists.
func (g *Guardrail) Configure(_ context.Context, cfg *middleware.Config) error {
	var c Config
	if err := cfg.Decode(&c); err != nil {
		return err
	}
	kinds := []string{KindEmail, KindPhone, KindCard}
	if c.Mask != nil {
		kinds = *c.Mask
	}
	p := &policy{mask: NewMasker(kinds), maskResponses: c.MaskResponses, crashOn: c.CrashOn, hangOn: c.HangOn}
	var diags schema.Diagnostics
	for _, k := range kinds {
		if k != KindEmail && k != KindPhone && k != KindCard {
			diags = append(diags, schema.Diagnostic{Summary: "unknown mask kind", Detail: fmt.Sprintf("%q: use email, phone or card", k), Path: []string{"mask"}})
		}
	}
	for i, s := range c.DenyPatterns {
		re, err := regexp.Compile(s)
		if err != nil {
			diags = append(diags, schema.Diagnostic{Summary: "invalid deny pattern", Detail: fmt.Sprintf("deny_patterns[%d]: %v", i, err), Path: []string{"deny_patterns"}})
			continue
		}
		p.deny = append(p.deny, rule{re: re, name: fmt.Sprintf("deny_patterns[%d]", i)})
	}
	for i, k := range c.DenyKeywords {
		k = strings.TrimSpace(k)
		if k == "" {
			diags = append(diags, schema.Diagnostic{Summary: "empty deny keyword", Detail: fmt.Sprintf("deny_keywords[%d] is empty", i), Path: []string{"deny_keywords"}})
			continue
		}
		re := regexp.MustCompile(`(?i)(?:^|\b|\s)` + regexp.QuoteMeta(k) + `(?:$|\b|\s)`)
		p.deny = append(p.deny, rule{re: re, name: fmt.Sprintf("deny_keywords[%d]", i)})
	}
	if diags.HasErrors() {
		return diags
	}
	g.p.Store(p)
	return nil
}

func (g *Guardrail) policy() (*policy, error) {
	p := g.p.Load()
	if p == nil {
		return nil, fmt.Errorf("the guardrail is not configured")
	}
	return p, nil
}

// OnRequest refuses a request whose text matches a deny rule, then
// masks personal data in it.
func (g *Guardrail) OnRequest(ctx context.Context, call *middleware.Call, body []byte) ([]byte, error) {
	p, err := g.policy()
	if err != nil {
		return nil, err
	}
	var req map[string]json.RawMessage
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, openai.InvalidRequest("", "request body is not a JSON object: "+err.Error())
	}
	var msgs []map[string]json.RawMessage
	if err := json.Unmarshal(req["messages"], &msgs); err != nil {
		return nil, openai.InvalidRequest("messages", "messages must be an array of message objects")
	}
	// Every text of the request is checked before anything is masked.
	for _, m := range msgs {
		if err := forText(m, func(s string) (string, error) { return s, p.check(ctx, s) }); err != nil {
			return nil, err
		}
	}
	if !p.mask.Any() {
		return nil, nil
	}
	total := 0
	for _, m := range msgs {
		forText(m, func(s string) (string, error) {
			out, n := p.mask.Mask(s)
			total += n
			return out, nil
		})
	}
	if total == 0 {
		return nil, nil
	}
	middleware.Logger().Debug("masked personal data", "request_id", call.RequestID, "count", total)
	if req["messages"], err = json.Marshal(msgs); err != nil {
		return nil, err
	}
	return json.Marshal(req)
}

// check vetoes s when it matches a deny rule and fires the fault
// switches.
func (p *policy) check(ctx context.Context, s string) error {
	if err := p.fault(ctx, s); err != nil {
		return err
	}
	for _, r := range p.deny {
		if r.re.MatchString(s) {
			return middleware.Veto("the request was refused by the content policy (%s)", r.name)
		}
	}
	return nil
}

// fault fires the test-only fault switches on text that contains their
// trigger: crash_on ends the process, hang_on blocks until ctx ends.
func (p *policy) fault(ctx context.Context, s string) error {
	if p.crashOn != "" && strings.Contains(s, p.crashOn) {
		middleware.Logger().Error("crash_on matched; exiting")
		os.Exit(7)
	}
	if p.hangOn != "" && strings.Contains(s, p.hangOn) {
		select {
		case <-ctx.Done():
		case <-time.After(time.Hour):
		}
		return ctx.Err()
	}
	return nil
}

// OnChunk masks personal data in the deltas of a streamed chunk when
// mask_responses is set.
func (g *Guardrail) OnChunk(ctx context.Context, _ *middleware.Call, _ int64, chunk []byte) ([]byte, error) {
	return g.maskAnswer(ctx, chunk, "delta")
}

// OnResponse masks personal data in the messages of a response when
// mask_responses is set.
func (g *Guardrail) OnResponse(ctx context.Context, _ *middleware.Call, body []byte) ([]byte, error) {
	return g.maskAnswer(ctx, body, "message")
}

// maskAnswer masks choices[].<field>.content of a response or chunk.
func (g *Guardrail) maskAnswer(ctx context.Context, body []byte, field string) ([]byte, error) {
	p, err := g.policy()
	if err != nil {
		return nil, err
	}
	if !p.maskResponses || !p.mask.Any() {
		return nil, nil
	}
	var resp map[string]json.RawMessage
	if json.Unmarshal(body, &resp) != nil {
		return nil, nil
	}
	var choices []map[string]json.RawMessage
	if json.Unmarshal(resp["choices"], &choices) != nil {
		return nil, nil
	}
	total := 0
	for _, c := range choices {
		var m map[string]json.RawMessage
		if json.Unmarshal(c[field], &m) != nil || m == nil {
			continue
		}
		err := forText(m, func(s string) (string, error) {
			if err := p.fault(ctx, s); err != nil {
				return "", err
			}
			out, n := p.mask.Mask(s)
			total += n
			return out, nil
		})
		if err != nil {
			return nil, err
		}
		c[field], _ = json.Marshal(m)
	}
	if total == 0 {
		return nil, nil
	}
	resp["choices"], _ = json.Marshal(choices)
	return json.Marshal(resp)
}

// forText calls f on the text of a message (a string content or the
// text of each text part) and stores what f returns.
func forText(m map[string]json.RawMessage, f func(string) (string, error)) error {
	raw, ok := m["content"]
	if !ok {
		return nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		out, err := f(s)
		if err != nil {
			return err
		}
		if out != s {
			m["content"], _ = json.Marshal(out)
		}
		return nil
	}
	var parts []map[string]json.RawMessage
	if json.Unmarshal(raw, &parts) != nil {
		return nil
	}
	changed := false
	for _, part := range parts {
		var t string
		if json.Unmarshal(part["text"], &t) != nil {
			continue
		}
		out, err := f(t)
		if err != nil {
			return err
		}
		if out != t {
			part["text"], _ = json.Marshal(out)
			changed = true
		}
	}
	if changed {
		m["content"], _ = json.Marshal(parts)
	}
	return nil
}
