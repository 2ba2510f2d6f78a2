package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// memory reads the resident set size (VmRSS) and its peak over the
// process's life (VmHWM) of pid from /proc, in bytes, and its thread
// count.
func memory(pid int) (rss, peak int64, threads int, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0, 0, fmt.Errorf("read status of process %d: %w", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(value)
		if len(f) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		switch name {
		case "VmRSS":
			rss = n << 10
		case "VmHWM":
			peak = n << 10
		case "Threads":
			threads = int(n)
		}
	}
	return rss, peak, threads, nil
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// manyStreams opens n streams to t at once, each on its own connection,
// reads them to the end and returns their times to first chunk. While it
// runs it samples the RSS of pids and returns the peak of each.
func manyStreams(ctx context.Context, t target, n int, pids []int) (ttfc []time.Duration, peaks []int64, err error) {
	peaks = make([]int64, len(pids))
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			for i, pid := range pids {
				if rss, _, _, err := memory(pid); err == nil && rss > peaks[i] {
					peaks[i] = rss
				}
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		failed   atomic.Int64
		ready    sync.WaitGroup
		start    = make(chan struct{})
	)
	ttfc = make([]time.Duration, 0, n)
	ready.Add(n)
	for range n {
		wg.Go(func() {
			c := newStreamCaller(t)
			defer c.release()
			ready.Done()
			<-start
			if ctx.Err() != nil {
				return
			}
			r, err := c.call()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed.Add(1)
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			ttfc = append(ttfc, r.firstChunk)
		})
	}
	ready.Wait()
	close(start)
	wg.Wait()
	close(stop)
	<-sampled
	if err := ctx.Err(); err != nil {
		return ttfc, peaks, err
	}
	if f := failed.Load(); f > 0 {
		return ttfc, peaks, fmt.Errorf("%s: %d of %d streams failed; first: %w", t.name, f, n, firstErr)
	}
	return ttfc, peaks, nil
}

// runStreams is the streams mode: -streams slow streams at once through
// the bare proxy and then through llmproxy, with the peak RSS of each
// process and the time to first chunk, against the goals of issue 9.
func runStreams(ctx context.Context, o options, r *rig, w io.Writer) error {
	bare := r.targets[1]
	gw, pluginPID := modeTarget(o, r, true)
	hostPID := r.host.Cmd.Process.Pid
	barePID := r.bareStream.Cmd.Process.Pid

	fmt.Fprintf(os.Stderr, "bench: warm-up (%d streams per target)\n", o.warmup/10+1)
	for _, t := range []target{bare, gw} {
		c := newStreamCaller(t)
		_, err := streams(ctx, c, o.warmup/10+1)
		c.release()
		if err != nil {
			return fmt.Errorf("%s warm-up: %w", t.name, err)
		}
	}
	fmt.Fprintf(os.Stderr, "bench: %d streams at once through the bare proxy\n", o.streams)
	bareTTFC, barePeaks, err := manyStreams(ctx, bare, o.streams, []int{barePID})
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "bench: %d streams at once through llmproxy (target %s)\n", o.streams, gw.name)
	gwTTFC, gwPeaks, err := manyStreams(ctx, gw, o.streams, []int{hostPID, pluginPID})
	if err != nil {
		return err
	}
	bs, gs := summarize(bareTTFC), summarize(gwTTFC)
	fmt.Fprintf(w, "llmproxy stream capacity (target %s): %d streams at once, each %d chunks %v apart; load generator GOMAXPROCS=%d\n\n",
		gw.name, o.streams, contentChunks+2, o.chunkDelay, o.loadprocs)
	fmt.Fprintf(w, "%-22s %12s %12s %12s %12s\n", "", "peak RSS", "TTFB p50", "TTFB p99", "TTFB max")
	fmt.Fprintf(w, "%-22s %10.1fMB %12s %12s %12s\n", "bare proxy", mib(barePeaks[0]), fmtMicros(bs.P50US), fmtMicros(bs.P99US), fmtMicros(bs.MaxUS))
	fmt.Fprintf(w, "%-22s %10.1fMB %12s %12s %12s\n", "llmproxy host", mib(gwPeaks[0]), fmtMicros(gs.P50US), fmtMicros(gs.P99US), fmtMicros(gs.MaxUS))
	fmt.Fprintf(w, "%-22s %10.1fMB\n\n", "llmproxy openai plugin", mib(gwPeaks[1]))
	p99 := ratio(gs.P99US, bs.P99US)
	checks := []Check{
		{"host", "peak RSS", "<= 100", mib(gwPeaks[0]), "MB", mib(gwPeaks[0]) <= 100},
		{"openai plugin", "peak RSS", "<= 100", mib(gwPeaks[1]), "MB", mib(gwPeaks[1]) <= 100},
		{"llmproxy", "TTFB p99 / bare", "<= 1.50", p99, "", p99 <= 1.5},
	}
	for _, c := range checks {
		mark := "MET "
		if !c.Met {
			mark = "MISS"
		}
		fmt.Fprintf(w, "[%s] %s %s: %s%s (goal %s%s)\n", mark, c.Target, c.Name, fmtRatio(c.Got), c.Unit, c.Want, c.Unit)
	}
	return nil
}
