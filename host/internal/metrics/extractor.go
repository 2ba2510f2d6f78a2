package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/llmproxy/llmproxy/host/internal/plugins"
)

var (
	extractorProcesses = prometheus.NewDesc("llmproxy_extractor_processes",
		"Live processes of the extractor plugin.", []string{"type"}, nil)
	extractorReplaced = prometheus.NewDesc("llmproxy_extractor_replaced_total",
		"Extractor processes killed and replaced after a document exceeded their limits or crashed them.", []string{"type"}, nil)
)

// WatchExtractors adds the extractor pools' process counts and
// replacements to the metrics, read when scraped.
func (x *Metrics) WatchExtractors(e *plugins.Extractors) {
	x.reg.MustRegister(&extractorCollector{e: e})
}

type extractorCollector struct{ e *plugins.Extractors }

func (c *extractorCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- extractorProcesses
	ch <- extractorReplaced
}

func (c *extractorCollector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range c.e.Status() {
		ch <- prometheus.MustNewConstMetric(extractorProcesses, prometheus.GaugeValue, float64(len(st.PIDs)), st.Type)
		ch <- prometheus.MustNewConstMetric(extractorReplaced, prometheus.CounterValue, float64(st.Replaced), st.Type)
	}
}
