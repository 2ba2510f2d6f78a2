package server

import (
	"github.com/valyala/fasthttp"

	"github.com/llmproxy/llmproxy/sdk/openai"
)

// dialect writes a chat answer in the API the client called when that API
// is not OpenAI chat completions (Anthropic Messages, OpenAI Responses).
//
// The chat path speaks OpenAI chat completions from end to end: routing,
// rights, rate limits and budgets, documents, middleware, usage and
// telemetry all read the OpenAI shapes, and every provider plugin answers
// in them. An inbound API is therefore two translations at the edges: its
// handler turns the client's request into a chat completions body and sets
// the call's dialect, and the dialect turns what the chat path would have
// written — a chat.completion body, each chat.completion.chunk of a stream,
// the stream's end, an error — into the client's API. Nothing between the
// two edges knows which API the client called.
//
// A dialect is used by one request at a time and may keep state across a
// stream's chunks (open content blocks, indexes, accumulated usage).
type dialect interface {
	// Response converts a chat.completion body into the dialect's answer.
	Response(body []byte) ([]byte, error)
	// Events appends to dst the dialect's SSE events for one
	// chat.completion.chunk: none, one or several, each fully framed.
	Events(dst, chunk []byte) ([]byte, error)
	// End appends the events that close a stream that ended well.
	End(dst []byte) []byte
	// Error returns the body of an error answer in the dialect's shape;
	// the status and Retry-After are e's and are set by the caller.
	Error(e *openai.Error) []byte
	// StreamError appends the event that reports e after a stream started.
	StreamError(dst []byte, e *openai.Error) []byte
}

// dialectKey is the request user value that holds the call's dialect, so
// that every error written for the request, wherever it is written, takes
// the dialect's shape.
const dialectKey = "llmproxy.dialect"

// setDialect makes d the shape of every answer the call writes from now on.
func (r *call) setDialect(d dialect) {
	r.out = d
	r.ctx.SetUserValue(dialectKey, d)
}

// dialectOf returns the request's dialect, nil for OpenAI chat completions.
func dialectOf(ctx *fasthttp.RequestCtx) dialect {
	d, _ := ctx.UserValue(dialectKey).(dialect)
	return d
}
