// Command openaifake runs the fake OpenAI API of package openaifake for
// benchmarks and manual tests. It prints the server's URL on the first
// line of stdout and serves until interrupted.
//
//	openaifake -addr 127.0.0.1:0 -key sk-bench -fast
//	openaifake -addr 127.0.0.1:0 -key sk-bench -chunk-delay 50ms
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/llmproxy/llmproxy/plugins/provider-openai/openaifake"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "openaifake:", err)
		os.Exit(1)
	}
}

func run() error {
	addr := flag.String("addr", "127.0.0.1:0", "address to listen on")
	key := flag.String("key", openaifake.DefaultKey, "bearer key the server accepts")
	fast := flag.Bool("fast", false, "zero-overhead mode: answer every chat request with one precomputed reply")
	delay := flag.Duration("chunk-delay", 0, "pause before every streamed chunk and every non-streamed answer (not with -fast)")
	flag.Parse()
	if *fast && *delay > 0 {
		return errors.New("-chunk-delay does not apply to -fast")
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *addr, err)
	}
	fake := openaifake.New(openaifake.Options{Key: *key, Fast: *fast})
	if *delay > 0 {
		fake.SetScenario(openaifake.Scenario{ChunkDelay: *delay})
	}
	srv := &http.Server{
		Handler:           fake,
		ReadHeaderTimeout: 10 * time.Second,
	}
	fmt.Printf("http://%s\n", ln.Addr())

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}
