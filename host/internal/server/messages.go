package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/llmproxy/llmproxy/host/internal/inbound/messages"
	"github.com/llmproxy/llmproxy/host/internal/router"
	"github.com/llmproxy/llmproxy/sdk/openai"
)

// The Anthropic Messages API paths.
const (
	messagesPath    = "/v1/messages"
	countTokensPath = "/v1/messages/count_tokens"
)

// isMessagesPath reports whether path belongs to the Messages API, whose
// answers, errors before routing included, take Anthropic's shape.
func isMessagesPath(path string) bool {
	return path == messagesPath || path == countTokensPath
}

// messagesDialect writes the chat path's answers as Messages API answers
// (see package inbound/messages).
type messagesDialect struct {
	requestID string
	stream    *messages.Stream
}

var _ dialect = (*messagesDialect)(nil)

func (d *messagesDialect) Response(body []byte) ([]byte, error) { return messages.Response(body) }

func (d *messagesDialect) Events(dst, chunk []byte) ([]byte, error) {
	return d.stream.Events(dst, chunk)
}

func (d *messagesDialect) End(dst []byte) []byte { return d.stream.End(dst) }

func (d *messagesDialect) Error(e *openai.Error) []byte { return messages.Error(e, d.requestID) }

func (d *messagesDialect) StreamError(dst []byte, e *openai.Error) []byte {
	return messages.StreamError(dst, e)
}

// speakMessages makes every answer of the request, from authentication
// on, take the Messages API's shape, with Anthropic's request-id header
// beside X-Request-Id.
func (r *call) speakMessages() {
	r.setDialect(&messagesDialect{requestID: r.id, stream: messages.NewStream()})
	r.ctx.Response.Header.Set("request-id", r.id)
}

// anthropicVersion is the shape of an anthropic-version header value.
var anthropicVersion = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)

// messages serves POST /v1/messages and POST /v1/messages/count_tokens.
// A Messages request is translated into a chat completions request and
// served by the chat path, so routing, key rights, limits, documents,
// middleware, failover, usage and telemetry apply as they do to chat;
// the dialect translates the answer back.
func (r *call) messages() {
	if !r.method("POST") || !r.canonical() {
		return
	}
	if v := r.ctx.Request.Header.Peek("anthropic-version"); len(v) > 0 && !anthropicVersion.Match(v) {
		writeError(r.ctx, openai.InvalidRequest("anthropic-version",
			"the anthropic-version header must be a date such as 2023-06-01, not "+quoteHeader(v)))
		return
	}
	if string(r.ctx.Path()) == countTokensPath {
		r.countTokens()
		return
	}
	chat, info, err := messages.Request(r.ctx.PostBody())
	if err != nil {
		writeError(r.ctx, err)
		return
	}
	r.requested = info.Model
	rt, err := r.route(info.Model)
	if err != nil {
		writeError(r.ctx, err)
		return
	}
	if r.native(rt, info.Model) {
		r.messagesNative(rt, info, messagesPath)
		return
	}
	if len(info.Ignored) > 0 {
		r.ctx.Response.Header.Set("X-Llmproxy-Ignored", strings.Join(info.Ignored, ", "))
	}
	r.ctx.Request.SetBody(chat)
	r.chat()
}

// countTokens answers POST /v1/messages/count_tokens. Counting needs the
// model's own tokenizer, which only Anthropic's API offers: a model whose
// route has only anthropic targets is counted there, natively; any
// other gets 404 not_found_error (the gateway does not estimate).
func (r *call) countTokens() {
	var req struct {
		Model string `json:"model"`
	}
	if err := json.Unmarshal(r.ctx.PostBody(), &req); err != nil || req.Model == "" {
		writeError(r.ctx, openai.InvalidRequest("model", "model: field required (a non-empty string)"))
		return
	}
	r.requested = req.Model
	rt, err := r.route(req.Model)
	if err != nil {
		writeError(r.ctx, err)
		return
	}
	if !r.native(rt, req.Model) || slices.ContainsFunc(rt.Targets, func(t router.Target) bool {
		return r.nativeKind(t, req.Model) != nativeAnthropic
	}) {
		writeError(r.ctx, openai.NewError(http.StatusNotFound, openai.TypeNotFound, "count_tokens_unavailable",
			fmt.Sprintf("count_tokens is offered only for models served by anthropic instances; %q is not", req.Model)))
		return
	}
	r.messagesNative(rt, messages.Info{Model: req.Model}, countTokensPath)
}

// quoteHeader quotes a header value for an error message, cut short.
func quoteHeader(v []byte) string {
	if len(v) > 40 {
		v = v[:40]
	}
	return `"` + strings.Map(func(c rune) rune {
		if c < ' ' || c > '~' || c == '"' {
			return '?'
		}
		return c
	}, string(v)) + `"`
}
