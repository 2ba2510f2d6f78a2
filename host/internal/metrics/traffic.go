package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/llmproxy/llmproxy/host/internal/ratelimit"
	"github.com/llmproxy/llmproxy/host/internal/router"
)

var (
	circuitState = prometheus.NewDesc("llmproxy_instance_circuit_open",
		"1 when the instance is ejected from routing (circuit open or half-open), else 0.", []string{"instance", "state"}, nil)
	circuitEjections = prometheus.NewDesc("llmproxy_instance_ejections_total",
		"Times the instance was ejected from routing by its circuit breaker.", []string{"instance"}, nil)
	inFlight = prometheus.NewDesc("llmproxy_instance_in_flight",
		"Attempts running against the instance.", []string{"instance"}, nil)
	ttfb = prometheus.NewDesc("llmproxy_instance_ttfb_ewma_seconds",
		"Moving average of the instance's time to the first byte.", []string{"instance"}, nil)
	limitDecisions = prometheus.NewDesc("llmproxy_ratelimit_decisions_total",
		"Rate limit decisions, by result: allowed, limited, or taken without the backend (failed_open, failed_closed).", []string{"result"}, nil)
	retries = prometheus.NewDesc("llmproxy_upstream_retries_total",
		"Attempts after the first of a request, by kind: retry (same instance) or failover (next instance).", []string{"kind"}, nil)
)

// Traffic registers the routing, rate limit and retry metrics. r returns
// the router in use (it changes on reload). Any argument may be nil.
func (x *Metrics) Traffic(r func() *router.Router, l *ratelimit.Limiter, attempts func() (retries, failovers uint64)) {
	x.reg.MustRegister(&trafficCollector{r: r, l: l, attempts: attempts})
}

type trafficCollector struct {
	r        func() *router.Router
	l        *ratelimit.Limiter
	attempts func() (uint64, uint64)
}

func (c *trafficCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{circuitState, circuitEjections, inFlight, ttfb, limitDecisions, retries} {
		ch <- d
	}
}

func (c *trafficCollector) Collect(ch chan<- prometheus.Metric) {
	if c.r != nil && c.r() != nil {
		for name, st := range c.r().Circuits() {
			open := 0.0
			if st.State != router.Closed {
				open = 1
			}
			ch <- prometheus.MustNewConstMetric(circuitState, prometheus.GaugeValue, open, name, st.State)
			ch <- prometheus.MustNewConstMetric(circuitEjections, prometheus.CounterValue, float64(st.Ejections), name)
			ch <- prometheus.MustNewConstMetric(inFlight, prometheus.GaugeValue, float64(st.InFlight), name)
			ch <- prometheus.MustNewConstMetric(ttfb, prometheus.GaugeValue, st.LatencyMS/1000, name)
		}
	}
	if c.l != nil {
		s := c.l.Stats()
		for result, v := range map[string]uint64{"allowed": s.Allowed, "limited": s.Limited, "failed_open": s.FailedOpen, "failed_closed": s.FailedClosed} {
			ch <- prometheus.MustNewConstMetric(limitDecisions, prometheus.CounterValue, float64(v), result)
		}
	}
	if c.attempts != nil {
		r, f := c.attempts()
		ch <- prometheus.MustNewConstMetric(retries, prometheus.CounterValue, float64(r), "retry")
		ch <- prometheus.MustNewConstMetric(retries, prometheus.CounterValue, float64(f), "failover")
	}
}
