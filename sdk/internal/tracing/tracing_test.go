package tracing

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/llmproxy/llmproxy/sdk/openai"
)

const hostParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// upstream records the traceparent of each request.
func upstream(t *testing.T) (*httptest.Server, *[]string) {
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, r.Header.Get("Traceparent"))
	}))
	t.Cleanup(srv.Close)
	return srv, &seen
}

func get(t *testing.T, ctx context.Context, rt http.RoundTripper, url string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if req.Header.Get("Traceparent") != "" {
		t.Error("the transport modified the caller's request")
	}
}

func TestOff(t *testing.T) {
	enabled.Store(false)
	srv, seen := upstream(t)
	ctx, end := Start(context.Background(), map[string]string{"traceparent": hostParent}, "chat", "m", "i")
	end(nil)
	get(t, ctx, Transport(nil), srv.URL)
	if (*seen)[0] != "" {
		t.Errorf("traceparent %q sent with tracing off", (*seen)[0])
	}
	if trace.SpanContextFromContext(ctx).IsValid() {
		t.Error("Start made a span with tracing off")
	}
}

func TestOn(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tracer = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)).Tracer(scope)
	enabled.Store(true)
	t.Cleanup(func() { enabled.Store(false) })
	srv, seen := upstream(t)

	// No trace to continue: nothing is recorded or sent.
	ctx, end := Start(context.Background(), nil, "chat", "gpt-4o", "openai_prod")
	get(t, ctx, Transport(http.DefaultTransport), srv.URL)
	end(nil)
	if len(rec.Ended()) != 0 || (*seen)[0] != "" {
		t.Fatalf("spans %d, traceparent %q without a trace from the host", len(rec.Ended()), (*seen)[0])
	}

	ctx, end = Start(context.Background(), map[string]string{"traceparent": hostParent}, "chat", "gpt-4o", "openai_prod")
	get(t, ctx, Transport(http.DefaultTransport), srv.URL+"/v1/chat/completions?key=secret-in-query")
	end(openai.NewError(http.StatusTooManyRequests, openai.TypeRateLimit, "rate_limit_exceeded", "slow down"))
	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want the HTTP span and the plugin span", len(spans))
	}
	httpSpan, plugin := spans[0], spans[1]
	if plugin.Name() != "chat gpt-4o" || plugin.Parent().SpanID().String() != "00f067aa0ba902b7" ||
		plugin.SpanContext().TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("plugin span %q parent %s trace %s", plugin.Name(), plugin.Parent().SpanID(), plugin.SpanContext().TraceID())
	}
	if httpSpan.Name() != "GET" || httpSpan.SpanKind() != trace.SpanKindClient || httpSpan.Parent().SpanID() != plugin.SpanContext().SpanID() {
		t.Errorf("HTTP span %q kind %v parent %s", httpSpan.Name(), httpSpan.SpanKind(), httpSpan.Parent().SpanID())
	}
	want := "00-4bf92f3577b34da6a3ce929d0e0e4736-" + httpSpan.SpanContext().SpanID().String() + "-01"
	if (*seen)[1] != want {
		t.Errorf("upstream traceparent %q, want %q", (*seen)[1], want)
	}
	pa, ha := map[string]string{}, map[string]string{}
	for _, kv := range plugin.Attributes() {
		pa[string(kv.Key)] = kv.Value.Emit()
	}
	for _, kv := range httpSpan.Attributes() {
		ha[string(kv.Key)] = kv.Value.Emit()
		if strings.Contains(kv.Value.Emit(), "secret") {
			t.Errorf("the HTTP span records the query in %s", kv.Key)
		}
	}
	if pa["error.type"] != "rate_limit_exceeded" || pa["server.address"] != "127.0.0.1" || pa["gen_ai.request.model"] != "gpt-4o" {
		t.Errorf("plugin span attributes %v", pa)
	}
	if ha["http.response.status_code"] != "200" || ha["url.path"] != "/v1/chat/completions" || ha["server.address"] != "127.0.0.1" {
		t.Errorf("HTTP span attributes %v", ha)
	}
}
