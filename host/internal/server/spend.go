package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/valyala/fastjson"

	"github.com/llmproxy/llmproxy/host/internal/budget"
	"github.com/llmproxy/llmproxy/host/internal/price"
	"github.com/llmproxy/llmproxy/host/internal/router"
	"github.com/llmproxy/llmproxy/sdk/openai"
	"github.com/llmproxy/llmproxy/sdk/provider"
)

// CostHeader carries the cost of a JSON answer in USD. A stream reports
// its cost in the final usage chunk instead, as usage.cost_usd: SSE
// answers cannot carry trailers.
const CostHeader = "X-LLMProxy-Cost-USD"

// spend is a request's share of costing and budgets: the rates of its
// model, its reservation on the key's budgets and what it cost.
type spend struct {
	rates    price.Rates
	priced   bool
	hold     *budget.Hold
	accounts []budget.Account
	// cost is the request's cost in USD once known (costed set).
	cost   float64
	costed bool
}

// priceOf returns the rates a request is reserved at: for each kind of
// token the dearest of the model it names and of the upstream models its
// route may send it to, among those with a price; false when none has one.
func (s *Server) priceOf(model string, rt *router.Route) (price.Rates, bool) {
	t := s.opts.Prices
	if t == nil {
		return price.Rates{}, false
	}
	out, priced := t.Rates(model)
	if rt != nil {
		for _, tg := range rt.Targets {
			if tg.Model == "" || tg.Model == model {
				continue
			}
			if r, ok := t.Rates(tg.Model); ok {
				out, priced = dearest(out, r), true
			}
		}
	}
	return out, priced
}

func dearest(a, b price.Rates) price.Rates {
	return price.Rates{Input: max(a.Input, b.Input), Output: max(a.Output, b.Output), CachedInput: max(a.CachedInput, b.CachedInput),
		CacheWrite: max(a.CacheWrite, b.CacheWrite), Reasoning: max(a.Reasoning, b.Reasoning)}
}

// servedBy sets the rates the request is costed at to those of the
// upstream model of the target that answered (target.Model, or the
// requested model when the target sends it as is), when it has a price.
func (sp *spend) servedBy(s *Server, requested string, t router.Target) {
	if !sp.priced || s.opts.Prices == nil {
		return
	}
	model := t.Model
	if model == "" {
		model = requested
	}
	if r, ok := s.opts.Prices.Rates(model); ok {
		sp.rates = r
	}
}

// budgeted reports whether the request's key counts against a budget
// (its own or its group's).
func (r *call) budgeted() bool {
	pol := r.s.opts.Budgets
	if pol == nil || r.key == nil {
		return false
	}
	var usd float64
	if r.key.Budget != nil {
		usd = r.key.Budget.USD
	}
	return len(pol.Accounts(r.key.Name, usd, "", r.key.Group)) > 0
}

// reserve prices the request and, when its key has a budget, reserves
// the request's worst-case cost on it: every byte of the body counted as
// a prompt token (no tokenizer emits more tokens than bytes) at the
// dearest input rate, plus the output cap (max_completion_tokens or
// max_tokens, times n; budgets.max_tokens when the request sets none,
// which is then sent upstream as max_completion_tokens) at the dearest
// output rate. It reports false after answering a refused request.
func (r *call) reserve(p *parsed, rt *router.Route) bool {
	r.traffic.spend.rates, r.traffic.spend.priced = r.s.priceOf(p.model, rt)
	pol := r.s.opts.Budgets
	if pol == nil || r.key == nil {
		return true
	}
	var usd float64
	var period string
	if b := r.key.Budget; b != nil {
		usd, period = b.USD, b.Period
	}
	accounts := pol.Accounts(r.key.Name, usd, period, r.key.Group)
	if len(accounts) == 0 {
		return true
	}
	if !r.traffic.spend.priced {
		if pol.AllowUnknownPrice {
			return true
		}
		writeError(r.ctx, openai.NewError(http.StatusForbidden, openai.TypePermission, "price_unknown",
			fmt.Sprintf("model %q has no price in the gateway's price table, and key %q has a budget: "+
				"ask the operator to add a price block for it (or to set budgets.unknown_price = \"allow\")", p.model, r.key.Name)))
		return false
	}
	body := r.ctx.PostBody()
	out := p.maxTokens
	if p.chat && out == 0 {
		out = pol.MaxTokens
		r.ctx.Request.SetBody(withMaxTokens(body, out))
		r.traffic.est.MaxTokens = out // token limits see the cap too
	}
	if p.chat {
		out *= choices(body)
	}
	if !p.chat {
		out = 0
	}
	rates := r.traffic.spend.rates
	prompt := int64(len(body)) + imageTokens*images(body)
	worst := float64(prompt)*max(rates.Input, rates.CacheWrite) + float64(out)*max(rates.Output, rates.Reasoning)
	ctx, cancel := context.WithTimeout(context.Background(), pol.Timeout)
	defer cancel()
	h, err := pol.Ledger.Reserve(ctx, accounts, worst)
	if err != nil {
		writeError(r.ctx, r.budgetError(err, ""))
		return false
	}
	r.traffic.spend.hold, r.traffic.spend.accounts = h, accounts
	if p.stream && !p.streamOptions {
		// The real cost is read from the usage chunk, asked for on the
		// client's behalf and not forwarded.
		r.traffic.injectUsage = true
	}
	return true
}

// imageTokens is what an image part may cost beyond its bytes: an image
// by URL is a few bytes of the body, and providers charge a large image
// up to about 1,600 (Anthropic) to 2,500 (OpenAI's mini models) tokens.
const imageTokens = 2500

// images counts the image parts of a chat request's messages.
func images(body []byte) int64 {
	if !bytes.Contains(body, []byte(`image_url`)) {
		return 0
	}
	var p fastjson.Parser
	v, err := p.ParseBytes(body)
	if err != nil {
		return 0
	}
	var n int64
	for _, m := range v.GetArray("messages") {
		for _, part := range m.GetArray("content") {
			if string(part.GetStringBytes("type")) == "image_url" {
				n++
			}
		}
	}
	return n
}

// reserveDocuments extends the request's reservation by the documents
// the host resolved for it (from storage or URLs, after the reservation):
// each counted as one prompt token per byte of its text, or of its data
// when it has none. It returns the error to answer a refused request
// with.
func (r *call) reserveDocuments(docs []provider.Document) error {
	h := r.traffic.spend.hold
	if h == nil || len(docs) == 0 {
		return nil
	}
	var n int64
	for _, d := range docs {
		n += int64(max(len(d.Text), len(d.Data)))
	}
	rates := r.traffic.spend.rates
	ctx, cancel := context.WithTimeout(context.Background(), r.s.opts.Budgets.Timeout)
	defer cancel()
	err := h.Extend(ctx, r.traffic.spend.accounts, float64(n)*max(rates.Input, rates.CacheWrite))
	if err == nil {
		return nil
	}
	return r.budgetError(err, " with its documents")
}

// budgetError is the answer to a refused reservation: 402 when a budget
// would be passed, 503 when the ledger cannot be reached.
func (r *call) budgetError(err error, what string) error {
	var ex *budget.ExceededError
	if errors.As(err, &ex) {
		return openai.NewError(http.StatusPaymentRequired, openai.TypeInsufficientQuota, "budget_exceeded", ex.Error()+what)
	}
	r.s.log.Error("budget ledger unavailable; the request is refused", "request_id", r.id, "error", err)
	return openai.NewError(http.StatusServiceUnavailable, openai.TypeUnavailable, "budget_unavailable",
		"the gateway cannot check this key's budget right now; retry later")
}

// choices returns the request's n (1 when absent or invalid).
func choices(body []byte) int64 {
	if !bytes.Contains(body, []byte(`"n"`)) {
		return 1
	}
	n := fastjson.GetInt(body, "n")
	if n < 1 {
		return 1
	}
	return int64(n)
}

// withMaxTokens returns a chat request body that also caps the answer at
// n tokens (max_completion_tokens); the body is a JSON object without
// one.
func withMaxTokens(body []byte, n int64) []byte {
	i := bytes.IndexByte(body, '{')
	if i < 0 {
		return body
	}
	out := make([]byte, 0, len(body)+40)
	out = append(out, body[:i+1]...)
	out = append(out, `"max_completion_tokens":`...)
	out = strconv.AppendInt(out, n, 10)
	rest := bytes.TrimLeft(body[i+1:], " \t\r\n")
	if len(rest) > 0 && rest[0] != '}' {
		out = append(out, ',')
	}
	return append(out, body[i+1:]...)
}

// settleUnsettled charges a reservation that no path settled (streams
// take theirs along) at its full amount: a handler that reserved and did
// not say what the request cost must not make the budget forget it.
func (r *call) settleUnsettled() {
	if h := r.traffic.spend.hold; h != nil {
		r.s.log.Warn("a budget reservation was not settled by its request; it is charged in full",
			"request_id", r.id, "reserved_usd", h.Reserved())
		r.settleSpend(h.Reserved())
	}
}

// settleSpend replaces the request's reservation by its cost (0 when
// unknown: the request failed before the upstream answered).
func (r *call) settleSpend(cost float64) {
	h := r.traffic.spend.hold
	r.traffic.spend.hold = nil
	settleHold(r.s, h, cost)
}

func settleHold(s *Server, h *budget.Hold, cost float64) {
	if h == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.Budgets.Timeout)
	defer cancel()
	if err := h.Settle(ctx, cost); err != nil {
		s.log.Error("budget settlement failed; the reservation stays counted", "reserved_usd", h.Reserved(), "cost_usd", cost, "error", err)
	}
}

// costOf costs a JSON answer, parsed into v (nil when it is not JSON),
// from its usage, writes CostHeader and settles the reservation.
func (r *call) costOf(v *fastjson.Value) {
	if !r.traffic.spend.priced {
		r.settleSpend(0)
		return
	}
	var (
		u  price.Usage
		ok bool
	)
	if v != nil {
		u, ok = usageValue(v.Get("usage"))
	}
	if !ok {
		// No usage reported: charge the reservation, the worst case.
		if r.traffic.spend.hold != nil {
			r.settleSpend(r.traffic.spend.hold.Reserved())
		}
		return
	}
	r.traffic.spend.cost, r.traffic.spend.costed = r.traffic.spend.rates.Cost(u), true
	r.ctx.Response.Header.Set(CostHeader, formatUSD(r.traffic.spend.cost))
	r.settleSpend(r.traffic.spend.cost)
}

// formatUSD writes an amount with the precision of the ledger.
func formatUSD(usd float64) string { return strconv.FormatFloat(usd, 'f', 9, 64) }

// usageDetail reads the normalised usage of a response body or usage
// chunk (see openai.Usage).
func usageDetail(p *fastjson.Parser, body []byte) (price.Usage, bool) {
	if !bytes.Contains(body, []byte(`"usage"`)) {
		return price.Usage{}, false
	}
	v, err := p.ParseBytes(body)
	if err != nil {
		return price.Usage{}, false
	}
	return usageValue(v.Get("usage"))
}

func usageValue(u *fastjson.Value) (price.Usage, bool) {
	if u == nil || u.Type() != fastjson.TypeObject {
		return price.Usage{}, false
	}
	num := func(path ...string) int64 {
		x := u.Get(path...)
		if x == nil || x.Type() != fastjson.TypeNumber {
			return 0
		}
		n, _ := x.Int64()
		return max(n, 0)
	}
	pt := u.Get("prompt_tokens")
	if pt == nil || pt.Type() != fastjson.TypeNumber {
		return price.Usage{}, false
	}
	return price.Usage{
		Prompt:     num("prompt_tokens"),
		Completion: num("completion_tokens"),
		Cached:     num("prompt_tokens_details", "cached_tokens"),
		CacheWrite: max(num("prompt_tokens_details", openai.CacheWriteTokensField),
			num("prompt_tokens_details", "cache_creation_tokens")), // plugins built against SDK v1.0
		Reasoning: num("completion_tokens_details", "reasoning_tokens"),
	}, true
}

// streamSpend costs a stream: from its usage chunk, into which it writes
// usage.cost_usd, or, when the stream ends without one (cancelled,
// failed), from the prompt estimate and one token per content chunk.
type streamSpend struct {
	s      *Server
	rates  price.Rates
	priced bool
	hold   *budget.Hold
	p      fastjson.Parser
	arena  fastjson.Arena
	usage  price.Usage
	known  bool
}

// takeStreamSpend moves the request's costing into the stream's writer.
func (r *call) takeStreamSpend() *streamSpend {
	ss := &streamSpend{s: r.s, rates: r.traffic.spend.rates, priced: r.traffic.spend.priced, hold: r.traffic.spend.hold}
	r.traffic.spend.hold = nil
	return ss
}

// observe reads a chunk that carries usage; it returns the chunk with
// usage.cost_usd added when it has a price.
func (ss *streamSpend) observe(chunk []byte) []byte {
	// Content chunks carry no usage or "usage":null.
	if !bytes.Contains(chunk, []byte(`"prompt_tokens"`)) {
		return chunk
	}
	v, err := ss.p.ParseBytes(chunk)
	if err != nil {
		return chunk
	}
	uv := v.Get("usage")
	u, ok := usageValue(uv)
	if !ok {
		return chunk
	}
	ss.usage, ss.known = u, true
	if !ss.priced {
		return chunk
	}
	ss.arena.Reset()
	uv.Set("cost_usd", ss.arena.NewNumberString(formatUSD(ss.rates.Cost(u))))
	return v.MarshalTo(nil)
}

// done settles the stream; m is the stream's token meter, for the
// estimate of a stream without usage.
func (ss *streamSpend) done(m *meter) (cost float64, known bool) {
	if !ss.priced {
		settleHold(ss.s, ss.hold, 0)
		return 0, false
	}
	u := ss.usage
	if !ss.known {
		u = price.Usage{Prompt: m.prompt, Completion: m.chunks}
	}
	cost = ss.rates.Cost(u)
	settleHold(ss.s, ss.hold, cost)
	return cost, ss.known
}
