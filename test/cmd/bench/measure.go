package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Params are the settings of the run as the report shows them.
type Params struct {
	Requests    int     `json:"requests"`
	Warmup      int     `json:"warmup"`
	Rounds      int     `json:"rounds"`
	Concurrency int     `json:"concurrency"`
	DurationS   float64 `json:"duration_s"`
	Streams     int     `json:"streams"`
	BodyBytes   int     `json:"body_bytes"`
}

// Env describes the machine the run happened on.
type Env struct {
	GoVersion  string `json:"go_version"`
	OS         string `json:"os"`
	CPUs       int    `json:"cpus"`
	GOGC       string `json:"gogc,omitempty"`
	GOMAXPROCS string `json:"gomaxprocs,omitempty"`
	LoadProcs  int    `json:"load_gomaxprocs"`
	Time       string `json:"time"`
}

// Result is what one target measured. Every figure is the median of the
// figures of the rounds.
type Result struct {
	Target string `json:"target"`
	// Proxied is true for targets behind llmproxy.
	Proxied bool `json:"proxied"`
	// Latency is the concurrency-1 latency of non-streaming requests.
	Latency Summary `json:"latency_c1"`
	// AddedP50US and AddedP99US are Latency minus the direct latency at
	// the same percentile (0 for direct).
	AddedP50US float64 `json:"added_p50_us"`
	AddedP99US float64 `json:"added_p99_us"`
	// ThroughputRPS is completed requests per second at saturation.
	ThroughputRPS float64 `json:"throughput_rps"`
	// Loaded is the latency during the saturation run.
	Loaded   Summary `json:"latency_loaded"`
	Requests int     `json:"load_requests"`
	Errors   int     `json:"load_errors"`
	// Stream describes the sequential streamed answers; AddedTTFCP50US is
	// its time to first chunk minus the direct one.
	Stream         StreamSummary `json:"stream"`
	AddedTTFCP50US float64       `json:"added_ttfc_p50_us"`
	// StreamLoadChunksPerSec is chunks per second over all streams with
	// Concurrency streams in flight.
	StreamLoadChunksPerSec float64 `json:"stream_load_chunks_per_sec"`
	StreamLoadErrors       int     `json:"stream_load_errors"`
}

// Ratio is one comparison of a target with a baseline.
type Ratio struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
}

// Check is one of the project's performance goals for one target.
type Check struct {
	Target string  `json:"target"`
	Name   string  `json:"name"`
	Want   string  `json:"want"`
	Got    float64 `json:"got"`
	Unit   string  `json:"unit"`
	Met    bool    `json:"met"`
}

// Report is everything one run measured.
type Report struct {
	Env     Env      `json:"env"`
	Params  Params   `json:"params"`
	Results []Result `json:"results"`
	Ratios  []Ratio  `json:"ratios"`
	Checks  []Check  `json:"checks"`
	// Profiles lists the files a -perf run recorded.
	Profiles []string `json:"profiles,omitempty"`
}

// measure runs the four phases against every target, each in rounds
// that interleave the targets. A run that completed but saw failures
// returns both its report and an error.
func measure(ctx context.Context, o options, r *rig) (*Report, error) {
	ts := r.targets
	n := len(ts)
	chat := make([]*chatCaller, n)
	strm := make([]*streamCaller, n)
	for i, t := range ts {
		chat[i] = newChatCaller(newClient(t.chatAddr, 1, false), t)
		strm[i] = newStreamCaller(t)
	}
	defer func() {
		for i := range ts {
			chat[i].client.CloseIdleConnections()
			chat[i].release()
			strm[i].release()
		}
	}()

	fmt.Fprintf(os.Stderr, "bench: warm-up (%d requests, %d streams per target)\n", o.warmup, o.warmup/10+1)
	for i, t := range ts {
		if _, err := sequential(ctx, chat[i], o.warmup); err != nil {
			return nil, fmt.Errorf("%s warm-up: %w", t.name, err)
		}
		if _, err := streams(ctx, strm[i], o.warmup/10+1); err != nil {
			return nil, fmt.Errorf("%s stream warm-up: %w", t.name, err)
		}
	}

	fmt.Fprintf(os.Stderr, "bench: latency at concurrency 1 (%d requests per target)\n", o.requests)
	lat := make([][][]time.Duration, n)
	err := inRounds(o.requests, o.rounds, n, func(i, count int) error {
		ds, err := sequential(ctx, chat[i], count)
		lat[i] = append(lat[i], ds)
		if err != nil {
			return fmt.Errorf("%s latency: %w", ts[i].name, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}

	fmt.Fprintf(os.Stderr, "bench: streams at concurrency 1 (%d per target)\n", o.streams)
	srs := make([][][]streamResult, n)
	err = inRounds(o.streams, o.rounds, n, func(i, count int) error {
		rs, err := streams(ctx, strm[i], count)
		srs[i] = append(srs[i], rs)
		if err != nil {
			return fmt.Errorf("%s stream: %w", ts[i].name, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}

	rep := &Report{Params: Params{
		Requests: o.requests, Warmup: o.warmup, Rounds: o.rounds, Concurrency: o.concurrency,
		DurationS: o.duration.Seconds(), Streams: o.streams, BodyBytes: len(ts[0].chatBody),
	}}
	slice := o.duration / time.Duration(o.rounds)
	fmt.Fprintf(os.Stderr, "bench: throughput (%d connections, %d rounds of %v per target)\n", o.concurrency, o.rounds, slice)
	loads := make([][]loadResult, n)
	for round := range o.rounds {
		for k := range n {
			i := (round + k) % n
			var waitPerf func() error
			if o.perfDir != "" && ts[i].name == "llmproxy" && round == o.rounds/2 {
				var out string
				waitPerf, out, err = startPerf(ctx, o, r, slice)
				if err != nil {
					return nil, err
				}
				rep.Profiles = append(rep.Profiles, out)
			}
			loads[i] = append(loads[i], saturate(ctx, ts[i], o.concurrency, slice))
			if waitPerf != nil {
				if err := waitPerf(); err != nil {
					return nil, err
				}
			}
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("%s throughput: %w", ts[i].name, err)
			}
		}
	}

	fmt.Fprintf(os.Stderr, "bench: stream throughput (%d streams in flight, %d rounds of %v per target)\n", o.concurrency, o.rounds, slice)
	sloads := make([][]streamLoad, n)
	for round := range o.rounds {
		for k := range n {
			i := (round + k) % n
			sloads[i] = append(sloads[i], saturateStreams(ctx, ts[i], o.concurrency, slice))
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("%s stream throughput: %w", ts[i].name, err)
			}
		}
	}

	if o.pprofDir != "" {
		files, err := profileRun(ctx, o, r)
		if err != nil {
			return nil, err
		}
		rep.Profiles = append(rep.Profiles, files...)
	}

	for i, t := range ts {
		var ss []StreamSummary
		for _, rs := range srs[i] {
			s, same := summarizeStreams(rs)
			if !same {
				return nil, fmt.Errorf("%s: streams carried different numbers of chunks", t.name)
			}
			ss = append(ss, s)
		}
		res := Result{
			Target:  t.name,
			Proxied: t.proxied,
			Latency: medianSummary(lat[i]),
			Stream:  medianStreams(ss),
		}
		var rps, cps []float64
		var loaded [][]time.Duration
		for _, l := range loads[i] {
			rps = append(rps, float64(l.requests)/l.elapsed.Seconds())
			loaded = append(loaded, l.latencies)
			res.Requests += l.requests
			res.Errors += l.errors
		}
		for _, l := range sloads[i] {
			cps = append(cps, float64(l.chunks)/l.elapsed.Seconds())
			res.StreamLoadErrors += l.errors
		}
		res.ThroughputRPS = median(rps)
		res.Loaded = medianSummary(loaded)
		res.StreamLoadChunksPerSec = median(cps)
		rep.Results = append(rep.Results, res)
	}
	finish(rep)
	for i, res := range rep.Results {
		if i < 3 && res.Stream.Chunks != rep.Results[0].Stream.Chunks {
			return rep, fmt.Errorf("%s relayed %d chunks per stream, direct %d", res.Target, res.Stream.Chunks, rep.Results[0].Stream.Chunks)
		}
		if res.Stream.Chunks < contentChunks {
			return rep, fmt.Errorf("%s relayed %d chunks per stream, want at least %d", res.Target, res.Stream.Chunks, contentChunks)
		}
		if res.Errors > 0 {
			var first error
			for _, l := range loads[i] {
				if first = l.firstErr; first != nil {
					break
				}
			}
			return rep, fmt.Errorf("%s: %d of %d requests failed during the throughput run; first: %w",
				res.Target, res.Errors, res.Errors+res.Requests, first)
		}
		if res.StreamLoadErrors > 0 {
			var first error
			for _, l := range sloads[i] {
				if first = l.firstErr; first != nil {
					break
				}
			}
			return rep, fmt.Errorf("%s: %d streams failed during the stream throughput run; first: %w", res.Target, res.StreamLoadErrors, first)
		}
	}
	return rep, nil
}

// inRounds splits total iterations per target into rounds; each round
// runs every target once, starting with a different one each time, so
// slow drift on the machine is shared out. fn runs count iterations on
// target i.
func inRounds(total, rounds, targets int, fn func(i, count int) error) error {
	for round := range rounds {
		count := total / rounds
		if round < total%rounds {
			count++
		}
		for k := range targets {
			if err := fn((round+k)%targets, count); err != nil {
				return err
			}
		}
	}
	return nil
}

// finish fills in the added latencies, the ratios and the checks. The
// results start with direct and bare; every target after them (chained,
// for reference, and the llmproxy targets) is checked against the goals,
// which are relative to the bare proxy measured in the same run.
func finish(rep *Report) {
	direct, bare := &rep.Results[0], &rep.Results[1]
	for i := 1; i < len(rep.Results); i++ {
		r := &rep.Results[i]
		r.AddedP50US = r.Latency.P50US - direct.Latency.P50US
		r.AddedP99US = r.Latency.P99US - direct.Latency.P99US
		r.AddedTTFCP50US = r.Stream.TTFCP50US - direct.Stream.TTFCP50US
	}
	rep.Ratios = []Ratio{{"bare/direct throughput", ratio(bare.ThroughputRPS, direct.ThroughputRPS)}}
	rep.Checks = nil
	for i := 2; i < len(rep.Results); i++ {
		g := &rep.Results[i]
		tp := ratio(g.ThroughputRPS, bare.ThroughputRPS)
		c1 := ratio(g.Stream.ChunksPerSecP50, bare.Stream.ChunksPerSecP50)
		cN := ratio(g.StreamLoadChunksPerSec, bare.StreamLoadChunksPerSec)
		rep.Ratios = append(rep.Ratios,
			Ratio{g.Target + "/bare throughput", tp},
			Ratio{g.Target + "/bare stream chunks/s c=1", c1},
			Ratio{g.Target + "/bare stream chunks/s c=N", cN},
		)
		p50 := g.AddedP50US - bare.AddedP50US
		p99 := g.AddedP99US - bare.AddedP99US
		ttfb := g.Stream.TTFCP50US - bare.Stream.TTFCP50US
		rep.Checks = append(rep.Checks,
			Check{g.Target, "added p50 beyond bare", "<= 100", p50, "µs", p50 <= 100},
			Check{g.Target, "added p99 beyond bare", "<= 300", p99, "µs", p99 <= 300},
			Check{g.Target, "throughput / bare", ">= 0.60", tp, "", tp >= 0.6},
			Check{g.Target, "stream TTFB beyond bare", "<= 100", ttfb, "µs", ttfb <= 100},
			Check{g.Target, "chunks/s c=1 / bare", ">= 0.80", c1, "", c1 >= 0.8},
			Check{g.Target, "chunks/s c=N / bare", ">= 0.80", cN, "", cN >= 0.8},
		)
	}
}

// startPerf starts `perf record` on llmproxy and its plugins for the
// length of a throughput run. It returns a func that waits for perf to
// finish, and the file perf writes.
func startPerf(ctx context.Context, o options, r *rig, d time.Duration) (func() error, string, error) {
	if err := os.MkdirAll(o.perfDir, 0o755); err != nil {
		return nil, "", fmt.Errorf("perf directory: %w", err)
	}
	pids := []string{strconv.Itoa(r.host.Cmd.Process.Pid)}
	for _, p := range r.pluginPIDs {
		pids = append(pids, strconv.Itoa(p))
	}
	out, err := filepath.Abs(filepath.Join(o.perfDir, "llmproxy.perf.data"))
	if err != nil {
		return nil, "", fmt.Errorf("perf output: %w", err)
	}
	secs := strconv.FormatFloat(d.Seconds(), 'f', 3, 64)
	cmd := exec.CommandContext(ctx, "perf", "record", "-q", "-F", "997", "-g", "-o", out,
		"-p", strings.Join(pids, ","), "--", "sleep", secs)
	logf, err := os.Create(filepath.Join(o.perfDir, "perf-record.log"))
	if err != nil {
		return nil, "", fmt.Errorf("perf log: %w", err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, "", fmt.Errorf("start perf (is it installed?): %w", err)
	}
	wait := func() error {
		defer logf.Close()
		if err := cmd.Wait(); err != nil {
			return fmt.Errorf("perf record (see %s): %w", logf.Name(), err)
		}
		return nil
	}
	// perf needs a moment to attach before the load starts.
	time.Sleep(200 * time.Millisecond)
	return wait, out, nil
}

// profileRun loads the target named by -pprof-target for -duration with
// requests and then for -duration with streams, while llmproxy and its
// plugins profile themselves (sdk/profile: SIGUSR2 starts, the next one
// stops). It returns the profiles written.
func profileRun(ctx context.Context, o options, r *rig) ([]string, error) {
	var t *target
	for i := range r.targets {
		if r.targets[i].name == o.pprofTarget && r.targets[i].proxied {
			t = &r.targets[i]
		}
	}
	if t == nil {
		return nil, fmt.Errorf("-pprof-target %q is not an llmproxy target of this run", o.pprofTarget)
	}
	pids := append([]int{r.host.Cmd.Process.Pid}, r.pluginPIDs...)
	signal := func() error {
		for _, pid := range pids {
			if err := syscall.Kill(pid, syscall.SIGUSR2); err != nil {
				return fmt.Errorf("signal %d: %w", pid, err)
			}
		}
		return nil
	}
	fmt.Fprintf(os.Stderr, "bench: profiling %s (%v of requests, %v of streams, %d in flight)\n", t.name, o.duration, o.duration, o.concurrency)
	if err := signal(); err != nil {
		return nil, err
	}
	// Give every process a moment to start its CPU profile.
	time.Sleep(100 * time.Millisecond)
	l := saturate(ctx, *t, o.concurrency, o.duration)
	sl := saturateStreams(ctx, *t, o.concurrency, o.duration)
	if err := signal(); err != nil {
		return nil, err
	}
	if l.errors > 0 || sl.errors > 0 {
		return nil, fmt.Errorf("profiling %s: %d requests and %d streams failed", t.name, l.errors, sl.errors)
	}
	dir, _ := filepath.Abs(o.pprofDir)
	var files []string
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range pids {
		for {
			m, _ := filepath.Glob(filepath.Join(dir, fmt.Sprintf("*-%d-allocs.pprof", pid)))
			if len(m) == 1 {
				files = append(files, strings.TrimSuffix(m[0], "-allocs.pprof"))
				break
			}
			if time.Now().After(deadline) {
				return files, fmt.Errorf("process %d wrote no profile into %s (see its log)", pid, dir)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return files, nil
}
