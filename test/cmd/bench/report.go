package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
)

// row is one line of the table: a value per target (direct, bare,
// llmproxy) and how the values are shown and compared.
type row struct {
	name   string
	values [3]float64
	// format shows one value.
	format func(float64) string
	// noDirect leaves the direct column and the ratio against it empty
	// (added latencies are zero there by definition).
	noDirect bool
}

func fmtMicros(us float64) string {
	switch {
	case math.Abs(us) >= 1000:
		return fmt.Sprintf("%.2fms", us/1000)
	default:
		return fmt.Sprintf("%.1fµs", us)
	}
}

func fmtRate(v float64) string { return fmt.Sprintf("%.0f", v) }

func fmtRatio(v float64) string {
	if v == 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return "-"
	}
	return fmt.Sprintf("%.2f", v)
}

func rows(rep *Report) []row {
	pick := func(f func(Result) float64) [3]float64 {
		var v [3]float64
		for i := range v {
			v[i] = f(rep.Results[i])
		}
		return v
	}
	c := rep.Params.Concurrency
	return []row{
		{name: "latency p50, c=1", values: pick(func(r Result) float64 { return r.Latency.P50US }), format: fmtMicros},
		{name: "latency p99, c=1", values: pick(func(r Result) float64 { return r.Latency.P99US }), format: fmtMicros},
		{name: "added latency p50, c=1", values: pick(func(r Result) float64 { return r.AddedP50US }), format: fmtMicros, noDirect: true},
		{name: "added latency p99, c=1", values: pick(func(r Result) float64 { return r.AddedP99US }), format: fmtMicros, noDirect: true},
		{name: fmt.Sprintf("throughput req/s, c=%d", c), values: pick(func(r Result) float64 { return r.ThroughputRPS }), format: fmtRate},
		{name: fmt.Sprintf("latency p50, c=%d", c), values: pick(func(r Result) float64 { return r.Loaded.P50US }), format: fmtMicros},
		{name: fmt.Sprintf("latency p99, c=%d", c), values: pick(func(r Result) float64 { return r.Loaded.P99US }), format: fmtMicros},
		{name: "stream first chunk p50", values: pick(func(r Result) float64 { return r.Stream.TTFCP50US }), format: fmtMicros},
		{name: "stream first chunk p99", values: pick(func(r Result) float64 { return r.Stream.TTFCP99US }), format: fmtMicros},
		{name: "stream added first chunk p50", values: pick(func(r Result) float64 { return r.AddedTTFCP50US }), format: fmtMicros, noDirect: true},
		{name: "stream total p50", values: pick(func(r Result) float64 { return r.Stream.TotalP50US }), format: fmtMicros},
		{name: "stream chunks/s p50", values: pick(func(r Result) float64 { return r.Stream.ChunksPerSecP50 }), format: fmtRate},
	}
}

// writeTable prints the report as one table, the ratios and the checks.
func writeTable(w io.Writer, rep *Report) {
	e, p := rep.Env, rep.Params
	chunks := 0
	if len(rep.Results) > 0 {
		chunks = rep.Results[0].Stream.Chunks
	}
	fmt.Fprintf(w, "llmproxy gateway benchmark: %s %s, %d CPUs", e.GoVersion, e.OS, e.CPUs)
	if e.GOGC != "" {
		fmt.Fprintf(w, ", GOGC=%s", e.GOGC)
	}
	if e.GOMAXPROCS != "" {
		fmt.Fprintf(w, ", GOMAXPROCS=%s", e.GOMAXPROCS)
	}
	fmt.Fprintf(w, "\n%d sequential requests and %d streams of %d chunks per target in %d rounds; %d connections for %gs\n\n",
		p.Requests, p.Streams, chunks, p.Rounds, p.Concurrency, p.DurationS)

	const head = "%-30s %11s %11s %11s %16s %14s\n"
	fmt.Fprintf(w, head, "", "direct", "bare proxy", "llmproxy", "llmproxy/direct", "llmproxy/bare")
	fmt.Fprintln(w, strings.Repeat("-", 30+12*3+17+15))
	for _, r := range rows(rep) {
		direct, toDirect := r.format(r.values[0]), fmtRatio(ratio(r.values[2], r.values[0]))
		if r.noDirect {
			direct, toDirect = "-", "-"
		}
		fmt.Fprintf(w, head, r.name, direct, r.format(r.values[1]), r.format(r.values[2]),
			toDirect, fmtRatio(ratio(r.values[2], r.values[1])))
	}
	fmt.Fprintln(w)
	for _, r := range rep.Ratios {
		fmt.Fprintf(w, "%s = %s\n", r.Name, fmtRatio(r.Value))
	}
	fmt.Fprintln(w)
	for _, c := range rep.Checks {
		mark := "MET "
		if !c.Met {
			mark = "MISS"
		}
		got := fmtRatio(c.Got)
		if c.Unit == "µs" {
			got = fmtMicros(c.Got)
		}
		fmt.Fprintf(w, "[%s] %s: %s (target %s%s)\n", mark, c.Name, got, c.Want, c.Unit)
	}
	for _, f := range rep.Profiles {
		fmt.Fprintf(w, "\nperf profile: %s\n  perf report -i %s --no-children --sort comm,sym\n", f, f)
	}
}

// writeJSON writes the report as indented JSON.
func writeJSON(w io.Writer, rep *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rep); err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	return nil
}

// sortedKeys returns m's keys in order.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
