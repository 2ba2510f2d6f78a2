// Package metrics exposes llmproxy's Prometheus metrics on /metrics.
//
// Request metrics are recorded once per request with a small, bounded
// label set (endpoint class and status code); document cache counters
// are read when scraped, so they cost nothing on the request path. The
// GenAI, upstream-attempt and plugin-state metrics are registered here by
// package telemetry.
package metrics

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"github.com/llmproxy/llmproxy/host/internal/document"
)

// Metrics holds the registry and the request instruments.
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	handler  fasthttp.RequestHandler
}

// New registers the request and Go runtime metrics. The GenAI and
// plugin metrics are OpenTelemetry instruments that package telemetry
// registers through Registry.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	x := &Metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "llmproxy_requests_total",
			Help: "HTTP requests served, by endpoint class and status code.",
		}, []string{"endpoint", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "llmproxy_request_duration_seconds",
			Help:    "Time to the response header (streams: to the first chunk), by endpoint class.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"endpoint"}),
	}
	reg.MustRegister(x.requests, x.duration, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	x.handler = fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return x
}

// Registry is where other metrics register to be served on /metrics.
func (x *Metrics) Registry() prometheus.Registerer { return x.reg }

// WatchDocuments adds the document cache counters of docs.
func (x *Metrics) WatchDocuments(docs *document.Resolver) {
	x.reg.MustRegister(&documentCollector{docs: docs})
}

// Observe records one request.
func (x *Metrics) Observe(endpoint string, code int, took time.Duration) {
	x.requests.WithLabelValues(endpoint, strconv.Itoa(code)).Inc()
	x.duration.WithLabelValues(endpoint).Observe(took.Seconds())
}

// Register adds collectors kept elsewhere (the reload counters, say) to
// the registry /metrics serves.
func (x *Metrics) Register(cs ...prometheus.Collector) {
	x.reg.MustRegister(cs...)
}

// Serve answers a scrape.
func (x *Metrics) Serve(ctx *fasthttp.RequestCtx) { x.handler(ctx) }

var (
	cacheHits   = prometheus.NewDesc("llmproxy_document_cache_hits_total", "Document cache hits.", nil, nil)
	cacheMisses = prometheus.NewDesc("llmproxy_document_cache_misses_total", "Document cache misses.", nil, nil)
	cacheErrors = prometheus.NewDesc("llmproxy_document_cache_errors_total", "Document cache backend errors.", nil, nil)
)

type documentCollector struct{ docs *document.Resolver }

func (c *documentCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- cacheHits
	ch <- cacheMisses
	ch <- cacheErrors
}

func (c *documentCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.docs.Stats()
	ch <- prometheus.MustNewConstMetric(cacheHits, prometheus.CounterValue, float64(s.Hits))
	ch <- prometheus.MustNewConstMetric(cacheMisses, prometheus.CounterValue, float64(s.Misses))
	ch <- prometheus.MustNewConstMetric(cacheErrors, prometheus.CounterValue, float64(s.Errors))
}
