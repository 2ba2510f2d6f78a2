// Package telemetry gives llmproxy OpenTelemetry traces and GenAI metrics.
//
// A request to the AI API is one server span, named by the GenAI semantic
// conventions "{gen_ai.operation.name} {gen_ai.request.model}", with one
// client span per upstream attempt under it: a failover is two attempts,
// the first carrying its error.type. The attempt's trace context travels
// to the plugin in the call's metadata (over gRPC or the data path), where
// the SDK continues it with the plugin's own span and sends traceparent
// upstream. Spans go to an OTLP collector over gRPC or HTTP, configured
// by the telemetry block or the standard OTEL_* variables.
//
// The GenAI client metrics (token usage, operation duration, time to
// first chunk and per output chunk), upstream attempts and the plugins'
// state are OpenTelemetry instruments read by the Prometheus /metrics
// endpoint and, when an endpoint is configured, pushed over OTLP.
//
// When no exporter is configured the tracer is a no-op: requests create
// no spans, parse no answers and allocate only their metric attributes.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// scope names the instrumentation in traces and metrics.
const scope = "github.com/llmproxy/llmproxy/host"

// Instance is what the plugins' state metrics read of one instance.
type Instance struct {
	Name, Kind, Type, State string
	Ready                   bool
	Restarts                int64
}

// Options are what New needs besides the config.
type Options struct {
	// Registerer receives the metrics for /metrics; nil keeps them out of
	// Prometheus.
	Registerer prometheus.Registerer
	// Instances lists the plugin instances when metrics are read; nil
	// leaves out the plugin metrics.
	Instances func() []Instance
	// Version is the host's version, recorded as service.version.
	Version string
}

// Telemetry holds the tracer and meter providers and the instruments.
type Telemetry struct {
	tracer        trace.Tracer
	tracing       bool
	recordContent bool
	propagator    propagation.TextMapPropagator
	pluginEnv     []string
	shutdown      []func(context.Context) error

	tokens     metric.Int64Histogram
	duration   metric.Float64Histogram
	firstChunk metric.Float64Histogram
	perChunk   metric.Float64Histogram
	attempts   metric.Int64Counter
	meter      metric.Meter
}

// Bucket boundaries advised by the GenAI semantic conventions.
var (
	tokenBuckets    = []float64{1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864}
	durationBuckets = []float64{0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92}
	firstBuckets    = []float64{0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}
	chunkBuckets    = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5}
)

// New sets up telemetry from cfg (nil: environment only). Shutdown
// flushes and stops the exporters.
func New(ctx context.Context, cfg *Config, opts Options) (*Telemetry, error) {
	s, err := cfg.resolve(os.Getenv)
	if err != nil {
		return nil, err
	}
	t := &Telemetry{
		tracer:        noop.NewTracerProvider().Tracer(scope),
		recordContent: s.recordContent,
		propagator:    propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(
		attribute.String("service.name", s.service), attribute.String("service.version", opts.Version)))
	if err != nil {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	if s.traces {
		exp, err := traceExporter(ctx, s)
		if err != nil {
			return nil, err
		}
		tpOpts := []sdktrace.TracerProviderOption{sdktrace.WithBatcher(exp), sdktrace.WithResource(res)}
		if s.ratio != nil {
			tpOpts = append(tpOpts, sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(*s.ratio))))
		}
		tp := sdktrace.NewTracerProvider(tpOpts...)
		t.tracer, t.tracing = tp.Tracer(scope), true
		t.shutdown = append(t.shutdown, tp.Shutdown)
		t.pluginEnv = s.pluginEnv(os.Getenv, environ())
	}
	var readers []sdkmetric.Option
	if opts.Registerer != nil {
		pe, err := otelprom.New(otelprom.WithRegisterer(opts.Registerer), otelprom.WithoutScopeInfo(), otelprom.WithoutTargetInfo())
		if err != nil {
			return nil, fmt.Errorf("telemetry: prometheus exporter: %w", err)
		}
		readers = append(readers, sdkmetric.WithReader(pe))
	}
	if s.metrics {
		exp, err := metricExporter(ctx, s)
		if err != nil {
			return nil, err
		}
		var ro []sdkmetric.PeriodicReaderOption
		if s.interval > 0 {
			ro = append(ro, sdkmetric.WithInterval(s.interval))
		}
		readers = append(readers, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp, ro...)))
	}
	mp := sdkmetric.NewMeterProvider(append(readers, sdkmetric.WithResource(res))...)
	t.shutdown = append(t.shutdown, mp.Shutdown)
	if err := t.instruments(mp.Meter(scope), opts.Instances); err != nil {
		return nil, err
	}
	return t, nil
}

// newWith builds a Telemetry on given providers; tracing says whether tp
// records.
func newWith(tp trace.TracerProvider, tracing bool, mp metric.MeterProvider, recordContent bool, instances func() []Instance) (*Telemetry, error) {
	t := &Telemetry{
		tracer:        tp.Tracer(scope),
		tracing:       tracing,
		recordContent: recordContent,
		propagator:    propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
	}
	return t, t.instruments(mp.Meter(scope), instances)
}

func traceExporter(ctx context.Context, s settings) (sdktrace.SpanExporter, error) {
	var (
		exp sdktrace.SpanExporter
		err error
	)
	if s.protocol == ProtocolGRPC {
		var o []otlptracegrpc.Option
		if s.endpoint != "" {
			o = append(o, otlptracegrpc.WithEndpointURL(endpointURL(s.endpoint, ProtocolGRPC, s.insecure)))
		}
		if s.insecure {
			o = append(o, otlptracegrpc.WithInsecure())
		}
		if len(s.headers) > 0 {
			o = append(o, otlptracegrpc.WithHeaders(s.headers))
		}
		exp, err = otlptracegrpc.New(ctx, o...)
	} else {
		var o []otlptracehttp.Option
		if s.endpoint != "" {
			o = append(o, otlptracehttp.WithEndpointURL(endpointURL(s.endpoint, ProtocolHTTP, s.insecure)))
		}
		if s.insecure {
			o = append(o, otlptracehttp.WithInsecure())
		}
		if len(s.headers) > 0 {
			o = append(o, otlptracehttp.WithHeaders(s.headers))
		}
		exp, err = otlptracehttp.New(ctx, o...)
	}
	if err != nil {
		return nil, fmt.Errorf("telemetry: OTLP trace exporter: %w", err)
	}
	return exp, nil
}

func metricExporter(ctx context.Context, s settings) (sdkmetric.Exporter, error) {
	var (
		exp sdkmetric.Exporter
		err error
	)
	if s.protocol == ProtocolGRPC {
		var o []otlpmetricgrpc.Option
		if s.endpoint != "" {
			o = append(o, otlpmetricgrpc.WithEndpointURL(endpointURL(s.endpoint, ProtocolGRPC, s.insecure)))
		}
		if s.insecure {
			o = append(o, otlpmetricgrpc.WithInsecure())
		}
		if len(s.headers) > 0 {
			o = append(o, otlpmetricgrpc.WithHeaders(s.headers))
		}
		exp, err = otlpmetricgrpc.New(ctx, o...)
	} else {
		var o []otlpmetrichttp.Option
		if s.endpoint != "" {
			u := endpointURL(s.endpoint, ProtocolGRPC, s.insecure) // base URL without the traces path
			o = append(o, otlpmetrichttp.WithEndpointURL(u+"/v1/metrics"))
		}
		if s.insecure {
			o = append(o, otlpmetrichttp.WithInsecure())
		}
		if len(s.headers) > 0 {
			o = append(o, otlpmetrichttp.WithHeaders(s.headers))
		}
		exp, err = otlpmetrichttp.New(ctx, o...)
	}
	if err != nil {
		return nil, fmt.Errorf("telemetry: OTLP metric exporter: %w", err)
	}
	return exp, nil
}

func (t *Telemetry) instruments(m metric.Meter, instances func() []Instance) error {
	t.meter = m
	var errs []error
	must := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	var err error
	t.tokens, err = m.Int64Histogram("gen_ai.client.token.usage", metric.WithUnit("{token}"),
		metric.WithDescription("Tokens used per request, by gen_ai.token.type (input or output)."),
		metric.WithExplicitBucketBoundaries(tokenBuckets...))
	must(err)
	t.duration, err = m.Float64Histogram("gen_ai.client.operation.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of a GenAI operation as the client sees it, to the last byte."),
		metric.WithExplicitBucketBoundaries(durationBuckets...))
	must(err)
	t.firstChunk, err = m.Float64Histogram("gen_ai.client.operation.time_to_first_chunk", metric.WithUnit("s"),
		metric.WithDescription("Time from the request to the first chunk of a streamed answer."),
		metric.WithExplicitBucketBoundaries(firstBuckets...))
	must(err)
	t.perChunk, err = m.Float64Histogram("gen_ai.client.operation.time_per_output_chunk", metric.WithUnit("s"),
		metric.WithDescription("Time between consecutive chunks of a streamed answer, after the first."),
		metric.WithExplicitBucketBoundaries(chunkBuckets...))
	must(err)
	t.attempts, err = m.Int64Counter("llmproxy.upstream.attempts", metric.WithUnit("{attempt}"),
		metric.WithDescription("Attempts against an instance, by outcome (error.type empty when it served the request)."))
	must(err)
	if instances != nil {
		ready, err := m.Int64ObservableGauge("llmproxy.instance.ready",
			metric.WithDescription("1 when the instance's plugin is ready to serve, else 0."))
		must(err)
		restarts, err := m.Int64ObservableCounter("llmproxy.instance.restarts", metric.WithUnit("{restart}"),
			metric.WithDescription("Plugin process restarts of the instance."))
		must(err)
		if err == nil {
			_, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
				for _, in := range instances() {
					up := int64(0)
					if in.Ready {
						up = 1
					}
					o.ObserveInt64(ready, up, metric.WithAttributes(attribute.String("instance", in.Name),
						attribute.String("kind", in.Kind), attribute.String("type", in.Type), attribute.String("state", in.State)))
					o.ObserveInt64(restarts, in.Restarts, metric.WithAttributes(attribute.String("instance", in.Name)))
				}
				return nil
			}, ready, restarts)
			must(err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("telemetry: instruments: %w", errors.Join(errs...))
	}
	return nil
}

// Meter is where other host packages create their instruments (rate
// limits, circuit breakers …): they are served on /metrics and pushed
// over OTLP with the GenAI metrics.
func (t *Telemetry) Meter() metric.Meter { return t.meter }

// Tracing reports whether spans are exported.
func (t *Telemetry) Tracing() bool { return t != nil && t.tracing }

// PluginEnv is the environment that makes plugins export their spans to
// the host's collector; nil when tracing is off.
func (t *Telemetry) PluginEnv() []string {
	if t == nil {
		return nil
	}
	return t.pluginEnv
}

// Shutdown flushes pending spans and metrics and stops the exporters.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	var errs []error
	for _, f := range t.shutdown {
		if err := f(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// since is time.Since in seconds.
func since(t time.Time) float64 { return time.Since(t).Seconds() }
