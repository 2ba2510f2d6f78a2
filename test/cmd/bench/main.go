// Command bench measures what llmproxy adds to a request. In one run it
// drives the same load at three targets in front of a zero-delay fake
// OpenAI upstream (the openaifake binary):
//
//	direct     client → fake
//	bare       client → bareproxy (a bare fasthttp reverse proxy) → fake
//	llmproxy   client → bin/llmproxy → llmproxy-provider-openai (gRPC) → fake
//
// and prints one table: latency at concurrency 1 (and what each proxy adds
// to the direct latency at the same percentile), throughput at saturation,
// and a streamed answer of about 50 chunks (time to first chunk, chunks per
// second), with ratios against the direct and the bare-proxy baselines.
//
// `make bench` builds the binaries and runs it from the test module:
//
//	cd test && GOWORK=off LLMPROXY_BIN=$PWD/../bin go run ./cmd/bench [flags]
//
// Every process it starts listens on 127.0.0.1 and is stopped when the run
// ends; the run is bounded by -timeout. Phases interleave the targets in
// rounds so that noise from other work on the machine falls on all of them
// alike.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"
)

// options are the command-line settings of one run.
type options struct {
	binDir      string
	fakeBin     string
	bareBin     string
	requests    int
	warmup      int
	rounds      int
	concurrency int
	duration    time.Duration
	streams     int
	streamWords int
	timeout     time.Duration
	jsonPath    string
	cpuprofile  string
	perfDir     string
	gogc        string
	gomaxprocs  string
	keepLogs    bool
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.StringVar(&o.binDir, "bin", defaultBinDir(), "directory holding llmproxy and plugins/ (default $LLMPROXY_BIN or ../bin)")
	fs.StringVar(&o.fakeBin, "fake", "", "prebuilt openaifake binary (default: build plugins/provider-openai/cmd/openaifake)")
	fs.StringVar(&o.bareBin, "bareproxy", "", "prebuilt bareproxy binary (default: build test/cmd/bareproxy)")
	fs.IntVar(&o.requests, "requests", 2000, "sequential non-streaming requests per target for the concurrency-1 latency")
	fs.IntVar(&o.warmup, "warmup", 300, "requests per target before any measurement")
	fs.IntVar(&o.rounds, "rounds", 4, "rounds the latency and stream phases are split into, targets interleaved")
	fs.IntVar(&o.concurrency, "concurrency", 64, "concurrent connections of the throughput phase")
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "length of the throughput phase per target")
	fs.IntVar(&o.streams, "streams", 300, "sequential streamed requests per target")
	fs.IntVar(&o.streamWords, "stream-words", 48, "words in the streamed prompt; the answer has that many chunks plus about 3")
	fs.DurationVar(&o.timeout, "timeout", 3*time.Minute, "bound on the whole run")
	fs.StringVar(&o.jsonPath, "json", "", "also write the results as JSON to this file (\"-\": JSON on stdout instead of the table)")
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the load generator to this file")
	fs.StringVar(&o.perfDir, "perf", "", "record `perf` CPU profiles of llmproxy and its plugin during llmproxy's throughput phase into this directory")
	fs.StringVar(&o.gogc, "gogc", "", "GOGC for llmproxy and its plugins (default: Go's)")
	fs.StringVar(&o.gomaxprocs, "gomaxprocs", "", "GOMAXPROCS for llmproxy and its plugins (default: Go's)")
	fs.BoolVar(&o.keepLogs, "keep", false, "keep the work directory (config, logs) after the run")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case o.requests < 1 || o.streams < 1 || o.concurrency < 1:
		return o, errors.New("-requests, -streams and -concurrency must be at least 1")
	case o.rounds < 1 || o.rounds > o.requests || o.rounds > o.streams:
		return o, errors.New("-rounds must be between 1 and min(-requests, -streams)")
	case o.warmup < 0 || o.streamWords < 1:
		return o, errors.New("-warmup must not be negative and -stream-words must be at least 1")
	case o.duration <= 0 || o.timeout <= 0:
		return o, errors.New("-duration and -timeout must be positive")
	}
	return o, nil
}

func defaultBinDir() string {
	if d := os.Getenv("LLMPROXY_BIN"); d != "" {
		return d
	}
	return filepath.Join("..", "bin")
}

func main() {
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()

	if o.cpuprofile != "" {
		f, err := os.Create(o.cpuprofile)
		if err != nil {
			return fmt.Errorf("create CPU profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("start CPU profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}

	work, err := os.MkdirTemp("", "llmproxy-bench-")
	if err != nil {
		return fmt.Errorf("work directory: %w", err)
	}
	if o.keepLogs {
		defer fmt.Fprintln(os.Stderr, "bench: work directory kept:", work)
	} else {
		defer os.RemoveAll(work)
	}

	rig, err := startRig(ctx, o, work)
	if rig != nil {
		defer rig.stop()
	}
	if err != nil {
		return err
	}
	rep, err := measure(ctx, o, rig)
	if rep != nil {
		rep.Env = environment(o)
		if oerr := output(o, rep); oerr != nil && err == nil {
			err = oerr
		}
	}
	return err
}

// environment describes the machine and settings of the run.
func environment(o options) Env {
	return Env{
		GoVersion:  runtime.Version(),
		OS:         runtime.GOOS + "/" + runtime.GOARCH,
		CPUs:       runtime.NumCPU(),
		GOGC:       o.gogc,
		GOMAXPROCS: o.gomaxprocs,
		Time:       time.Now().UTC().Format(time.RFC3339),
	}
}

func output(o options, rep *Report) error {
	if o.jsonPath == "-" {
		return writeJSON(os.Stdout, rep)
	}
	writeTable(os.Stdout, rep)
	if o.jsonPath == "" {
		return nil
	}
	f, err := os.Create(o.jsonPath)
	if err != nil {
		return fmt.Errorf("create %s: %w", o.jsonPath, err)
	}
	if err := writeJSON(f, rep); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", o.jsonPath, err)
	}
	return f.Close()
}
