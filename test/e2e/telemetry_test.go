package e2e

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	collectormetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"

	"github.com/llmproxy/llmproxy/plugins/provider-openai/openaifake"
	"github.com/llmproxy/llmproxy/test/harness"
)

// otlpReceiver is an OTLP/gRPC trace collector that keeps every span it
// is sent, with the service.name of the process that sent it.
type otlpReceiver struct {
	collectortrace.UnimplementedTraceServiceServer
	addr    string
	mu      sync.Mutex
	spans   []span
	metrics map[string]bool // names of the metrics received
}

// otlpMetrics is the receiver's OTLP metrics service.
type otlpMetrics struct {
	collectormetrics.UnimplementedMetricsServiceServer
	r *otlpReceiver
}

// Export implements the OTLP metrics service.
func (m otlpMetrics) Export(_ context.Context, req *collectormetrics.ExportMetricsServiceRequest) (*collectormetrics.ExportMetricsServiceResponse, error) {
	m.r.mu.Lock()
	defer m.r.mu.Unlock()
	for _, rm := range req.ResourceMetrics {
		for _, sm := range rm.ScopeMetrics {
			for _, x := range sm.Metrics {
				m.r.metrics[x.Name] = true
			}
		}
	}
	return &collectormetrics.ExportMetricsServiceResponse{}, nil
}

// span is one received span, flattened for the assertions.
type span struct {
	Service  string
	Name     string
	Kind     tracepb.Span_SpanKind
	TraceID  string
	SpanID   string
	ParentID string
	Attrs    map[string]any
	Error    bool
}

func newOTLPReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &otlpReceiver{addr: lis.Addr().String(), metrics: map[string]bool{}}
	srv := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(srv, r)
	collectormetrics.RegisterMetricsServiceServer(srv, otlpMetrics{r: r})
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return r
}

// Export implements the OTLP trace service.
func (r *otlpReceiver) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range req.ResourceSpans {
		service := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.Key == "service.name" {
				service = kv.Value.GetStringValue()
			}
		}
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				out := span{Service: service, Name: s.Name, Kind: s.Kind, TraceID: hex.EncodeToString(s.TraceId),
					SpanID: hex.EncodeToString(s.SpanId), ParentID: hex.EncodeToString(s.ParentSpanId),
					Attrs: map[string]any{}, Error: s.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR}
				for _, kv := range s.Attributes {
					out.Attrs[kv.Key] = anyValue(kv.Value)
				}
				r.spans = append(r.spans, out)
			}
		}
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

func anyValue(v *commonpb.AnyValue) any {
	switch x := v.Value.(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return x.IntValue
	case *commonpb.AnyValue_BoolValue:
		return x.BoolValue
	case *commonpb.AnyValue_DoubleValue:
		return x.DoubleValue
	case *commonpb.AnyValue_ArrayValue:
		var out []string
		for _, e := range x.ArrayValue.Values {
			out = append(out, fmt.Sprint(anyValue(e)))
		}
		return strings.Join(out, ",")
	}
	return nil
}

// wait returns the spans once ok accepts them, or fails the test.
func (r *otlpReceiver) wait(t *testing.T, within time.Duration, ok func([]span) bool) []span {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		r.mu.Lock()
		got := append([]span(nil), r.spans...)
		r.mu.Unlock()
		if ok(got) {
			return got
		}
		if time.Now().After(deadline) {
			for _, s := range got {
				t.Logf("span %s %q kind=%v trace=%s id=%s parent=%s attrs=%v", s.Service, s.Name, s.Kind, s.TraceID, s.SpanID, s.ParentID, s.Attrs)
			}
			t.Fatalf("the expected spans did not arrive within %v", within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestTraceStreamedChatWithFailover sends one streamed chat to a route
// whose first instance fails with a 500 and checks the trace an OTLP
// collector receives: the host's server span, two attempt spans (the
// first with its error.type), the openai plugin's span under the second
// attempt with its HTTP client span, GenAI attributes and token counts
// equal to the usage the client got, no prompt or answer text, and a
// traceparent at the upstream that belongs to the trace. The GenAI
// metrics of the request are on /metrics and reach the collector too.
func TestTraceStreamedChatWithFailover(t *testing.T) {
	rcv := newOTLPReceiver(t)
	bad := openaifake.New(openaifake.Options{})
	bad.FailNext(1, openaifake.Failure{Status: http.StatusInternalServerError, Message: "the first upstream is down"})
	badRec := newProvRecorder(t, bad)
	good := openaifake.New(openaifake.Options{})
	const answer = "Traced answer from the second upstream."
	good.SetScenario(openaifake.Scenario{Reply: answer})
	goodRec := newProvRecorder(t, good)

	instance := func(name, url string) string {
		return fmt.Sprintf(`
provider %q {
  type = "openai"
  credential "api_key" {
    from "value" { value = %q }
  }
  config {
    base_url = "%s/v1"
  }
}
`, name, openaifake.DefaultKey, url)
	}
	hcl := harness.APIKeyBlock + instance("openai_down", badRec.URL()) + instance("openai_up", goodRec.URL()) + fmt.Sprintf(`
route "gpt-4o" {
  strategy = "failover"
  target "openai_down" {}
  target "openai_up" {}
}
telemetry {
  endpoint = %q
  protocol = "grpc"
  insecure = true
  metrics_interval = "200ms"
}
`, rcv.addr)
	h := harness.Start(t, hcl, harness.Options{
		WaitFor: []string{"openai_down", "openai_up"},
		Env:     []string{"OTEL_BSP_SCHEDULE_DELAY=100"},
	})

	const prompt = "A secret prompt that must stay out of traces."
	body := fmt.Sprintf(`{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":%q}]}`, prompt)
	req, _ := http.NewRequest("POST", h.URL+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+harness.Key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	var (
		text  strings.Builder
		usage struct{ PromptTokens, CompletionTokens int64 }
		id    string
		done  bool
	)
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if line == "[DONE]" {
			done = true
			break
		}
		var c struct {
			ID      string `json:"id"`
			Choices []struct {
				Delta struct{ Content string } `json:"delta"`
			} `json:"choices"`
			Usage *struct {
				PromptTokens     int64 `json:"prompt_tokens"`
				CompletionTokens int64 `json:"completion_tokens"`
			} `json:"usage"`
		}
		if err := json.Unmarshal([]byte(line), &c); err != nil {
			t.Fatalf("chunk %q: %v", line, err)
		}
		id = c.ID
		for _, ch := range c.Choices {
			text.WriteString(ch.Delta.Content)
		}
		if c.Usage != nil {
			usage.PromptTokens, usage.CompletionTokens = c.Usage.PromptTokens, c.Usage.CompletionTokens
		}
	}
	if !done || text.String() != answer || usage.CompletionTokens == 0 {
		t.Fatalf("stream: done=%v text=%q usage=%+v", done, text.String(), usage)
	}
	if n := len(badRec.Posts()); n != 1 {
		t.Fatalf("the failing upstream got %d requests, want 1", n)
	}

	find := func(spans []span, f func(span) bool) []span {
		var out []span
		for _, s := range spans {
			if f(s) {
				out = append(out, s)
			}
		}
		return out
	}
	isServer := func(s span) bool { return s.Service == "llmproxy" && s.Kind == tracepb.Span_SPAN_KIND_SERVER }
	isPlugin := func(s span) bool {
		return s.Service == "llmproxy-provider-openai" && s.Kind == tracepb.Span_SPAN_KIND_SERVER
	}
	spans := rcv.wait(t, 15*time.Second, func(s []span) bool {
		return len(find(s, isServer)) == 1 && len(find(s, isPlugin)) == 2 &&
			len(find(s, func(s span) bool { return s.Name == "POST" })) == 2
	})

	for _, s := range spans {
		t.Logf("span %-26s %-18q %-22v id=%s parent=%s", s.Service, s.Name, s.Kind, s.SpanID, s.ParentID)
	}
	server := find(spans, isServer)[0]
	if server.Name != "chat gpt-4o" {
		t.Errorf("server span name %q, want %q", server.Name, "chat gpt-4o")
	}
	want := map[string]any{
		"gen_ai.operation.name":          "chat",
		"gen_ai.request.model":           "gpt-4o",
		"gen_ai.provider.name":           "openai",
		"gen_ai.response.model":          "gpt-4o",
		"gen_ai.response.id":             id,
		"gen_ai.response.finish_reasons": "stop",
		"gen_ai.usage.input_tokens":      usage.PromptTokens,
		"gen_ai.usage.output_tokens":     usage.CompletionTokens,
		"llmproxy.instance":              "openai_up",
		"http.response.status_code":      int64(200),
	}
	for k, v := range want {
		if server.Attrs[k] != v {
			t.Errorf("server span %s = %v (%T), want %v (%T)", k, server.Attrs[k], server.Attrs[k], v, v)
		}
	}
	if server.Error {
		t.Error("the server span is an error, but the request succeeded")
	}

	attempts := find(spans, func(s span) bool {
		return s.Service == "llmproxy" && s.Kind == tracepb.Span_SPAN_KIND_CLIENT
	})
	if len(attempts) != 2 {
		t.Fatalf("%d attempt spans, want 2", len(attempts))
	}
	if attempts[0].Attrs["llmproxy.attempt"] != int64(1) {
		attempts[0], attempts[1] = attempts[1], attempts[0]
	}
	first, second := attempts[0], attempts[1]
	for i, a := range attempts {
		if a.TraceID != server.TraceID || a.ParentID != server.SpanID || a.Name != "chat gpt-4o" {
			t.Errorf("attempt %d: trace %s parent %s name %q; want trace %s parent %s", i+1, a.TraceID, a.ParentID, a.Name, server.TraceID, server.SpanID)
		}
		if a.Attrs["gen_ai.provider.name"] != "openai" || a.Attrs["llmproxy.attempt"] != int64(i+1) {
			t.Errorf("attempt %d attributes: %v", i+1, a.Attrs)
		}
	}
	if first.Attrs["llmproxy.instance"] != "openai_down" || first.Attrs["error.type"] == nil || !first.Error {
		t.Errorf("first attempt: want instance openai_down with an error.type and error status, got %v error=%v", first.Attrs, first.Error)
	}
	if second.Attrs["llmproxy.instance"] != "openai_up" || second.Attrs["error.type"] != nil || second.Error {
		t.Errorf("second attempt: want instance openai_up without error, got %v error=%v", second.Attrs, second.Error)
	}
	for _, k := range []string{"gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "gen_ai.response.id"} {
		if second.Attrs[k] != want[k] {
			t.Errorf("second attempt %s = %v, want %v", k, second.Attrs[k], want[k])
		}
	}

	// The plugin's span continues each attempt; under the successful one
	// it has the HTTP client span whose context reached the upstream.
	var plugin span
	for _, p := range find(spans, isPlugin) {
		switch p.ParentID {
		case second.SpanID:
			plugin = p
		case first.SpanID:
			if !p.Error || p.Attrs["error.type"] == nil {
				t.Errorf("the plugin span of the failed attempt carries no error: %v", p.Attrs)
			}
		default:
			t.Errorf("plugin span %s has parent %s, not an attempt", p.SpanID, p.ParentID)
		}
	}
	if plugin.SpanID == "" {
		t.Fatal("no plugin span under the second attempt")
	}
	if plugin.TraceID != server.TraceID || plugin.Name != "chat gpt-4o" || plugin.Attrs["llmproxy.instance"] != "openai_up" ||
		plugin.Attrs["server.address"] != "127.0.0.1" {
		t.Errorf("plugin span: %+v", plugin)
	}
	httpSpans := find(spans, func(s span) bool { return s.Name == "POST" && s.ParentID == plugin.SpanID })
	if len(httpSpans) != 1 || httpSpans[0].Kind != tracepb.Span_SPAN_KIND_CLIENT || httpSpans[0].Attrs["http.response.status_code"] != int64(200) {
		t.Fatalf("HTTP client spans under the plugin span: %+v", httpSpans)
	}
	posts := goodRec.Posts()
	if len(posts) != 1 {
		t.Fatalf("the second upstream got %d requests, want 1", len(posts))
	}
	tp := posts[0].Header.Get("Traceparent")
	if wantTP := "00-" + server.TraceID + "-" + httpSpans[0].SpanID + "-01"; tp != wantTP {
		t.Errorf("upstream traceparent %q, want %q", tp, wantTP)
	}
	if tp := badRec.Posts()[0].Header.Get("Traceparent"); !strings.Contains(tp, server.TraceID) {
		t.Errorf("the failing upstream's traceparent %q is not of trace %s", tp, server.TraceID)
	}

	// The same request in the metrics, on /metrics and over OTLP.
	status, _, prom := h.Do(t, "GET", "/metrics", "")
	if status != 200 {
		t.Fatalf("/metrics: %d", status)
	}
	for _, want := range []string{
		`gen_ai_client_token_usage_sum{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o",gen_ai_token_type="output",llmproxy_instance="openai_up",llmproxy_key="e2e"} ` + fmt.Sprint(usage.CompletionTokens),
		`gen_ai_client_operation_duration_seconds_count{error_type="",gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o",http_response_status_code="200",llmproxy_instance="openai_up",llmproxy_key="e2e"} 1`,
		`gen_ai_client_operation_time_to_first_chunk_seconds_count{`,
		`llmproxy_upstream_attempts_total{error_type="",gen_ai_provider_name="openai",llmproxy_instance="openai_up"} 1`,
		`llmproxy_instance_ready{instance="openai_down",kind="provider",state="ready",type="openai"} 1`,
	} {
		if !strings.Contains(string(prom), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if !strings.Contains(string(prom), `llmproxy_upstream_attempts_total{error_type="`) || strings.Count(string(prom), "llmproxy_upstream_attempts_total{") != 2 {
		t.Errorf("/metrics: want one failed and one served attempt:\n%s", grepLines(string(prom), "llmproxy_upstream_attempts_total"))
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, name := range []string{"gen_ai.client.token.usage", "gen_ai.client.operation.duration", "gen_ai.client.operation.time_to_first_chunk", "llmproxy.instance.ready"} {
		for {
			rcv.mu.Lock()
			ok := rcv.metrics[name]
			rcv.mu.Unlock()
			if ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("metric %s never reached the collector", name)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	// Content recording is off: neither the prompt nor the answer is in
	// any span.
	for _, s := range spans {
		for k, v := range s.Attrs {
			if str, ok := v.(string); ok && (strings.Contains(str, prompt) || strings.Contains(str, "Traced answer")) {
				t.Errorf("span %q records content in %s", s.Name, k)
			}
		}
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
