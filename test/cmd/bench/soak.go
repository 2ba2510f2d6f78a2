package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// soakSample is one reading during a soak.
type soakSample struct {
	at                     time.Duration
	requests, errors       int64
	hostRSS, pluginRSS     int64
	hostGoroutines         int
	hostThreads, plThreads int
}

// hostGoroutines reads go_goroutines from the host's /metrics.
func hostGoroutines(t target) (int, error) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + t.chatAddr + "/metrics")
	req.Header.Set("Authorization", t.auth)
	if err := fasthttp.DoTimeout(req, resp, 5*time.Second); err != nil {
		return 0, fmt.Errorf("GET /metrics: %w", err)
	}
	if resp.StatusCode() != fasthttp.StatusOK {
		return 0, fmt.Errorf("GET /metrics: status %d", resp.StatusCode())
	}
	sc := bufio.NewScanner(bytes.NewReader(resp.Body()))
	for sc.Scan() {
		if v, ok := bytes.CutPrefix(sc.Bytes(), []byte("go_goroutines ")); ok {
			return strconv.Atoi(string(bytes.TrimSpace(v)))
		}
	}
	return 0, errors.New("GET /metrics: no go_goroutines")
}

// paced sends requests to t from conns workers at rate per second until
// stop is closed, counting successes and failures.
func paced(ctx context.Context, t target, conns int, rate float64, stop <-chan struct{}, ok, failed *atomic.Int64) {
	client := newClient(t.chatAddr, conns, false)
	defer client.CloseIdleConnections()
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	var slot atomic.Int64
	var wg sync.WaitGroup
	for range conns {
		wg.Go(func() {
			c := newChatCaller(client, t)
			defer c.release()
			for ctx.Err() == nil {
				at := start.Add(time.Duration(slot.Add(1)) * interval)
				if d := time.Until(at); d > 0 {
					select {
					case <-stop:
						return
					case <-time.After(d):
					}
				}
				select {
				case <-stop:
					return
				default:
				}
				if err := c.call(); err != nil {
					if failed.Add(1) == 1 {
						fmt.Fprintln(os.Stderr, "bench: soak: first failure:", err)
					}
					continue
				}
				ok.Add(1)
			}
		})
	}
	wg.Wait()
}

// modeTarget is the llmproxy target of the streams and soak modes (-target)
// and the PID of the plugin instance behind it: the stream instance with
// stream set, else the fast one. Without providers the targets are direct,
// bare, llmproxy and served, and the plugins fast, stream, fast_served and
// stream_served.
func modeTarget(o options, r *rig, stream bool) (target, int) {
	t, pid := 2, 0
	if o.target == "served" {
		t, pid = 3, 2
	}
	if stream {
		pid++
	}
	return r.targets[t], r.pluginPIDs[pid]
}

// runSoak is the soak mode: it measures llmproxy's peak throughput, then
// holds half of it for -soak and prints RSS and goroutines every -sample.
// After the first third of the soak (the warm-up) neither RSS nor
// goroutines may grow by more than 10 %, and no request may fail.
func runSoak(ctx context.Context, o options, r *rig, w io.Writer) error {
	gw, pluginPID := modeTarget(o, r, false)
	hostPID := r.host.Cmd.Process.Pid
	fmt.Fprintf(os.Stderr, "bench: peak throughput of %s (%d connections, %v)\n", gw.name, o.concurrency, o.duration)
	peak := saturate(ctx, gw, o.concurrency, o.duration)
	if peak.errors > 0 {
		return fmt.Errorf("peak throughput run: %d requests failed; first: %w", peak.errors, peak.firstErr)
	}
	peakRPS := float64(peak.requests) / peak.elapsed.Seconds()
	rate := peakRPS / 2
	fmt.Fprintf(w, "llmproxy soak (target %s): %.0f req/s (half of the peak %.0f) for %v, %d connections, load generator GOMAXPROCS=%d\n\n",
		gw.name, rate, peakRPS, o.soakFor, o.concurrency, o.loadprocs)
	fmt.Fprintf(w, "%8s %10s %8s %10s %12s %11s %12s %14s\n", "time", "requests", "errors", "req/s", "host RSS", "goroutines", "plugin RSS", "plugin threads")

	var ok, failed atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		paced(ctx, gw, o.concurrency, rate, stop, &ok, &failed)
	}()
	var samples []soakSample
	start := time.Now()
	tick := time.NewTicker(o.sampleEvery)
	defer tick.Stop()
	var last soakSample
	for time.Since(start) < o.soakFor && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
		s := soakSample{at: time.Since(start), requests: ok.Load(), errors: failed.Load()}
		var err error
		if s.hostRSS, _, s.hostThreads, err = memory(hostPID); err != nil {
			close(stop)
			<-done
			return err
		}
		if s.pluginRSS, _, s.plThreads, err = memory(pluginPID); err != nil {
			close(stop)
			<-done
			return err
		}
		if s.hostGoroutines, err = hostGoroutines(gw); err != nil {
			close(stop)
			<-done
			return err
		}
		rps := float64(s.requests-last.requests) / (s.at - last.at).Seconds()
		fmt.Fprintf(w, "%8s %10d %8d %10.0f %10.1fMB %11d %10.1fMB %14d\n", s.at.Round(time.Second), s.requests, s.errors, rps,
			mib(s.hostRSS), s.hostGoroutines, mib(s.pluginRSS), s.plThreads)
		samples = append(samples, s)
		last = s
	}
	close(stop)
	<-done
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("soak: %w", err)
	}
	return soakVerdict(w, samples, failed.Load())
}

// threadSteps is the growth in a plugin's OS threads after the warm-up
// that the soak accepts whatever its percentage.
const threadSteps = 2

// threadCheck names the check of the plugin's OS threads.
var threadCheck = fmt.Sprintf("thread growth after warm-up (or at most %d threads)", threadSteps)

// soakVerdict compares the last sample with the first one after the
// warm-up (the first third of the samples).
func soakVerdict(w io.Writer, samples []soakSample, failures int64) error {
	if len(samples) < 3 {
		return fmt.Errorf("soak: %d samples, want at least 3 (lengthen -soak or shorten -sample)", len(samples))
	}
	base, end := samples[len(samples)/3], samples[len(samples)-1]
	growth := func(a, b float64) float64 { return (b - a) / a * 100 }
	checks := []Check{
		{"host", "RSS growth after warm-up", "<= 10", growth(float64(base.hostRSS), float64(end.hostRSS)), "%", false},
		{"host", "goroutine growth after warm-up", "<= 10", growth(float64(base.hostGoroutines), float64(end.hostGoroutines)), "%", false},
		{"openai plugin", "RSS growth after warm-up", "<= 10", growth(float64(base.pluginRSS), float64(end.pluginRSS)), "%", false},
		{"openai plugin", threadCheck, "<= 10", growth(float64(base.plThreads), float64(end.plThreads)), "%", false},
		{"llmproxy", "failed requests", "== 0", float64(failures), "", failures == 0},
	}
	fmt.Fprintln(w)
	for i := range checks {
		c := &checks[i]
		if c.Unit == "%" {
			c.Met = c.Got <= 10
		}
		// The Go runtime keeps every OS thread it has started (one is
		// added when a goroutine blocks in a system call while the others
		// are busy), so on a plugin of seven or eight threads one more is
		// already 14 %. A leak keeps growing; a step of up to
		// threadSteps threads does not count as one.
		if c.Name == threadCheck && end.plThreads-base.plThreads <= threadSteps {
			c.Met = true
		}
		mark := "MET "
		if !c.Met {
			mark = "MISS"
		}
		fmt.Fprintf(w, "[%s] %s %s: %.1f%s (goal %s%s)\n", mark, c.Target, c.Name, c.Got, c.Unit, c.Want, c.Unit)
	}
	if failures > 0 {
		return fmt.Errorf("soak: %d requests failed", failures)
	}
	return nil
}
