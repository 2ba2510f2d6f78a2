package admin

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/llmproxy/llmproxy/host/internal/store"
	"github.com/llmproxy/llmproxy/sdk/openai"
)

// usageParams are the query parameters of /admin/v1/usage.
var usageParams = []string{"key", "model", "from", "to", "group_by", "limit"}

// groupings are the values of group_by.
var groupings = []string{store.GroupByModel, store.GroupByKey, store.GroupByInstance, store.GroupByDay, store.GroupByHour}

// maxUsageLimit bounds the rows one usage answer holds.
const maxUsageLimit = 10000

// usageGroup is one row of a grouped usage answer.
type usageGroup struct {
	Group            string  `json:"group"`
	Requests         int64   `json:"requests"`
	Errors           int64   `json:"errors"`
	PromptTokens     int64   `json:"prompt_tokens"`
	CompletionTokens int64   `json:"completion_tokens"`
	CachedTokens     int64   `json:"cached_tokens"`
	CacheWriteTokens int64   `json:"cache_write_tokens"`
	ReasoningTokens  int64   `json:"reasoning_tokens"`
	CostUSD          float64 `json:"cost_usd"`
}

// usageRecord is one row of an ungrouped usage answer.
type usageRecord struct {
	RequestID        string  `json:"request_id"`
	Key              string  `json:"key"`
	KeyGroup         string  `json:"key_group"`
	Model            string  `json:"model"`
	Instance         string  `json:"instance"`
	Status           int     `json:"status"`
	PromptTokens     int64   `json:"prompt_tokens"`
	CompletionTokens int64   `json:"completion_tokens"`
	CachedTokens     int64   `json:"cached_tokens"`
	CacheWriteTokens int64   `json:"cache_write_tokens"`
	ReasoningTokens  int64   `json:"reasoning_tokens"`
	CostUSD          float64 `json:"cost_usd"`
	LatencyMS        float64 `json:"latency_ms"`
	Time             string  `json:"time"`
}

func (a *API) usage(r Request) {
	var q store.UsageQuery
	args := r.Ctx.QueryArgs()
	var bad *openai.Error
	args.VisitAll(func(k, v []byte) {
		if bad != nil {
			return
		}
		name, val := string(k), string(v)
		switch name {
		case "key":
			q.Key = val
		case "model":
			q.Model = val
		case "from", "to":
			t, err := time.Parse(time.RFC3339, val)
			if err != nil {
				bad = invalid(name, fmt.Sprintf("%s %q is not an RFC 3339 time (e.g. 2026-12-01T00:00:00Z)", name, val))
				return
			}
			if name == "from" {
				q.From = t
			} else {
				q.To = t
			}
		case "group_by":
			if !slices.Contains(groupings, val) {
				bad = invalid(name, fmt.Sprintf("group_by %q is not one of %s", val, strings.Join(groupings, ", ")))
				return
			}
			q.GroupBy = val
		case "limit":
			n, err := parseLimit(val, maxUsageLimit)
			if err != nil {
				bad = invalid(name, err.Error())
				return
			}
			q.Limit = n
		default:
			bad = invalid(name, fmt.Sprintf("unknown parameter %q; use %s", name, strings.Join(usageParams, ", ")))
		}
	})
	if bad == nil && !q.From.IsZero() && !q.To.IsZero() && !q.To.After(q.From) {
		bad = invalid("to", "to must be after from")
	}
	if bad != nil {
		writeError(r.Ctx, bad)
		return
	}
	if q.GroupBy != "" {
		groups, err := a.opts.Store.UsageGroups(r.Context, q)
		if err != nil {
			a.storeError(r.Ctx, err)
			return
		}
		data := make([]usageGroup, len(groups))
		for i, g := range groups {
			data[i] = usageGroup(g)
		}
		writeJSON(r.Ctx, http.StatusOK, list(data))
		return
	}
	recs, err := a.opts.Store.Usage(r.Context, q)
	if err != nil {
		a.storeError(r.Ctx, err)
		return
	}
	data := make([]usageRecord, len(recs))
	for i, u := range recs {
		data[i] = usageRecord{RequestID: u.RequestID, Key: u.Key, KeyGroup: u.Group, Model: u.Model, Instance: u.Instance,
			Status: u.Status, PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens, CachedTokens: u.CachedTokens,
			CacheWriteTokens: u.CacheWriteTokens, ReasoningTokens: u.ReasoningTokens, CostUSD: u.CostUSD,
			LatencyMS: float64(u.Latency) / float64(time.Millisecond), Time: u.Time.UTC().Format(time.RFC3339Nano)}
	}
	writeJSON(r.Ctx, http.StatusOK, list(data))
}

// list wraps data in the OpenAI list object.
func list[T any](data []T) any {
	return struct {
		Object string `json:"object"`
		Data   []T    `json:"data"`
	}{"list", data}
}
