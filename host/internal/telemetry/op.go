package telemetry

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fastjson"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/llmproxy/llmproxy/sdk/openai"
)

// GenAI semantic-convention attribute keys used here.
const (
	keyOperation      = attribute.Key("gen_ai.operation.name")
	keyProvider       = attribute.Key("gen_ai.provider.name")
	keyRequestModel   = attribute.Key("gen_ai.request.model")
	keyResponseModel  = attribute.Key("gen_ai.response.model")
	keyResponseID     = attribute.Key("gen_ai.response.id")
	keyFinishReasons  = attribute.Key("gen_ai.response.finish_reasons")
	keyInputTokens    = attribute.Key("gen_ai.usage.input_tokens")
	keyOutputTokens   = attribute.Key("gen_ai.usage.output_tokens")
	keyCacheRead      = attribute.Key("gen_ai.usage.cache_read.input_tokens")
	keyCacheCreation  = attribute.Key("gen_ai.usage.cache_creation.input_tokens")
	keyReasoning      = attribute.Key("gen_ai.usage.reasoning.output_tokens")
	keyTokenType      = attribute.Key("gen_ai.token.type")
	keyInputMessages  = attribute.Key("gen_ai.input.messages")
	keyOutputMessages = attribute.Key("gen_ai.output.messages")
	keyErrorType      = attribute.Key("error.type")
	keyStatus         = attribute.Key("http.response.status_code")
	keyInstance       = attribute.Key("llmproxy.instance")
	keyKey            = attribute.Key("llmproxy.key")
	keyRequestID      = attribute.Key("llmproxy.request_id")
	keyAttempt        = attribute.Key("llmproxy.attempt")
	keyStream         = attribute.Key("gen_ai.request.stream")
)

// providerNames maps instance types to the well-known gen_ai.provider.name
// values; a type not listed is its own name.
var providerNames = map[string]string{
	"openai":    "openai",
	"anthropic": "anthropic",
	"bedrock":   "aws.bedrock",
	"azure":     "azure.ai.openai",
	"vertex":    "gcp.vertex_ai",
	"watsonx":   "ibm.watsonx.ai",
	"ibm":       "ibm.watsonx.ai",
	"oci":       "oci.generative_ai",
	"oracle":    "oci.generative_ai",
}

// ProviderName is the gen_ai.provider.name of an instance type.
func ProviderName(typ string) string {
	if n, ok := providerNames[typ]; ok {
		return n
	}
	return typ
}

// ErrorType is the error.type of err: the OpenAI error code, else its
// type, else "_OTHER".
func ErrorType(err error) string {
	if err == nil {
		// Apart, so that a request that succeeds does not allocate e.
		return ""
	}
	var e *openai.Error
	switch {
	case errors.As(err, &e) && e.Code != "":
		return e.Code
	case errors.As(err, &e) && e.Type != "":
		return e.Type
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "_OTHER"
}

// Op is one GenAI operation (a chat or embeddings request) from the
// client's request to the last byte of the answer. Its methods are safe
// on a nil *Op and End may be called more than once. Chunk and End may
// run on another goroutine than Start, never at the same time.
type Op struct {
	t       *Telemetry
	span    trace.Span // nil when the request is not sampled
	start   time.Time
	op      string
	model   string // the route: bounded, unlike a client's model string
	key     string
	stream  bool
	attempt *Attempt // the last attempt
	traced  bool     // tracing is on: attempts pass the trace context on

	chunks     int
	chunkAttrs []metric.RecordOption // the chunk metrics' attributes, made once
	firstChunk time.Time
	lastChunk  time.Time
	usage      usage
	id, served string
	finish     []string
	text       strings.Builder
	ended      bool
}

// usage is what an answer reports of its tokens; -1 when absent.
type usage struct {
	input, output, cacheRead, cacheCreation, reasoning int64
	seen                                               bool
}

// headerCarrier reads W3C trace context from a fasthttp request header.
type headerCarrier struct{ h *fasthttp.RequestHeader }

func (c headerCarrier) Get(key string) string { return string(c.h.Peek(key)) }
func (c headerCarrier) Set(key, value string) { c.h.Set(key, value) }
func (c headerCarrier) Keys() []string        { return []string{"traceparent", "tracestate", "baggage"} }

// Start begins an operation: operation is "chat" or "embeddings", model
// the model the client asked for, route the route that matched it (the
// metrics' model label), key the API key's name. The server span
// continues the trace of an incoming traceparent. body is recorded only
// when content recording is on.
func (t *Telemetry) Start(ctx context.Context, h *fasthttp.RequestHeader, operation, model, route, key, requestID string, stream bool, body []byte) (context.Context, *Op) {
	if t == nil {
		return ctx, nil
	}
	o := &Op{t: t, start: time.Now(), op: operation, model: route, key: key, stream: stream}
	if !t.tracing {
		return ctx, o
	}
	if h != nil {
		ctx = t.propagator.Extract(ctx, headerCarrier{h})
	}
	ctx, span := t.tracer.Start(ctx, operation+" "+model, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(keyOperation.String(operation), keyRequestModel.String(model),
			keyKey.String(key), keyRequestID.String(requestID), keyStream.Bool(stream)))
	o.traced = true
	if !span.IsRecording() {
		// Not sampled: nothing is recorded, but the trace context (and
		// its "not sampled" flag) still travels to the plugin and the
		// upstream.
		return ctx, o
	}
	o.span = span
	if t.recordContent {
		if v, err := fastjson.ParseBytes(body); err == nil {
			if m := v.Get("messages"); m != nil {
				span.SetAttributes(keyInputMessages.String(string(m.MarshalTo(nil))))
			} else if in := v.Get("input"); in != nil {
				span.SetAttributes(keyInputMessages.String(string(in.MarshalTo(nil))))
			}
		}
	}
	return ctx, o
}

// Attempt is one try of an operation against one instance: a client span
// under the operation's server span.
type Attempt struct {
	o        *Op
	span     trace.Span
	instance string
	provider string
	traced   bool
	err      error
	ended    bool
}

// Attempt begins the n-th (from 0) attempt against instance, of the given
// plugin type, for the upstream model.
func (o *Op) Attempt(ctx context.Context, n int, instance, typ, model string) (context.Context, *Attempt) {
	if o == nil {
		return ctx, nil
	}
	a := &Attempt{o: o, instance: instance, provider: ProviderName(typ), traced: o.traced}
	o.attempt = a
	if o.span != nil {
		ctx, a.span = o.t.tracer.Start(ctx, o.op+" "+model, trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(keyOperation.String(o.op), keyRequestModel.String(model),
				keyProvider.String(a.provider), keyInstance.String(instance), keyAttempt.Int(n+1)))
	}
	return ctx, a
}

// TraceContext is the W3C trace context of the attempt, for the plugin
// call's metadata; nil when tracing is off. A request that is not sampled
// passes its context on with the "not sampled" flag.
func (a *Attempt) TraceContext(ctx context.Context) map[string]string {
	if a == nil || !a.traced {
		return nil
	}
	m := propagation.MapCarrier{}
	a.o.t.propagator.Inject(ctx, m)
	return m
}

// Fail records why the attempt failed; End still ends it.
func (a *Attempt) Fail(err error) {
	if a == nil || err == nil {
		return
	}
	a.err = err
}

// End ends the attempt's span and counts it.
func (a *Attempt) End() {
	if a == nil || a.ended {
		return
	}
	a.ended = true
	et := ErrorType(a.err)
	a.o.t.attempts.Add(context.Background(), 1, attrSet(setKey{"attempt", a.provider, a.instance, et}, []attribute.KeyValue{
		keyProvider.String(a.provider), keyInstance.String(a.instance), keyErrorType.String(et)}))
	if a.span == nil {
		return
	}
	if a.err != nil {
		a.span.SetAttributes(keyErrorType.String(et))
		a.span.SetStatus(codes.Error, a.err.Error())
	} else {
		a.o.setResponse(a.span)
	}
	a.span.End()
}

var parsers fastjson.ParserPool

// Response records a non-streamed answer's model, id, finish reasons and
// usage.
func (o *Op) Response(body []byte) {
	if o == nil {
		return
	}
	p := parsers.Get()
	defer parsers.Put(p)
	v, err := p.ParseBytes(body)
	if err != nil {
		return
	}
	o.read(v, false)
}

// ResponseValue is Response on an answer the caller has parsed already;
// v may be nil (the answer is not JSON).
func (o *Op) ResponseValue(v *fastjson.Value) {
	if o == nil || v == nil {
		return
	}
	o.read(v, false)
}

// Chunk records one chunk of a streamed answer: its timing, and what it
// says of the answer. Chunks without usage are parsed only when the
// request is traced.
func (o *Op) Chunk(b []byte) {
	if o == nil {
		return
	}
	now := time.Now()
	if o.chunks == 0 {
		o.firstChunk = now
		o.chunkAttrs = []metric.RecordOption{o.labelSet("", 0, "")}
	} else {
		o.t.perChunk.Record(context.Background(), now.Sub(o.lastChunk).Seconds(), o.chunkAttrs...)
	}
	o.lastChunk = now
	o.chunks++
	if o.span == nil && !bytes.Contains(b, []byte(`"usage":{`)) {
		return
	}
	p := parsers.Get()
	defer parsers.Put(p)
	if v, err := p.ParseBytes(b); err == nil {
		o.read(v, true)
	}
}

// read takes what an answer or chunk says of itself.
func (o *Op) read(v *fastjson.Value, delta bool) {
	if id := v.GetStringBytes("id"); len(id) > 0 && o.id == "" {
		o.id = string(id)
	}
	if m := v.GetStringBytes("model"); len(m) > 0 && o.served == "" {
		o.served = string(m)
	}
	for _, c := range v.GetArray("choices") {
		if fr := c.GetStringBytes("finish_reason"); len(fr) > 0 {
			o.finish = append(o.finish, string(fr))
		}
		if o.span != nil && o.t.recordContent {
			if delta {
				o.text.Write(c.GetStringBytes("delta", "content"))
			} else if m := c.Get("message"); m != nil {
				o.text.Write(m.MarshalTo(nil))
			}
		}
	}
	if u := v.Get("usage"); u != nil && u.Type() == fastjson.TypeObject {
		o.usage = usage{
			input:         u.GetInt64("prompt_tokens"),
			output:        u.GetInt64("completion_tokens"),
			cacheRead:     intOr(u, -1, "prompt_tokens_details", "cached_tokens"),
			cacheCreation: intOr(u, intOr(u, -1, "prompt_tokens_details", "cache_creation_tokens"), "prompt_tokens_details", "cache_write_tokens"),
			reasoning:     intOr(u, -1, "completion_tokens_details", "reasoning_tokens"),
			seen:          true,
		}
	}
}

func intOr(v *fastjson.Value, def int64, keys ...string) int64 {
	if x := v.Get(keys...); x != nil {
		if n, err := x.Int64(); err == nil {
			return n
		}
	}
	return def
}

// setResponse puts the answer's attributes on span.
func (o *Op) setResponse(span trace.Span) {
	attrs := make([]attribute.KeyValue, 0, 8)
	if o.id != "" {
		attrs = append(attrs, keyResponseID.String(o.id))
	}
	if o.served != "" {
		attrs = append(attrs, keyResponseModel.String(o.served))
	}
	if len(o.finish) > 0 {
		attrs = append(attrs, keyFinishReasons.StringSlice(o.finish))
	}
	if u := o.usage; u.seen {
		attrs = append(attrs, keyInputTokens.Int64(u.input), keyOutputTokens.Int64(u.output))
		if u.cacheRead >= 0 {
			attrs = append(attrs, keyCacheRead.Int64(u.cacheRead))
		}
		if u.cacheCreation >= 0 {
			attrs = append(attrs, keyCacheCreation.Int64(u.cacheCreation))
		}
		if u.reasoning >= 0 {
			attrs = append(attrs, keyReasoning.Int64(u.reasoning))
		}
	}
	span.SetAttributes(attrs...)
}

// labelSet is the measurement option of labels(errType, status), plus a
// token type when tokenType is set.
func (o *Op) labelSet(errType string, status int, tokenType string) metric.MeasurementOption {
	provider, instance := "", ""
	if a := o.attempt; a != nil {
		provider, instance = a.provider, a.instance
	}
	k := setKey{o.op, provider, o.model, instance, o.key, errType, strconv.Itoa(status), tokenType}
	if v, ok := cachedSets.Load(k); ok {
		return v.(metric.MeasurementOption)
	}
	l := o.labels(errType, status)
	if tokenType != "" {
		l = append(l, keyTokenType.String(tokenType))
	}
	return attrSet(k, l)
}

// labels are the metric attributes of the operation.
func (o *Op) labels(errType string, status int) []attribute.KeyValue {
	provider, instance := "", ""
	if a := o.attempt; a != nil {
		provider, instance = a.provider, a.instance
	}
	l := []attribute.KeyValue{
		keyOperation.String(o.op), keyProvider.String(provider), keyRequestModel.String(o.model),
		keyInstance.String(instance), keyKey.String(o.key),
	}
	if status != 0 {
		l = append(l, keyStatus.String(strconv.Itoa(status)), keyErrorType.String(errType))
	}
	return l
}

// End finishes the operation with the HTTP status the client got and the
// error that ended it, if any: it records the metrics and ends the
// server span.
func (o *Op) End(status int, err error) {
	if o == nil || o.ended {
		return
	}
	o.ended = true
	if a := o.attempt; a != nil && !a.ended {
		if err != nil && a.err == nil {
			a.Fail(err)
		}
		a.End()
	}
	et := ErrorType(err)
	if et == "" && status >= 400 {
		et = strconv.Itoa(status)
	}
	ctx := context.Background()
	o.t.duration.Record(ctx, since(o.start), o.labelSet(et, status, ""))
	if o.chunks > 0 {
		o.t.firstChunk.Record(ctx, o.firstChunk.Sub(o.start).Seconds(), o.chunkAttrs...)
	}
	if o.usage.seen {
		o.t.tokens.Record(ctx, o.usage.input, o.labelSet("", 0, "input"))
		o.t.tokens.Record(ctx, o.usage.output, o.labelSet("", 0, "output"))
	}
	if o.span == nil {
		return
	}
	if a := o.attempt; a != nil {
		o.span.SetAttributes(keyProvider.String(a.provider), keyInstance.String(a.instance))
	}
	o.setResponse(o.span)
	o.span.SetAttributes(keyStatus.Int(status))
	if o.t.recordContent && o.text.Len() > 0 {
		o.span.SetAttributes(keyOutputMessages.String(o.text.String()))
	}
	if et != "" {
		o.span.SetAttributes(keyErrorType.String(et))
		msg := et
		if err != nil {
			msg = err.Error()
		}
		o.span.SetStatus(codes.Error, msg)
	}
	o.span.End()
}
