package telemetry

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	collectormetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// TestNewExportsOverHTTP configures the OTLP/HTTP exporters in HCL and
// checks that a request's span and metrics reach a collector, with the
// configured header, when the host shuts down.
func TestNewExportsOverHTTP(t *testing.T) {
	var (
		mu      sync.Mutex
		spans   []string
		metrics []string
		auth    []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		auth = append(auth, r.Header.Get("X-Collector-Key"))
		switch r.URL.Path {
		case "/v1/traces":
			var req collectortrace.ExportTraceServiceRequest
			if err := proto.Unmarshal(body, &req); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			for _, rs := range req.ResourceSpans {
				for _, ss := range rs.ScopeSpans {
					for _, s := range ss.Spans {
						spans = append(spans, s.Name)
					}
				}
			}
		case "/v1/metrics":
			var req collectormetrics.ExportMetricsServiceRequest
			if err := proto.Unmarshal(body, &req); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			for _, rm := range req.ResourceMetrics {
				for _, sm := range rm.ScopeMetrics {
					for _, m := range sm.Metrics {
						metrics = append(metrics, m.Name)
					}
				}
			}
		default:
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer srv.Close()

	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	tel, err := New(context.Background(), &Config{Endpoint: srv.URL, Protocol: ProtocolHTTP, Insecure: true,
		Headers: map[string]string{"X-Collector-Key": "k1"}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !tel.Tracing() {
		t.Fatal("tracing is off with an endpoint configured")
	}
	ctx, op := tel.Start(context.Background(), nil, "embeddings", "text-embedding-3-small", "text-embedding-3-small", "k", "r", false, nil)
	_, a := op.Attempt(ctx, 0, "openai_prod", "openai", "text-embedding-3-small")
	op.Response([]byte(`{"model":"text-embedding-3-small","usage":{"prompt_tokens":5,"total_tokens":5}}`))
	a.End()
	op.End(http.StatusOK, nil)
	if err := tel.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(spans, ",") != "embeddings text-embedding-3-small,embeddings text-embedding-3-small" {
		t.Errorf("spans received: %v", spans)
	}
	for _, want := range []string{"gen_ai.client.operation.duration", "gen_ai.client.token.usage", "llmproxy.upstream.attempts"} {
		if !strings.Contains(strings.Join(metrics, ","), want) {
			t.Errorf("metrics received %v lack %s", metrics, want)
		}
	}
	for _, k := range auth {
		if k != "k1" {
			t.Errorf("an export went without the configured header: %q", k)
		}
	}
}
