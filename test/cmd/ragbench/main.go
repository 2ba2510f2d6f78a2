// Command ragbench measures the storage and document (RAG) paths of
// llmproxy, driven over HTTP like a client, against the built binaries:
//
//   - the RAG flow: upload a document (put), presign it, and chat with the
//     presigned URL as a document part (echo provider), as wall time per
//     flow on each backend named by -backends (local and s3 by default);
//   - the document cache: a chat with a URL document fetched for the
//     first time (miss) against the same chat again (hit);
//   - peak resident memory (VmHWM) of llmproxy and of the local storage
//     plugin while a -large-mib object streams through put and get.
//
// Run it from the test module after `make build`, with the emulators'
// environment for s3 (scripts/services/versitygw.sh):
//
//	cd test && GOWORK=off LLMPROXY_BIN=$PWD/../bin go run ./cmd/ragbench [flags]
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
	"strings"
	"syscall"
	"time"

	"github.com/llmproxy/llmproxy/test/harness"
)

// options are the command-line settings of one run.
type options struct {
	binDir     string
	backends   []string
	flows      int
	cacheDocs  int
	docBytes   int
	largeMiB   int
	timeout    time.Duration
	keepWork   bool
	flowTarget time.Duration
}

func parseFlags(args []string) (options, error) {
	var o options
	var backends string
	fs := flag.NewFlagSet("ragbench", flag.ContinueOnError)
	fs.StringVar(&o.binDir, "bin", defaultBinDir(), "directory holding llmproxy and plugins/ (default $LLMPROXY_BIN or ../bin)")
	fs.StringVar(&backends, "backends", "local,s3", "storage backends of the RAG flow, comma separated ("+strings.Join(harness.StorageTypes, ", ")+")")
	fs.IntVar(&o.flows, "flows", 30, "RAG flows (put, presign, chat) per backend after one warm-up flow")
	fs.IntVar(&o.cacheDocs, "cache-docs", 30, "distinct URL documents of the cache phase, each chatted about twice")
	fs.IntVar(&o.docBytes, "doc-bytes", 64<<10, "size of the documents of the flow and cache phases")
	fs.IntVar(&o.largeMiB, "large-mib", 200, "size in MiB of the object streamed through put and get for the memory phase")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Minute, "bound on the whole run")
	fs.DurationVar(&o.flowTarget, "flow-target", 3*time.Second, "wall time one RAG flow should stay under; the run fails when the slowest flow exceeds it")
	fs.BoolVar(&o.keepWork, "keep", false, "keep the work directory (configs, logs) after the run")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	for _, b := range strings.Split(backends, ",") {
		if b = strings.TrimSpace(b); b != "" {
			o.backends = append(o.backends, b)
		}
	}
	switch {
	case o.flows < 1 || o.cacheDocs < 1:
		return o, errors.New("-flows and -cache-docs must be at least 1")
	case o.docBytes < 64 || o.docBytes > 16<<20:
		return o, errors.New("-doc-bytes must be between 64 and 16 MiB")
	case o.largeMiB < 1:
		return o, errors.New("-large-mib must be at least 1")
	}
	return o, nil
}

// defaultBinDir is $LLMPROXY_BIN, else ../bin from the test module.
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
		fmt.Fprintln(os.Stderr, "ragbench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "ragbench:", err)
		os.Exit(1)
	}
}

// run performs the three phases and prints the report.
func run(ctx context.Context, o options) error {
	bin, err := filepath.Abs(o.binDir)
	if err != nil {
		return fmt.Errorf("bin dir: %w", err)
	}
	if _, err := os.Stat(filepath.Join(bin, "llmproxy")); err != nil {
		return fmt.Errorf("llmproxy binary not found in %s: run `make build` first (or pass -bin): %w", bin, err)
	}
	work, err := os.MkdirTemp("", "ragbench-")
	if err != nil {
		return fmt.Errorf("work dir: %w", err)
	}
	if o.keepWork {
		fmt.Fprintln(os.Stderr, "ragbench: work directory", work)
	} else {
		defer os.RemoveAll(work)
	}
	docs := newDocServer()
	if err := docs.start(); err != nil {
		return err
	}
	defer docs.close()

	var rep report
	rep.docBytes = o.docBytes
	extrasDone := false
	for _, typ := range o.backends {
		extras := typ == "local" && !extrasDone
		if err := benchBackend(ctx, o, bin, work, typ, docs, true, extras, &rep); err != nil {
			return fmt.Errorf("%s: %w", typ, err)
		}
		extrasDone = extrasDone || extras
	}
	if !extrasDone {
		if err := benchBackend(ctx, o, bin, work, "local", docs, false, true, &rep); err != nil {
			return fmt.Errorf("local: %w", err)
		}
	}
	rep.print(os.Stdout, o)
	for _, f := range rep.flows {
		if f.max > o.flowTarget {
			return fmt.Errorf("the slowest RAG flow on %s took %v, over the %v target", f.backend, f.max.Round(time.Millisecond), o.flowTarget)
		}
	}
	return nil
}

// benchBackend starts a host for one backend and runs the flow phase on
// it when flows is set, and the cache and memory phases, which need the
// local backend, when extras is set.
func benchBackend(ctx context.Context, o options, bin, work, typ string, docs *docServer, flows, extras bool, rep *report) error {
	dir := filepath.Join(work, typ)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("work dir: %w", err)
	}
	b, err := harness.NewStorageBackend(typ, dir)
	if err != nil {
		return err
	}
	if err := b.CreateBucket(ctx, bucket); err != nil {
		return err
	}
	h, err := startHost(ctx, bin, dir, hostConfig(b))
	if err != nil {
		return err
	}
	defer h.stop()
	c := &client{url: h.url, typ: typ, prefix: fmt.Sprintf("ragbench-%d/", time.Now().UnixNano())}
	defer c.cleanup()

	if flows {
		fs, err := flowPhase(ctx, c, o)
		if err != nil {
			return fmt.Errorf("flow phase: %w", err)
		}
		fs.backend = typ
		rep.flows = append(rep.flows, fs)
	}
	if extras {
		cache, err := cachePhase(ctx, c, docs, o)
		if err != nil {
			return fmt.Errorf("cache phase: %w", err)
		}
		rep.cache = &cache
		mem, err := memoryPhase(ctx, c, h, o)
		if err != nil {
			return fmt.Errorf("memory phase: %w", err)
		}
		rep.memory = &mem
	}
	return nil
}
