package main

import (
	"fmt"
	"io"
	"slices"
	"time"
)

// summary describes a sample of durations.
type summary struct {
	n                int
	median, p95, max time.Duration
}

// summarize sorts a copy of ds and reads its quantiles.
func summarize(ds []time.Duration) summary {
	if len(ds) == 0 {
		return summary{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))] }
	return summary{n: len(s), median: at(0.5), p95: at(0.95), max: s[len(s)-1]}
}

// report is the outcome of a run.
type report struct {
	docBytes int
	flows    []flowStats
	cache    *cacheStats
	memory   *memoryStats
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// print writes the report as plain text tables.
func (r *report) print(w io.Writer, o options) {
	fmt.Fprintf(w, "RAG flow: put + presign + chat with the presigned URL (%d-byte Markdown document, echo provider)\n", r.docBytes)
	fmt.Fprintf(w, "%-8s %6s %12s %12s %12s %12s %12s %12s %12s\n", "backend", "flows", "first", "median", "p95", "max", "put p50", "presign p50", "chat p50")
	for _, f := range r.flows {
		fmt.Fprintf(w, "%-8s %6d %12s %12s %12s %12s %12s %12s %12s\n", f.backend, f.total.n, ms(f.first), ms(f.total.median),
			ms(f.total.p95), ms(f.total.max), ms(f.put.median), ms(f.presign.median), ms(f.chat.median))
	}
	fmt.Fprintf(w, "target: every flow under %v\n\n", o.flowTarget)
	if c := r.cache; c != nil {
		fmt.Fprintf(w, "Document cache: chat with a %d-byte URL document, first time (miss, fetched) vs second time (hit)\n", r.docBytes)
		fmt.Fprintf(w, "%-6s %6s %12s %12s %12s\n", "", "chats", "median", "p95", "max")
		fmt.Fprintf(w, "%-6s %6d %12s %12s %12s\n", "miss", c.miss.n, ms(c.miss.median), ms(c.miss.p95), ms(c.miss.max))
		fmt.Fprintf(w, "%-6s %6d %12s %12s %12s\n", "hit", c.hit.n, ms(c.hit.median), ms(c.hit.p95), ms(c.hit.max))
		fmt.Fprintln(w)
	}
	if m := r.memory; m != nil {
		rate := func(d time.Duration) string { return fmt.Sprintf("%.0f MiB/s", float64(m.size)/(1<<20)/d.Seconds()) }
		fmt.Fprintf(w, "Memory: %s streamed through put (%v, %s) and get (%v, %s) on local, bytes compared by SHA-256\n",
			mib(m.size), m.putTime.Round(time.Millisecond), rate(m.putTime), m.getTime.Round(time.Millisecond), rate(m.getTime))
		fmt.Fprintf(w, "%-26s %16s %16s %16s\n", "process", "VmHWM before", "VmHWM after", "VmRSS after")
		fmt.Fprintf(w, "%-26s %16s %16s %16s\n", fmt.Sprintf("llmproxy (pid %d)", m.hostPID), mib(m.hostBefore.HWM), mib(m.hostAfter.HWM), mib(m.hostAfter.RSS))
		fmt.Fprintf(w, "%-26s %16s %16s %16s\n", fmt.Sprintf("storage-local (pid %d)", m.pluginPID), mib(m.pluginBefore.HWM), mib(m.pluginAfter.HWM), mib(m.pluginAfter.RSS))
	}
}
