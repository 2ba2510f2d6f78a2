package telemetry

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Config is the telemetry block of the host's HCL config. Every field is
// optional; what it leaves unset is taken from the standard OTEL_*
// environment variables, and with neither the host exports nothing but
// its Prometheus /metrics.
//
//	telemetry {
//	  endpoint     = "otel-collector:4317"
//	  protocol     = "grpc"          # or "http/protobuf"
//	  insecure     = true
//	  headers      = { "x-tenant" = "llm" }
//	  sample_ratio = 0.1             # parent-based; default 1
//	  metrics_interval = "30s"
//	  record_content = false         # prompts and answers stay out of spans
//	}
type Config struct {
	// Endpoint is the OTLP collector: host:port for gRPC, a base URL for
	// HTTP. Empty takes OTEL_EXPORTER_OTLP_ENDPOINT (and the per-signal
	// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / _METRICS_ENDPOINT).
	Endpoint string `hcl:"endpoint,optional"`
	// Protocol is "grpc" or "http/protobuf". Empty takes
	// OTEL_EXPORTER_OTLP_PROTOCOL, else "http/protobuf" as the OTLP
	// specification says.
	Protocol string `hcl:"protocol,optional"`
	// Insecure sends OTLP without TLS.
	Insecure bool `hcl:"insecure,optional"`
	// Headers are sent with every export (e.g. a collector's API key).
	Headers map[string]string `hcl:"headers,optional"`
	// Traces and Metrics switch the two signals when an endpoint is set;
	// both default to on.
	Traces  *bool `hcl:"traces,optional"`
	Metrics *bool `hcl:"metrics,optional"`
	// SampleRatio is the share of new traces recorded (0 to 1). A request
	// that arrives with a sampled traceparent is always recorded. Unset
	// takes OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG, else 1.
	SampleRatio *float64 `hcl:"sample_ratio,optional"`
	// MetricsInterval is how often metrics are pushed over OTLP (default
	// 60s, or OTEL_METRIC_EXPORT_INTERVAL).
	MetricsInterval string `hcl:"metrics_interval,optional"`
	// RecordContent puts prompts and answers on spans
	// (gen_ai.input.messages, gen_ai.output.messages). Off by default;
	// OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true also turns
	// it on.
	RecordContent bool `hcl:"record_content,optional"`
	// ServiceName names the host in traces (default "llmproxy", or
	// OTEL_SERVICE_NAME).
	ServiceName string `hcl:"service_name,optional"`
}

// Protocols of the OTLP exporters.
const (
	ProtocolGRPC = "grpc"
	ProtocolHTTP = "http/protobuf"
)

// settings is a Config with the environment applied.
type settings struct {
	endpoint      string // from HCL only; the exporters read the env themselves
	protocol      string
	insecure      bool
	headers       map[string]string
	traces        bool
	metrics       bool
	ratio         *float64
	interval      time.Duration
	recordContent bool
	service       string
}

// Validate reports what is wrong with c, naming the attribute.
func (c *Config) Validate() error {
	if c == nil {
		return nil
	}
	switch c.Protocol {
	case "", ProtocolGRPC, ProtocolHTTP:
	default:
		return fmt.Errorf("telemetry: protocol must be %q or %q, not %q", ProtocolGRPC, ProtocolHTTP, c.Protocol)
	}
	if c.SampleRatio != nil && (*c.SampleRatio < 0 || *c.SampleRatio > 1) {
		return fmt.Errorf("telemetry: sample_ratio must be between 0 and 1, not %v", *c.SampleRatio)
	}
	if c.MetricsInterval != "" {
		d, err := time.ParseDuration(c.MetricsInterval)
		if err != nil || d <= 0 {
			return fmt.Errorf("telemetry: metrics_interval %q is not a positive duration", c.MetricsInterval)
		}
	}
	return nil
}

// resolve merges c (which may be nil) with the environment read by
// getenv.
func (c *Config) resolve(getenv func(string) string) (settings, error) {
	if err := c.Validate(); err != nil {
		return settings{}, err
	}
	if c == nil {
		c = &Config{}
	}
	s := settings{
		endpoint:      c.Endpoint,
		protocol:      c.Protocol,
		insecure:      c.Insecure,
		headers:       c.Headers,
		ratio:         c.SampleRatio,
		recordContent: c.RecordContent || strings.EqualFold(getenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"), "true"),
		service:       c.ServiceName,
	}
	if s.service == "" {
		s.service = getenv("OTEL_SERVICE_NAME")
	}
	if s.service == "" {
		s.service = "llmproxy"
	}
	envEndpoint := func(signal string) bool {
		return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_"+signal+"_ENDPOINT") != ""
	}
	on := func(flag *bool, signal string) bool {
		if flag != nil && !*flag {
			return false
		}
		if strings.EqualFold(getenv("OTEL_"+signal+"_EXPORTER"), "none") && c.Endpoint == "" {
			return false
		}
		return c.Endpoint != "" || envEndpoint(signal)
	}
	if strings.EqualFold(getenv("OTEL_SDK_DISABLED"), "true") {
		return s, nil
	}
	s.traces = on(c.Traces, "TRACES")
	s.metrics = on(c.Metrics, "METRICS")
	if s.protocol == "" {
		s.protocol = getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	if s.protocol == "" {
		s.protocol = ProtocolHTTP
	}
	if s.protocol != ProtocolGRPC && s.protocol != ProtocolHTTP {
		return s, fmt.Errorf("telemetry: OTEL_EXPORTER_OTLP_PROTOCOL must be %q or %q, not %q", ProtocolGRPC, ProtocolHTTP, s.protocol)
	}
	if c.MetricsInterval != "" {
		s.interval, _ = time.ParseDuration(c.MetricsInterval)
	} else if ms, err := strconv.Atoi(getenv("OTEL_METRIC_EXPORT_INTERVAL")); err == nil && ms > 0 {
		s.interval = time.Duration(ms) * time.Millisecond
	}
	return s, nil
}

// pluginEnv is the environment that makes a plugin export its spans to
// the same collector as the host: the OTEL_* variables of the host, with
// the HCL settings on top. Plugins sample by their parent, so they record
// exactly the traces the host records.
func (s settings) pluginEnv(getenv func(string) string, environ []string) []string {
	if !s.traces {
		return nil
	}
	var env []string
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "OTEL_") && k != "OTEL_SERVICE_NAME" && k != "OTEL_TRACES_SAMPLER" && k != "OTEL_TRACES_SAMPLER_ARG" {
			env = append(env, kv)
		}
	}
	if s.endpoint != "" {
		env = append(env, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="+endpointURL(s.endpoint, s.protocol, s.insecure))
	}
	env = append(env, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="+s.protocol, "OTEL_TRACES_SAMPLER=parentbased_always_off")
	if s.insecure {
		env = append(env, "OTEL_EXPORTER_OTLP_TRACES_INSECURE=true")
	}
	if len(s.headers) > 0 {
		var h []string
		for k, v := range s.headers {
			h = append(h, k+"="+v)
		}
		env = append(env, "OTEL_EXPORTER_OTLP_TRACES_HEADERS="+strings.Join(h, ","))
	}
	return env
}

// endpointURL turns an HCL endpoint into the URL form the per-signal
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT variable takes.
func endpointURL(endpoint, protocol string, insecure bool) string {
	u := endpoint
	if !strings.Contains(u, "://") {
		scheme := "https://"
		if insecure {
			scheme = "http://"
		}
		u = scheme + u
	}
	if protocol == ProtocolHTTP && !strings.HasSuffix(u, "/v1/traces") {
		u = strings.TrimSuffix(u, "/") + "/v1/traces"
	}
	return u
}

// environ is os.Environ, replaceable in tests.
var environ = os.Environ
