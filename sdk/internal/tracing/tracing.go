// Package tracing continues the host's traces inside a plugin.
//
// The host sends the W3C trace context of each upstream attempt in the
// call's metadata (over gRPC or the data path). When the host has tracing
// on, it also gives the plugin OTEL_EXPORTER_OTLP_* variables; Setup then
// starts an OTLP exporter, Start opens the plugin's span under the host's
// attempt span, and Transport sends traceparent upstream with a client
// span per HTTP request. With no exporter configured every function here
// is a cheap no-op.
package tracing

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/llmproxy/llmproxy/sdk/openai"
)

const scope = "github.com/llmproxy/llmproxy/sdk"

var (
	enabled    atomic.Bool
	tracer     trace.Tracer
	propagator = propagation.TraceContext{}
)

// Enabled reports whether the plugin exports spans.
func Enabled() bool { return enabled.Load() }

// Setup starts the OTLP exporter the environment describes, if any, and
// returns the function that flushes it at exit (nil when there is none).
func Setup(ctx context.Context) (func(context.Context) error, error) {
	getenv := os.Getenv
	if getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
		return nil, nil
	}
	if strings.EqualFold(getenv("OTEL_TRACES_EXPORTER"), "none") || strings.EqualFold(getenv("OTEL_SDK_DISABLED"), "true") {
		return nil, nil
	}
	protocol := getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if protocol == "" {
		protocol = getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	var (
		exp sdktrace.SpanExporter
		err error
	)
	switch protocol {
	case "grpc":
		exp, err = otlptracegrpc.New(ctx)
	case "", "http/protobuf":
		exp, err = otlptracehttp.New(ctx)
	default:
		return nil, errors.New("tracing: unsupported OTLP protocol " + strconv.Quote(protocol))
	}
	if err != nil {
		return nil, err
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(resource.Default()))
	tracer = tp.Tracer(scope)
	enabled.Store(true)
	return tp.Shutdown, nil
}

// Start opens the plugin's span for one call, continuing the trace in
// carrier (the call's metadata). end records the call's error and ends the
// span. Without tracing, or without a trace to continue, it does nothing.
func Start(ctx context.Context, carrier map[string]string, operation, model, instance string) (context.Context, func(error)) {
	if !enabled.Load() || carrier["traceparent"] == "" {
		return ctx, noEnd
	}
	ctx = propagator.Extract(ctx, propagation.MapCarrier(carrier))
	name := operation
	if model != "" {
		name += " " + model
	}
	ctx, span := tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(
		attribute.String("gen_ai.operation.name", operation),
		attribute.String("gen_ai.request.model", model),
		attribute.String("llmproxy.instance", instance)))
	return ctx, func(err error) {
		if err != nil {
			span.SetAttributes(attribute.String("error.type", errorType(err)))
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}
}

func noEnd(error) {}

// errorType is the error.type of err: its OpenAI error code or type.
func errorType(err error) string {
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

// Transport wraps base so that each request made within a traced call
// carries traceparent and is a client span. The URL's query and the
// headers are never recorded (they may hold credentials).
func Transport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return transport{base}
}

type transport struct{ base http.RoundTripper }

func (t transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !enabled.Load() {
		return t.base.RoundTrip(req)
	}
	ctx := req.Context()
	parent := trace.SpanFromContext(ctx)
	if !parent.SpanContext().IsValid() {
		return t.base.RoundTrip(req)
	}
	host, port := req.URL.Hostname(), req.URL.Port()
	if port == "" {
		port = "443"
		if req.URL.Scheme == "http" {
			port = "80"
		}
	}
	p, _ := strconv.Atoi(port)
	addr := []attribute.KeyValue{attribute.String("server.address", host), attribute.Int("server.port", p)}
	parent.SetAttributes(addr...)
	ctx, span := tracer.Start(ctx, req.Method, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(append(addr, attribute.String("http.request.method", req.Method),
			attribute.String("url.scheme", req.URL.Scheme), attribute.String("url.path", req.URL.Path))...))
	defer span.End()
	out := req.Clone(ctx)
	propagator.Inject(ctx, propagation.HeaderCarrier(out.Header))
	resp, err := t.base.RoundTrip(out)
	if err != nil {
		et := "_OTHER"
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			et = "timeout"
		}
		span.SetAttributes(attribute.String("error.type", et))
		span.SetStatus(codes.Error, err.Error())
		return resp, err
	}
	span.SetAttributes(attribute.Int("http.response.status_code", resp.StatusCode))
	if resp.StatusCode >= 400 {
		span.SetAttributes(attribute.String("error.type", strconv.Itoa(resp.StatusCode)))
		span.SetStatus(codes.Error, resp.Status)
	}
	return resp, nil
}
