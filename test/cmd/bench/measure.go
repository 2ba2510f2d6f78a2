package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
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
}

// Env describes the machine the run happened on.
type Env struct {
	GoVersion  string `json:"go_version"`
	OS         string `json:"os"`
	CPUs       int    `json:"cpus"`
	GOGC       string `json:"gogc,omitempty"`
	GOMAXPROCS string `json:"gomaxprocs,omitempty"`
	Time       string `json:"time"`
}

// Result is what one target measured.
type Result struct {
	Target string `json:"target"`
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
	// Stream describes the streamed answers; AddedTTFCP50US is its time
	// to first chunk minus the direct one.
	Stream         StreamSummary `json:"stream"`
	AddedTTFCP50US float64       `json:"added_ttfc_p50_us"`
}

// Ratio is one comparison of llmproxy (or the bare proxy) with a baseline.
type Ratio struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
}

// Check is one of the project's performance targets.
type Check struct {
	Name string  `json:"name"`
	Want string  `json:"want"`
	Got  float64 `json:"got"`
	Unit string  `json:"unit"`
	Met  bool    `json:"met"`
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

// measure runs the three phases against every target. A run that
// completed but saw failures returns both its report and an error.
func measure(ctx context.Context, o options, r *rig) (*Report, error) {
	ts := r.targets
	n := len(ts)
	chat := make([]*chatCaller, n)
	strm := make([]*streamCaller, n)
	body := streamBody(o.streamWords)
	for i, t := range ts {
		chat[i] = newChatCaller(newClient(t.chatAddr, 1, false), t)
		strm[i] = newStreamCaller(t, body)
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
	lat := make([][]time.Duration, n)
	err := inRounds(o.requests, o.rounds, n, func(i, count int) error {
		ds, err := sequential(ctx, chat[i], count)
		lat[i] = append(lat[i], ds...)
		if err != nil {
			return fmt.Errorf("%s latency: %w", ts[i].name, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}

	fmt.Fprintf(os.Stderr, "bench: streams (%d per target)\n", o.streams)
	srs := make([][]streamResult, n)
	err = inRounds(o.streams, o.rounds, n, func(i, count int) error {
		rs, err := streams(ctx, strm[i], count)
		srs[i] = append(srs[i], rs...)
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
		DurationS: o.duration.Seconds(), Streams: o.streams,
	}}
	loads := make([]loadResult, n)
	for i, t := range ts {
		fmt.Fprintf(os.Stderr, "bench: throughput of %s (%d connections, %v)\n", t.name, o.concurrency, o.duration)
		var waitPerf func() error
		if o.perfDir != "" && t.name == "llmproxy" {
			var out string
			var err error
			waitPerf, out, err = startPerf(ctx, o, r)
			if err != nil {
				return nil, err
			}
			rep.Profiles = append(rep.Profiles, out)
		}
		loads[i] = saturate(ctx, t, o.concurrency, o.duration)
		if waitPerf != nil {
			if err := waitPerf(); err != nil {
				return nil, err
			}
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("%s throughput: %w", t.name, err)
		}
	}

	for i, t := range ts {
		s, same := summarizeStreams(srs[i])
		if !same {
			return nil, fmt.Errorf("%s: streams carried different numbers of chunks", t.name)
		}
		res := Result{
			Target:        t.name,
			Latency:       summarize(lat[i]),
			ThroughputRPS: float64(loads[i].requests) / loads[i].elapsed.Seconds(),
			Loaded:        summarize(loads[i].latencies),
			Requests:      loads[i].requests,
			Errors:        loads[i].errors,
			Stream:        s,
		}
		rep.Results = append(rep.Results, res)
	}
	finish(rep)
	for i, res := range rep.Results {
		if res.Stream.Chunks != rep.Results[0].Stream.Chunks {
			return rep, fmt.Errorf("%s relayed %d chunks per stream, direct %d", res.Target, res.Stream.Chunks, rep.Results[0].Stream.Chunks)
		}
		if res.Errors > 0 {
			return rep, fmt.Errorf("%s: %d of %d requests failed during the throughput run; first: %w",
				res.Target, res.Errors, res.Errors+res.Requests, loads[i].firstErr)
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

// finish fills in the added latencies, the ratios and the checks; the
// results are direct, bare and llmproxy in that order.
func finish(rep *Report) {
	direct, bare, gw := &rep.Results[0], &rep.Results[1], &rep.Results[2]
	for i := 1; i < len(rep.Results); i++ {
		r := &rep.Results[i]
		r.AddedP50US = r.Latency.P50US - direct.Latency.P50US
		r.AddedP99US = r.Latency.P99US - direct.Latency.P99US
		r.AddedTTFCP50US = r.Stream.TTFCP50US - direct.Stream.TTFCP50US
	}
	rep.Ratios = []Ratio{
		{"llmproxy/bare throughput", ratio(gw.ThroughputRPS, bare.ThroughputRPS)},
		{"llmproxy/direct throughput", ratio(gw.ThroughputRPS, direct.ThroughputRPS)},
		{"bare/direct throughput", ratio(bare.ThroughputRPS, direct.ThroughputRPS)},
		{"llmproxy/bare added latency p50", ratio(gw.AddedP50US, bare.AddedP50US)},
		{"llmproxy/bare added latency p99", ratio(gw.AddedP99US, bare.AddedP99US)},
		{"llmproxy/bare stream chunks/s", ratio(gw.Stream.ChunksPerSecP50, bare.Stream.ChunksPerSecP50)},
		{"llmproxy/direct stream chunks/s", ratio(gw.Stream.ChunksPerSecP50, direct.Stream.ChunksPerSecP50)},
	}
	tp := ratio(gw.ThroughputRPS, bare.ThroughputRPS)
	rep.Checks = []Check{
		{Name: "llmproxy added latency p50 (c=1)", Want: "<= 80", Got: gw.AddedP50US, Unit: "µs", Met: gw.AddedP50US <= 80},
		{Name: "llmproxy added latency p99 (c=1)", Want: "<= 300", Got: gw.AddedP99US, Unit: "µs", Met: gw.AddedP99US <= 300},
		{Name: "llmproxy/bare throughput", Want: ">= 0.60", Got: tp, Unit: "", Met: tp >= 0.60},
	}
}

// startPerf starts `perf record` on llmproxy and its plugins for the
// length of a throughput run. It returns a func that waits for perf to
// finish, and the file perf writes.
func startPerf(ctx context.Context, o options, r *rig) (func() error, string, error) {
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
	secs := strconv.FormatFloat(o.duration.Seconds(), 'f', 3, 64)
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
