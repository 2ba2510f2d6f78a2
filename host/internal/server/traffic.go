package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/valyala/fastjson"

	"github.com/llmproxy/llmproxy/host/internal/config"
	"github.com/llmproxy/llmproxy/host/internal/ratelimit"
	"github.com/llmproxy/llmproxy/host/internal/router"
	"github.com/llmproxy/llmproxy/sdk/openai"
)

// traffic is a request's share of traffic control: its size estimate for
// token limits, what it holds of the limits and the decision whose
// numbers the x-ratelimit-* headers report.
type traffic struct {
	est ratelimit.Usage
	// injectUsage is set when the gateway asked the upstream for a
	// stream's usage chunk on behalf of a token limit, the client having
	// not: the chunk is read and not forwarded.
	injectUsage bool
	route       string
	// spend is the request's costing and budget reservation.
	spend    spend
	tickets  []*ratelimit.Ticket
	decision *ratelimit.Decision
}

// admit decides the request-level limits of a chat or embeddings request
// and writes the x-ratelimit-* headers. It reports false after answering
// a refused request with 429.
func (r *call) admit(p *parsed, rt *router.Route) bool {
	r.traffic.route = rt.Name
	r.traffic.est = ratelimit.Usage{Prompt: int64(len(r.ctx.PostBody())+3) / 4, MaxTokens: p.maxTokens, NoCompletion: !p.chat}
	if !r.reserve(p, rt) {
		return false
	}
	l := r.s.opts.Limits
	if l == nil {
		return true
	}
	r.traffic.injectUsage = r.traffic.injectUsage || p.stream && !p.streamOptions && (l.HasTokenRules() || r.key.Limits.Tokens())
	t, d := l.Admit(context.Background(), r.subject(""), r.traffic.est)
	if d == nil {
		return true
	}
	r.traffic.decision = d
	if d.Err != nil {
		r.s.limitLog(d)
	}
	r.limitHeaders()
	if !d.Allowed {
		if ms := d.RetryAfterMS(); ms != "" {
			r.ctx.Response.Header.Set("retry-after-ms", ms)
		}
		r.settleSpend(0)
		writeError(r.ctx, d.Error())
		return false
	}
	if t != nil {
		r.traffic.tickets = append(r.traffic.tickets, t)
	}
	return true
}

// subject is what the request is limited by; the key's own limits, if
// any, in its bucket named by the key's id (a stored key) or name.
func (r *call) subject(instance string) ratelimit.Subject {
	s := ratelimit.Subject{Key: r.key.Name, Model: r.requested, Route: r.traffic.route, Instance: instance}
	if r.key.Limits != nil {
		s.Limits, s.KeyID = r.key.Limits, r.key.ID
		if s.KeyID == "" {
			s.KeyID = r.key.Name
		}
	}
	return s
}

// limitHeaders (re)writes the x-ratelimit-* headers of the request's
// decision, over any an upstream sent: they describe the gateway's
// limits, never the upstream account's.
func (r *call) limitHeaders() {
	r.traffic.decision.Headers(r.ctx.Response.Header.Set)
}

// settle reconciles the request's token reservations with the tokens it
// used and returns its concurrency leases; with a remote backend off the
// request's path, so that the answer does not wait for a round trip.
func (r *call) settle(used int64, known bool) {
	r.settleSpend(0) // a no-op once the answer has been costed
	if len(r.traffic.tickets) == 0 {
		return
	}
	tickets := r.traffic.tickets
	r.traffic.tickets = nil
	done := func() {
		for _, t := range tickets {
			t.Done(used, known)
		}
	}
	if r.s.opts.Limits.Remote() {
		go done()
		return
	}
	done()
}

// usageOf reads usage.total_tokens (or prompt plus completion tokens) of
// a response body.
func usageOf(p *fastjson.Parser, body []byte) (int64, bool) {
	if !bytes.Contains(body, []byte(`"usage"`)) {
		return 0, false
	}
	v, err := p.ParseBytes(body)
	if err != nil {
		return 0, false
	}
	u := v.Get("usage")
	if u == nil || u.Type() != fastjson.TypeObject {
		return 0, false
	}
	num := func(name string) (int64, bool) {
		x := u.Get(name)
		if x == nil || x.Type() != fastjson.TypeNumber {
			return 0, false
		}
		n, err := x.Int64()
		return n, err == nil
	}
	if n, ok := num("total_tokens"); ok {
		return n, true
	}
	pt, ok := num("prompt_tokens")
	ct, _ := num("completion_tokens")
	return pt + ct, ok
}

// meter counts what a stream used: the usage chunk when the stream has
// one, else the prompt estimate plus one token per content chunk.
type meter struct {
	p      fastjson.Parser
	prompt int64
	chunks int64
	usage  int64
	known  bool
	// raw is the last chunk that carried usage.
	raw []byte
}

// observe reads one chunk; it reports whether the chunk carries only the
// usage (its choices are empty).
func (m *meter) observe(chunk []byte) (usageOnly bool) {
	n, ok := usageOf(&m.p, chunk)
	if !ok {
		m.chunks++
		return false
	}
	m.usage, m.known = n, true
	m.raw = append(m.raw[:0], chunk...)
	v, err := m.p.ParseBytes(chunk)
	if err != nil {
		return false
	}
	c := v.Get("choices")
	if c == nil || c.Type() == fastjson.TypeNull {
		return true
	}
	arr, err := c.Array()
	return err == nil && len(arr) == 0
}

// withUsage returns a chat request body that also asks for the stream's
// usage chunk (stream_options.include_usage); the body is a JSON object
// without stream_options.
func withUsage(body []byte) []byte {
	i := bytes.IndexByte(body, '{')
	if i < 0 {
		return body
	}
	out := make([]byte, 0, len(body)+48)
	out = append(out, body[:i+1]...)
	out = append(out, `"stream_options":{"include_usage":true}`...)
	rest := bytes.TrimLeft(body[i+1:], " \t\r\n")
	if len(rest) > 0 && rest[0] != '}' {
		out = append(out, ',')
	}
	return append(out, body[i+1:]...)
}

func (m *meter) used() int64 {
	if m.known {
		return m.usage
	}
	return m.prompt + m.chunks
}

// limitLog logs a decision taken without the backend, at most once a
// second; the metrics count every one.
func (s *Server) limitLog(d *ratelimit.Decision) {
	now := time.Now().UnixNano()
	last := s.limitLogged.Load()
	if now-last < int64(time.Second) || !s.limitLogged.CompareAndSwap(last, now) {
		return
	}
	mode := "served (fail open)"
	if d.Unavailable {
		mode = "refused (fail closed)"
	}
	s.log.Warn("rate limit backend unavailable; requests are "+mode, "error", d.Err)
}

// upstreamFault reports whether a failed attempt counts against the
// instance's circuit: 429, 5xx and timeouts, not the client's mistakes or
// its going away.
func upstreamFault(err error) bool {
	e := asAPIError(err)
	return e.Status == http.StatusTooManyRequests || e.Status >= 500
}

// sameTargetRetryable reports whether the same target may be tried again
// after err: transient statuses only, not refused credentials, a spent
// quota or a missing plugin.
func sameTargetRetryable(err error) bool {
	var e *openai.Error
	if !errors.As(err, &e) || !retryable(err) {
		return false
	}
	switch e.Code {
	case "upstream_auth_failed", "insufficient_quota", "plugin_unavailable", "instance_unavailable", "plugin_connect_timeout":
		return false
	}
	return true
}

// retryWait returns how long to wait before retry n (1 for the first) of
// the same target after err, and false when the policy says to move on:
// the upstream's Retry-After exceeds the cap, or the wait would pass the
// deadline.
func retryWait(p config.RetryPolicy, n int, err error, deadline time.Time) (time.Duration, bool) {
	ceiling := p.Backoff << min(n-1, 20)
	if ceiling > p.MaxBackoff || ceiling <= 0 {
		ceiling = p.MaxBackoff
	}
	var wait time.Duration
	if ceiling > 0 {
		wait = rand.N(ceiling + 1) // full jitter
	}
	var e *openai.Error
	if errors.As(err, &e) && e.RetryAfter > 0 {
		if e.RetryAfter > p.MaxRetryAfter {
			return 0, false
		}
		wait = max(wait, e.RetryAfter)
	}
	if time.Now().Add(wait).After(deadline) {
		return 0, false
	}
	return wait, true
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// skipped remembers why targets were passed over without an attempt, to
// answer when no attempt could be made at all.
type skipped struct {
	ejected, limited int
	reopen           time.Duration // soonest circuit reopening
	limit            *ratelimit.Decision
}

func (s *skipped) err() error {
	switch {
	case s.limited > 0 && s.limit != nil:
		e := s.limit.Error()
		if !s.limit.Unavailable {
			e.Message = "every instance serving this model is at its configured quota; " + e.Message
		}
		return e
	case s.ejected > 0:
		e := openai.NewError(http.StatusServiceUnavailable, openai.TypeUnavailable, "no_healthy_instance",
			fmt.Sprintf("every instance serving this model is ejected after failures; the first is probed again in %v",
				s.reopen.Round(time.Millisecond)))
		e.RetryAfter = max(s.reopen, time.Second)
		return e
	}
	return nil
}
