// Command bench measures what llmproxy adds to a request, the workload of
// issue 9. In one run it drives the same load at these targets in front of
// zero-delay fakes:
//
//	direct     client → openaifake
//	bare       client → bareproxy (a bare fasthttp reverse proxy) → openaifake
//	chained    client → bareproxy → bareproxy → openaifake: one more
//	           process on the path doing no work, the floor of any plugin
//	           on the data path
//	llmproxy   client → bin/llmproxy → openaifake, on the forwarding plan
//	           of the openai plugin (which stays off the data path)
//	served     client → bin/llmproxy → llmproxy-provider-openai → openaifake
//	           (the same instance with forward = false)
//	anthropic, azure, bedrock, oci, vertex, watsonx
//	           client → bin/llmproxy → that provider's plugin → its fake
//	           (test/cmd/benchfake: the wire protocol and auth of the
//	           provider, so translation and signing are included)
//
// The request is a realistic 390-byte chat completion. The phases are
// latency at concurrency 1, throughput at -concurrency (32), streams of 20
// content chunks at concurrency 1 (time to first chunk, chunks per
// second) and at -concurrency (chunks per second). Every phase runs in
// -rounds rounds that interleave the targets, so that noise from other
// work on the machine falls on all of them alike, and every figure is the
// median of its rounds. The load generator runs with GOMAXPROCS
// -loadprocs (1). The table ends with each llmproxy target's ratios
// against the bare proxy and the goals of issue 9.
//
// `make bench` builds the binaries and runs it from the test module:
//
//	cd test && GOWORK=off LLMPROXY_BIN=$PWD/../bin go run ./cmd/bench [flags]
//
// Every process it starts listens on 127.0.0.1 and is stopped when the run
// ends; the run is bounded by -timeout.
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
	"strings"
	"syscall"
	"time"
)

// options are the command-line settings of one run.
type options struct {
	binDir      string
	fakeBin     string
	bareBin     string
	provFakeBin string
	providers   []string
	loadprocs   int
	requests    int
	warmup      int
	rounds      int
	concurrency int
	duration    time.Duration
	streams     int
	timeout     time.Duration
	jsonPath    string
	cpuprofile  string
	perfDir     string
	pprofDir    string
	baselineBin string
	mode        string
	chunkDelay  time.Duration
	soakFor     time.Duration
	target      string
	sampleEvery time.Duration
	pprofTarget string
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
	fs.StringVar(&o.provFakeBin, "benchfake", "", "prebuilt benchfake binary (default: build test/cmd/benchfake)")
	provs := fs.String("providers", "anthropic,azure,bedrock,oci,vertex,watsonx", "provider plugins measured beside openai, each against its fake (comma-separated; empty for none)")
	fs.IntVar(&o.loadprocs, "loadprocs", 1, "GOMAXPROCS of the load generator")
	fs.IntVar(&o.requests, "requests", 1000, "sequential non-streaming requests per target for the concurrency-1 latency")
	fs.IntVar(&o.warmup, "warmup", 200, "requests per target before any measurement")
	fs.IntVar(&o.rounds, "rounds", 5, "rounds every phase is split into, targets interleaved; each figure is the median of its rounds")
	fs.IntVar(&o.concurrency, "concurrency", 32, "concurrent connections of the throughput phases (requests and streams)")
	fs.DurationVar(&o.duration, "duration", 2*time.Second, "length of each throughput phase per target, over all rounds")
	fs.IntVar(&o.streams, "streams", 100, "sequential streamed requests per target")
	fs.DurationVar(&o.timeout, "timeout", 3*time.Minute, "bound on the whole run")
	fs.StringVar(&o.jsonPath, "json", "", "also write the results as JSON to this file (\"-\": JSON on stdout instead of the table)")
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the load generator to this file")
	fs.StringVar(&o.perfDir, "perf", "", "record `perf` CPU profiles of llmproxy and its plugin during llmproxy's throughput phase into this directory")
	fs.StringVar(&o.pprofDir, "pprof", "", "after the measurements, load -pprof-target for -duration with requests and then streams while llmproxy and its plugins take CPU and allocation profiles (package sdk/profile) into this directory")
	fs.StringVar(&o.pprofTarget, "pprof-target", "llmproxy", "target loaded while profiling: llmproxy (openai) or a provider")
	fs.StringVar(&o.baselineBin, "baseline", "", "bin directory of another llmproxy build, measured beside this one as target \"baseline\" (openai) and \"base/<provider>\" (each of -providers), for a before and after in one run")
	fs.StringVar(&o.mode, "mode", "gateway", "what to run: gateway (the table), streams (-streams slow streams at once: peak RSS and time to first chunk, bare proxy vs llmproxy) or soak (llmproxy at half its peak throughput for -soak, RSS and goroutines over time)")
	fs.DurationVar(&o.chunkDelay, "chunk-delay", 0, "pause of the streaming fake before each chunk (streams mode: 50ms unless set)")
	fs.DurationVar(&o.soakFor, "soak", 2*time.Minute, "length of the soak (soak mode)")
	fs.StringVar(&o.target, "target", "llmproxy", "llmproxy target of the streams and soak modes: llmproxy (the openai plugin's plan; the plugin only answers control calls) or served (the openai plugin on the data path of every request)")
	fs.DurationVar(&o.sampleEvery, "sample", 0, "interval between soak samples (soak mode; default a tenth of -soak, at most a minute)")
	fs.StringVar(&o.gogc, "gogc", "", "GOGC for llmproxy and its plugins (default: Go's)")
	fs.StringVar(&o.gomaxprocs, "gomaxprocs", "", "GOMAXPROCS for llmproxy and its plugins (default: Go's)")
	fs.BoolVar(&o.keepLogs, "keep", false, "keep the work directory (config, logs) after the run")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	for _, p := range strings.Split(*provs, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		if _, ok := benchProviders[p]; !ok {
			return o, fmt.Errorf("-providers: unknown provider %q (want some of %s)", p, strings.Join(sortedKeys(benchProviderNames()), ", "))
		}
		o.providers = append(o.providers, p)
	}
	switch o.mode {
	case "gateway":
	case "streams", "soak":
		// Only the openai instance is involved.
		o.providers = nil
		if o.mode == "streams" && o.chunkDelay == 0 {
			o.chunkDelay = 50 * time.Millisecond
		}
	default:
		return o, fmt.Errorf("-mode %q: want gateway, streams or soak", o.mode)
	}
	if o.sampleEvery == 0 {
		o.sampleEvery = min(o.soakFor/10, time.Minute)
	}
	if o.mode == "soak" && !timeoutSet(fs) {
		// The soak itself, the peak run and starting up.
		o.timeout = o.soakFor + o.duration + 2*time.Minute
	}
	switch {
	case o.target != "llmproxy" && o.target != "served":
		return o, fmt.Errorf("-target %q: want llmproxy or served", o.target)
	case o.soakFor <= 0 || o.sampleEvery < 0 || o.chunkDelay < 0:
		return o, errors.New("-soak must be positive, -sample and -chunk-delay not negative")
	case o.requests < 1 || o.streams < 1 || o.concurrency < 1:
		return o, errors.New("-requests, -streams and -concurrency must be at least 1")
	case o.rounds < 1 || o.rounds > o.requests || o.rounds > o.streams:
		return o, errors.New("-rounds must be between 1 and min(-requests, -streams)")
	case o.warmup < 0 || o.loadprocs < 1:
		return o, errors.New("-warmup must not be negative and -loadprocs must be at least 1")
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

// timeoutSet reports whether -timeout was given.
func timeoutSet(fs *flag.FlagSet) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == "timeout" })
	return set
}

// benchProviderNames is benchProviders as a set of names.
func benchProviderNames() map[string]string {
	m := map[string]string{}
	for k := range benchProviders {
		m[k] = k
	}
	return m
}

func run(o options) error {
	// The load generator is held to -loadprocs cores so that it does not
	// take the CPU the processes under test need.
	prev := runtime.GOMAXPROCS(o.loadprocs)
	defer runtime.GOMAXPROCS(prev)
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
	switch o.mode {
	case "streams":
		return runStreams(ctx, o, rig, os.Stdout)
	case "soak":
		return runSoak(ctx, o, rig, os.Stdout)
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
		LoadProcs:  o.loadprocs,
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
