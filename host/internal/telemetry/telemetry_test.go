package telemetry

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel/attribute"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/llmproxy/llmproxy/sdk/openai"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestResolve(t *testing.T) {
	f := false
	ratio := 0.25
	for _, tc := range []struct {
		name             string
		cfg              *Config
		env              map[string]string
		traces, metrics  bool
		protocol         string
		content          bool
		wantErr          string
		pluginEnvContain []string
	}{
		{name: "nothing configured", protocol: ProtocolHTTP},
		{name: "HCL endpoint", cfg: &Config{Endpoint: "collector:4317", Protocol: "grpc", Insecure: true}, traces: true, metrics: true, protocol: ProtocolGRPC,
			pluginEnvContain: []string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://collector:4317", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=grpc", "OTEL_TRACES_SAMPLER=parentbased_always_off"}},
		{name: "HCL http endpoint gets the traces path", cfg: &Config{Endpoint: "https://otel.example.com"}, traces: true, metrics: true, protocol: ProtocolHTTP,
			pluginEnvContain: []string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=https://otel.example.com/v1/traces"}},
		{name: "env endpoint", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, traces: true, metrics: true, protocol: ProtocolHTTP},
		{name: "env traces only", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, traces: true, protocol: ProtocolHTTP},
		{name: "env protocol", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, traces: true, metrics: true, protocol: ProtocolGRPC},
		{name: "metrics off in HCL", cfg: &Config{Endpoint: "c:4317", Metrics: &f}, traces: true, protocol: ProtocolHTTP},
		{name: "OTEL_TRACES_EXPORTER=none", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "c", "OTEL_TRACES_EXPORTER": "none"}, metrics: true, protocol: ProtocolHTTP},
		{name: "SDK disabled", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "c", "OTEL_SDK_DISABLED": "true"}},
		{name: "content by env", env: map[string]string{"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true"}, protocol: ProtocolHTTP, content: true},
		{name: "ratio", cfg: &Config{SampleRatio: &ratio}, protocol: ProtocolHTTP},
		{name: "bad protocol", cfg: &Config{Protocol: "udp"}, wantErr: `protocol must be "grpc" or "http/protobuf"`},
		{name: "bad env protocol", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "c", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, wantErr: "OTEL_EXPORTER_OTLP_PROTOCOL"},
		{name: "bad ratio", cfg: &Config{SampleRatio: func() *float64 { x := 1.5; return &x }()}, wantErr: "sample_ratio"},
		{name: "bad interval", cfg: &Config{MetricsInterval: "soon"}, wantErr: "metrics_interval"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := tc.cfg.resolve(env(tc.env))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.traces != tc.traces || s.metrics != tc.metrics || s.protocol != tc.protocol || s.recordContent != tc.content {
				t.Errorf("traces=%v metrics=%v protocol=%q content=%v; want %v %v %q %v", s.traces, s.metrics, s.protocol, s.recordContent,
					tc.traces, tc.metrics, tc.protocol, tc.content)
			}
			pe := s.pluginEnv(env(tc.env), []string{"OTEL_BSP_SCHEDULE_DELAY=100", "OTEL_SERVICE_NAME=host", "HOME=/root"})
			if !tc.traces && pe != nil {
				t.Errorf("plugin env without tracing: %v", pe)
			}
			for _, want := range tc.pluginEnvContain {
				if !slices.Contains(pe, want) {
					t.Errorf("plugin env %v lacks %q", pe, want)
				}
			}
			if tc.traces && (!slices.Contains(pe, "OTEL_BSP_SCHEDULE_DELAY=100") || slices.Contains(pe, "OTEL_SERVICE_NAME=host") || slices.Contains(pe, "HOME=/root")) {
				t.Errorf("plugin env %v: want the host's OTEL_* variables but its service name and nothing else", pe)
			}
		})
	}
}

func TestProviderName(t *testing.T) {
	for typ, want := range map[string]string{
		"openai": "openai", "anthropic": "anthropic", "bedrock": "aws.bedrock", "azure": "azure.ai.openai",
		"vertex": "gcp.vertex_ai", "watsonx": "ibm.watsonx.ai", "ibm": "ibm.watsonx.ai", "oci": "oci.generative_ai",
		"oracle": "oci.generative_ai", "echo": "echo",
	} {
		if got := ProviderName(typ); got != want {
			t.Errorf("ProviderName(%q) = %q, want %q", typ, got, want)
		}
	}
}

// rig is a Telemetry recording spans in memory and metrics in a manual
// reader and a Prometheus registry.
type rig struct {
	t     *Telemetry
	spans *tracetest.SpanRecorder
	rd    *sdkmetric.ManualReader
	reg   *prometheus.Registry
}

func newRig(t *testing.T, tracing, content bool) *rig {
	t.Helper()
	r := &rig{spans: tracetest.NewSpanRecorder(), rd: sdkmetric.NewManualReader(), reg: prometheus.NewRegistry()}
	pe, err := otelprom.New(otelprom.WithRegisterer(r.reg), otelprom.WithoutScopeInfo(), otelprom.WithoutTargetInfo())
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(r.spans))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r.rd), sdkmetric.WithReader(pe))
	r.t, err = newWith(tp, tracing, mp, content, func() []Instance {
		return []Instance{{Name: "openai_prod", Kind: "provider", Type: "openai", State: "ready", Ready: true, Restarts: 2}}
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func attrs(kv []attribute.KeyValue) map[string]any {
	m := map[string]any{}
	for _, a := range kv {
		m[string(a.Key)] = a.Value.AsInterface()
	}
	return m
}

const (
	failoverBody = `{"model":"gpt-4o","messages":[{"role":"user","content":"the prompt"}]}`
	answerBody   = `{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o-2024-08-06",
		"choices":[{"index":0,"message":{"role":"assistant","content":"the answer"},"finish_reason":"stop"}],
		"usage":{"prompt_tokens":12,"completion_tokens":7,"total_tokens":19,
		"prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":3}}}`
)

// TestOpJSON runs a non-streamed chat that fails over and checks the
// spans and their GenAI attributes.
func TestOpJSON(t *testing.T) {
	for _, content := range []bool{false, true} {
		r := newRig(t, true, content)
		var h fasthttp.RequestHeader
		h.Set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
		ctx, op := r.t.Start(context.Background(), &h, "chat", "gpt-4o", "gpt-4o", "team-a", "req-1", false, []byte(failoverBody))
		actx, a1 := op.Attempt(ctx, 0, "openai_down", "openai", "gpt-4o")
		if tc := a1.TraceContext(actx); !strings.HasPrefix(tc["traceparent"], "00-0af7651916cd43dd8448eb211c80319c-") {
			t.Fatalf("attempt trace context %v does not continue the incoming trace", tc)
		}
		a1.Fail(openai.NewError(http.StatusServiceUnavailable, openai.TypeUnavailable, "plugin_unavailable", "down"))
		a1.End()
		_, a2 := op.Attempt(ctx, 1, "azure_east", "azure", "gpt-4o-deploy")
		op.Response([]byte(answerBody))
		a2.End()
		op.End(http.StatusOK, nil)

		ended := r.spans.Ended()
		if len(ended) != 3 {
			t.Fatalf("%d spans, want 3", len(ended))
		}
		first, second, server := ended[0], ended[1], ended[2]
		if server.Name() != "chat gpt-4o" || server.SpanKind() != trace.SpanKindServer || server.Parent().SpanID().String() != "b7ad6b7169203331" {
			t.Errorf("server span %q kind %v parent %v", server.Name(), server.SpanKind(), server.Parent().SpanID())
		}
		if first.Name() != "chat gpt-4o" || second.Name() != "chat gpt-4o-deploy" || first.SpanKind() != trace.SpanKindClient {
			t.Errorf("attempt spans %q %q kind %v", first.Name(), second.Name(), first.SpanKind())
		}
		if first.Parent().SpanID() != server.SpanContext().SpanID() || second.Parent().SpanID() != server.SpanContext().SpanID() {
			t.Error("attempt spans are not children of the server span")
		}
		fa := attrs(first.Attributes())
		if fa["error.type"] != "plugin_unavailable" || fa["gen_ai.provider.name"] != "openai" || fa["llmproxy.attempt"] != int64(1) {
			t.Errorf("first attempt attributes %v", fa)
		}
		sa, srv := attrs(second.Attributes()), attrs(server.Attributes())
		want := map[string]any{
			"gen_ai.response.id": "chatcmpl-1", "gen_ai.response.model": "gpt-4o-2024-08-06",
			"gen_ai.response.finish_reasons": []string{"stop"}, "gen_ai.usage.input_tokens": int64(12),
			"gen_ai.usage.output_tokens": int64(7), "gen_ai.usage.cache_read.input_tokens": int64(4),
			"gen_ai.usage.reasoning.output_tokens": int64(3),
		}
		for k, v := range want {
			if !equal(sa[k], v) || !equal(srv[k], v) {
				t.Errorf("%s: attempt %v, server %v, want %v", k, sa[k], srv[k], v)
			}
		}
		if sa["gen_ai.provider.name"] != "azure.ai.openai" || srv["gen_ai.provider.name"] != "azure.ai.openai" || srv["llmproxy.key"] != "team-a" {
			t.Errorf("provider/key: attempt %v server %v", sa, srv)
		}
		if _, ok := sa["error.type"]; ok {
			t.Error("the successful attempt has an error.type")
		}
		_, in := srv["gen_ai.input.messages"]
		_, out := srv["gen_ai.output.messages"]
		if in != content || out != content {
			t.Errorf("record_content=%v: input recorded %v, output recorded %v", content, in, out)
		}
		if content && !strings.Contains(srv["gen_ai.input.messages"].(string), "the prompt") {
			t.Errorf("input messages %v", srv["gen_ai.input.messages"])
		}
	}
}

func equal(a, b any) bool {
	if as, ok := a.([]string); ok {
		bs, ok := b.([]string)
		return ok && slices.Equal(as, bs)
	}
	return a == b
}

// TestOpStreamMetrics streams three chunks and a usage chunk and checks
// the GenAI histograms, attempts counter and plugin metrics, in the
// OpenTelemetry data and under their Prometheus names.
func TestOpStreamMetrics(t *testing.T) {
	r := newRig(t, false, false)
	ctx, op := r.t.Start(context.Background(), nil, "chat", "claude-sonnet-4", "claude-*", "team-a", "req-2", true, nil)
	_, a := op.Attempt(ctx, 0, "anthropic_main", "anthropic", "claude-sonnet-4")
	for _, c := range []string{
		`{"id":"msg_1","model":"claude-sonnet-4","choices":[{"index":0,"delta":{"content":"a"}}]}`,
		`{"id":"msg_1","choices":[{"index":0,"delta":{"content":"b"}}]}`,
		`{"id":"msg_1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`,
		`{"id":"msg_1","choices":[],"usage":{"prompt_tokens":30,"completion_tokens":2,"total_tokens":32}}`,
	} {
		op.Chunk([]byte(c))
	}
	a.End()
	op.End(http.StatusOK, nil)
	// A refused request: counted with its status and error.type.
	_, op2 := r.t.Start(context.Background(), nil, "chat", "claude-sonnet-4", "claude-*", "team-a", "req-3", false, nil)
	_, a2 := op2.Attempt(ctx, 0, "anthropic_main", "anthropic", "claude-sonnet-4")
	op2.End(http.StatusTooManyRequests, openai.NewError(http.StatusTooManyRequests, openai.TypeRateLimit, "rate_limit_exceeded", "slow down"))
	if !a2.ended {
		t.Error("End did not end the open attempt")
	}
	if len(r.spans.Ended()) != 0 {
		t.Error("spans were recorded with tracing off")
	}

	var rm metricdata.ResourceMetrics
	if err := r.rd.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	counts := map[string]uint64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Histogram[int64]:
				for _, p := range d.DataPoints {
					tt, _ := p.Attributes.Value("gen_ai.token.type")
					counts[m.Name+"/"+tt.AsString()] += p.Count
					if tt.AsString() == "input" && p.Sum != 30 || tt.AsString() == "output" && p.Sum != 2 {
						t.Errorf("%s %s sum %d", m.Name, tt.AsString(), p.Sum)
					}
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					counts[m.Name] += p.Count
					if v, _ := p.Attributes.Value("gen_ai.request.model"); v.AsString() != "claude-*" {
						t.Errorf("%s model label %q, want the route", m.Name, v.AsString())
					}
				}
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					counts[m.Name] += uint64(p.Value)
				}
			}
		}
	}
	for name, want := range map[string]uint64{
		"gen_ai.client.token.usage/input":               1,
		"gen_ai.client.token.usage/output":              1,
		"gen_ai.client.operation.duration":              2,
		"gen_ai.client.operation.time_to_first_chunk":   1,
		"gen_ai.client.operation.time_per_output_chunk": 3,
		"llmproxy.upstream.attempts":                    2,
		"llmproxy.instance.restarts":                    2,
	} {
		if counts[name] != want {
			t.Errorf("%s: %d, want %d", name, counts[name], want)
		}
	}

	// The Prometheus names follow the OTel→Prometheus convention.
	for name, labels := range map[string]string{
		"gen_ai_client_token_usage":                             `gen_ai_token_type="input"`,
		"gen_ai_client_operation_duration_seconds":              `http_response_status_code="429"`,
		"gen_ai_client_operation_time_to_first_chunk_seconds":   `gen_ai_provider_name="anthropic"`,
		"gen_ai_client_operation_time_per_output_chunk_seconds": `llmproxy_instance="anthropic_main"`,
		"llmproxy_upstream_attempts_total":                      `error_type="rate_limit_exceeded"`,
		"llmproxy_instance_ready":                               `state="ready"`,
		"llmproxy_instance_restarts_total":                      `instance="openai_prod"`,
	} {
		n, err := testutil.GatherAndCount(r.reg, name)
		if err != nil || n == 0 {
			t.Errorf("%s: %d series, %v", name, n, err)
			continue
		}
		mfs, _ := r.reg.Gather()
		found := false
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
			for _, m := range mf.GetMetric() {
				var ls []string
				for _, l := range m.GetLabel() {
					ls = append(ls, l.GetName()+`="`+l.GetValue()+`"`)
				}
				if slices.Contains(ls, labels) {
					found = true
				}
			}
		}
		if !found {
			t.Errorf("%s has no series with %s", name, labels)
		}
	}
}

func TestErrorType(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, ""},
		{openai.NewError(502, openai.TypeUpstream, "upstream_auth_failed", "x"), "upstream_auth_failed"},
		{openai.NewError(500, openai.TypeServer, "", "x"), openai.TypeServer},
		{context.DeadlineExceeded, "timeout"},
		{context.Canceled, "canceled"},
		{errors.New("boom"), "_OTHER"},
	} {
		if got := ErrorType(tc.err); got != tc.want {
			t.Errorf("ErrorType(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

// TestNilSafe: a host without telemetry calls the same methods.
func TestNilSafe(t *testing.T) {
	var tel *Telemetry
	ctx, op := tel.Start(context.Background(), nil, "chat", "m", "m", "k", "id", true, nil)
	_, a := op.Attempt(ctx, 0, "i", "openai", "m")
	if a.TraceContext(ctx) != nil {
		t.Error("trace context without telemetry")
	}
	a.Fail(errors.New("x"))
	a.End()
	op.Chunk([]byte(`{}`))
	op.Response([]byte(`{}`))
	op.End(200, nil)
	if tel.Tracing() || tel.PluginEnv() != nil || tel.Shutdown(ctx) != nil {
		t.Error("nil telemetry is not off")
	}
}

// TestOverheadWithoutTracing measures what a streamed request costs in
// allocations when tracing is off (metrics only): a fixed amount per
// request, nothing per chunk without usage.
func TestOverheadWithoutTracing(t *testing.T) {
	r := newRig(t, false, false)
	chunk := []byte(`{"id":"c","choices":[{"index":0,"delta":{"content":"word"}}]}`)
	perRequest := testing.AllocsPerRun(200, func() {
		ctx, op := r.t.Start(context.Background(), nil, "chat", "gpt-4o", "gpt-4o", "k", "id", true, nil)
		_, a := op.Attempt(ctx, 0, "openai_prod", "openai", "gpt-4o")
		op.Chunk(chunk)
		a.End()
		op.End(http.StatusOK, nil)
	})
	ctx, op := r.t.Start(context.Background(), nil, "chat", "gpt-4o", "gpt-4o", "k", "id", true, nil)
	op.Attempt(ctx, 0, "openai_prod", "openai", "gpt-4o")
	op.Chunk(chunk)
	perChunk := testing.AllocsPerRun(1000, func() { op.Chunk(chunk) })
	t.Logf("tracing off: %.0f allocations per streamed request, %.0f per further chunk", perRequest, perChunk)
	if perChunk != 0 {
		t.Errorf("%.0f allocations per chunk with tracing off, want 0", perChunk)
	}
	if perRequest > 80 {
		t.Errorf("%.0f allocations per request with tracing off", perRequest)
	}
}

// TestNotSampled: a request the sampler drops records no span but still
// passes its trace context on, marked not sampled.
func TestNotSampled(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.NeverSample())))
	tel, err := newWith(tp, true, sdkmetric.NewMeterProvider(), false, nil)
	if err != nil {
		t.Fatal(err)
	}
	var h fasthttp.RequestHeader
	h.Set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00")
	ctx, op := tel.Start(context.Background(), &h, "chat", "gpt-4o", "gpt-4o", "k", "id", false, nil)
	actx, a := op.Attempt(ctx, 0, "openai_prod", "openai", "gpt-4o")
	if tp := a.TraceContext(actx)["traceparent"]; !strings.HasPrefix(tp, "00-0af7651916cd43dd8448eb211c80319c-") || !strings.HasSuffix(tp, "-00") {
		t.Errorf("trace context %q, want the incoming trace, not sampled", tp)
	}
	a.End()
	op.End(http.StatusOK, nil)
	if n := len(rec.Ended()); n != 0 {
		t.Errorf("%d spans recorded for a request that is not sampled", n)
	}
}
