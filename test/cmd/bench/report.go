package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
)

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

// column is one column of the table: a figure of each target.
type column struct {
	head string
	// value returns the figure of r; ok false shows "-".
	value  func(rep *Report, r Result) (v float64, ok bool)
	format func(float64) string
}

func columns(rep *Report) []column {
	bare := rep.Results[1]
	notDirect := func(f func(Result) float64) func(*Report, Result) (float64, bool) {
		return func(_ *Report, r Result) (float64, bool) { return f(r), r.Target != "direct" }
	}
	all := func(f func(Result) float64) func(*Report, Result) (float64, bool) {
		return func(_ *Report, r Result) (float64, bool) { return f(r), true }
	}
	c := rep.Params.Concurrency
	return []column{
		{"p50", all(func(r Result) float64 { return r.Latency.P50US }), fmtMicros},
		{"added p50", notDirect(func(r Result) float64 { return r.AddedP50US }), fmtMicros},
		{"added p99", notDirect(func(r Result) float64 { return r.AddedP99US }), fmtMicros},
		{fmt.Sprintf("req/s c=%d", c), all(func(r Result) float64 { return r.ThroughputRPS }), fmtRate},
		{"÷ bare", all(func(r Result) float64 { return ratio(r.ThroughputRPS, bare.ThroughputRPS) }), fmtRatio},
		{"TTFB p50", all(func(r Result) float64 { return r.Stream.TTFCP50US }), fmtMicros},
		{"TTFB p99", all(func(r Result) float64 { return r.Stream.TTFCP99US }), fmtMicros},
		{"chunks/s c=1", all(func(r Result) float64 { return r.Stream.ChunksPerSecP50 }), fmtRate},
		{fmt.Sprintf("chunks/s c=%d", c), all(func(r Result) float64 { return r.StreamLoadChunksPerSec }), fmtRate},
	}
}

// writeTable prints the report as one table, a row per target as in
// issue 9, then the ratios and the checks against the goals.
func writeTable(w io.Writer, rep *Report) {
	e, p := rep.Env, rep.Params
	chunks := 0
	if len(rep.Results) > 0 {
		chunks = rep.Results[0].Stream.Chunks
	}
	fmt.Fprintf(w, "llmproxy gateway benchmark: %s %s, %d CPUs, load generator GOMAXPROCS=%d", e.GoVersion, e.OS, e.CPUs, e.LoadProcs)
	if e.GOGC != "" {
		fmt.Fprintf(w, ", GOGC=%s", e.GOGC)
	}
	if e.GOMAXPROCS != "" {
		fmt.Fprintf(w, ", GOMAXPROCS=%s", e.GOMAXPROCS)
	}
	fmt.Fprintf(w, "\n%d-byte request; %d sequential requests and %d streams of %d chunks per target; %d connections for %gs; medians of %d interleaved rounds\n\n",
		p.BodyBytes, p.Requests, p.Streams, chunks, p.Concurrency, p.DurationS, p.Rounds)
	if len(rep.Results) < 2 {
		return
	}
	cols := columns(rep)
	name := len("target")
	for _, r := range rep.Results {
		name = max(name, len([]rune(r.Target)))
	}
	fmt.Fprintf(w, "%-*s", name, "target")
	for _, c := range cols {
		fmt.Fprintf(w, " %13s", c.head)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, strings.Repeat("-", name+14*len(cols)))
	for _, r := range rep.Results {
		fmt.Fprintf(w, "%-*s", name, r.Target)
		for _, c := range cols {
			v, ok := c.value(rep, r)
			cell := "-"
			if ok {
				cell = c.format(v)
			}
			fmt.Fprintf(w, " %13s", cell)
		}
		fmt.Fprintln(w)
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
		fmt.Fprintf(w, "[%s] %s %s: %s (goal %s%s)\n", mark, c.Target, c.Name, got, c.Want, c.Unit)
	}
	writeGoals(w, rep.Checks)
	for _, f := range rep.Profiles {
		if strings.HasSuffix(f, ".data") {
			fmt.Fprintf(w, "\nperf profile: %s\n  perf report -i %s --no-children --sort comm,sym\n", f, f)
			continue
		}
		fmt.Fprintf(w, "\nprofiles: %s-{cpu,allocs-start,allocs}.pprof\n  go tool pprof -top %s-cpu.pprof\n  go tool pprof -top -sample_index=alloc_space -base %s-allocs-start.pprof %s-allocs.pprof\n", f, f, f, f)
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

// writeGoals prints the checks as one grid: a row per goal, a column per
// target, each cell the figure and whether it meets the goal.
func writeGoals(w io.Writer, checks []Check) {
	if len(checks) == 0 {
		return
	}
	var goals, targets []string
	cells := map[[2]string]string{}
	met := map[string]int{}
	for _, c := range checks {
		goal := c.Name + " " + c.Want + c.Unit
		if !slices.Contains(goals, goal) {
			goals = append(goals, goal)
		}
		if !slices.Contains(targets, c.Target) {
			targets = append(targets, c.Target)
		}
		got := fmtRatio(c.Got)
		if c.Unit == "µs" {
			got = fmtMicros(c.Got)
		}
		mark := "MISS"
		if c.Met {
			mark = "ok"
			met[c.Target]++
		}
		cells[[2]string{goal, c.Target}] = got + " " + mark
	}
	width := 0
	for _, g := range goals {
		width = max(width, len([]rune(g)))
	}
	fmt.Fprintf(w, "\ngoals of issue 9 (same-run figures against the bare proxy)\n%-*s", width, "goal")
	for _, t := range targets {
		fmt.Fprintf(w, " %15s", t)
	}
	fmt.Fprintln(w)
	for _, g := range goals {
		fmt.Fprintf(w, "%s%s", g, strings.Repeat(" ", width-len([]rune(g))))
		for _, t := range targets {
			cell := cells[[2]string{g, t}]
			if cell == "" {
				cell = "-"
			}
			fmt.Fprintf(w, " %15s", cell)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "%-*s", width, "goals met")
	for _, t := range targets {
		fmt.Fprintf(w, " %15s", fmt.Sprintf("%d/%d", met[t], len(goals)))
	}
	fmt.Fprintln(w)
	if slices.Contains(targets, "chained") {
		fmt.Fprintln(w, "(chained is not llmproxy: a second bare proxy, doing no work, in front of the first; its column\n is what one more process on the path costs, which every plugin on the data path pays too)")
	}
}
