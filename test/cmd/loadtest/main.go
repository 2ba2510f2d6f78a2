// Command loadtest drives llmproxy at a fixed arrival rate and checks that
// it keeps up. It starts a fake OpenAI upstream in process (every answer
// delayed by -latency), starts bin/llmproxy in front of it with one openai
// instance, and sends -rate requests per second for -duration, a mix of
// JSON and streamed chat completions (-stream-share). The schedule is
// open-loop: a request is sent when it is due whether or not earlier ones
// have been answered, so a slow gateway shows up as latency, not as a
// lower offered rate.
//
// It prints the achieved rate, latency percentiles by kind, errors, and
// the resident memory of the host and its plugin process before and
// after, and exits 1 when the error rate passes -max-errors or the
// achieved rate falls short of the target by more than 1 %.
//
//	make loadtest                       # 1,000 req/s for 60 s
//	cd test && GOWORK=off LLMPROXY_BIN=$PWD/../bin go run ./cmd/loadtest -rate 2000 -duration 30s
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/llmproxy/llmproxy/plugins/provider-openai/openaifake"
	"github.com/llmproxy/llmproxy/test/harness"
)

const (
	upstreamKey = "sk-load-upstream"
	gatewayKey  = "sk-load-gateway"
	model       = "gpt-4o"
)

// options are the command-line settings.
type options struct {
	binDir      string
	rate        int
	duration    time.Duration
	warmup      time.Duration
	latency     time.Duration
	streamShare float64
	maxErrors   float64
	maxInFlight int
	jsonPath    string
}

func main() {
	var o options
	flag.StringVar(&o.binDir, "bin", envOr("LLMPROXY_BIN", "../bin"), "directory with llmproxy and plugins/")
	flag.IntVar(&o.rate, "rate", 1000, "requests per second")
	flag.DurationVar(&o.duration, "duration", 60*time.Second, "how long to measure")
	flag.DurationVar(&o.warmup, "warmup", 3*time.Second, "load before the measurement, not counted")
	flag.DurationVar(&o.latency, "latency", 20*time.Millisecond, "the upstream's delay before every answer")
	flag.Float64Var(&o.streamShare, "stream-share", 0.3, "share of streamed requests")
	flag.Float64Var(&o.maxErrors, "max-errors", 0.001, "highest error rate that passes")
	flag.IntVar(&o.maxInFlight, "max-in-flight", 4000, "requests in flight beyond which a due request counts as failed")
	flag.StringVar(&o.jsonPath, "json", "", "also write the report as JSON to this file")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(2)
	}
	rep.print(os.Stdout)
	if o.jsonPath != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(o.jsonPath, b, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "loadtest:", err)
		}
	}
	if msg := rep.verdict(o); msg != "" {
		fmt.Println("FAIL:", msg)
		os.Exit(1)
	}
	fmt.Println("PASS")
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// startUpstream serves the fake OpenAI API on a free port, every answer
// after delay.
func startUpstream(delay time.Duration) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	fake := openaifake.New(openaifake.Options{Key: upstreamKey, Fast: true})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return
		}
		fake.ServeHTTP(w, r)
	}), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return "http://" + ln.Addr().String(), func() { srv.Close() }, nil
}

// hostConfig is llmproxy's config: one openai instance in front of the
// fake and a route to it.
func hostConfig(listen, pluginsDir, upstream string) string {
	return fmt.Sprintf(`server {
  listen         = %q
  plugins_dir    = %q
  max_body_bytes = 1048576
}
logging {
  level = "warn"
}
api_key "load" {
  key    = %q
  models = ["*"]
  admin  = true
}
provider "upstream" {
  type = "openai"
  credential "api_key" {
    from "value" { value = %q }
  }
  config {
    base_url = %q
  }
}
route %q {
  target "upstream" {}
}
`, listen, pluginsDir, gatewayKey, upstreamKey, upstream+"/v1", model)
}

// result is one request's outcome.
type result struct {
	stream  bool
	latency time.Duration
	err     string
}

// Percentiles of one kind of request, in milliseconds.
type Percentiles struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p99_9_ms"`
	Max   float64 `json:"max_ms"`
}

// Report is the outcome of a run.
type Report struct {
	TargetRate   int                `json:"target_rate"`
	AchievedRate float64            `json:"achieved_rate"`
	Duration     string             `json:"duration"`
	Latency      string             `json:"upstream_latency"`
	Requests     int                `json:"requests"`
	Errors       int                `json:"errors"`
	ErrorRate    float64            `json:"error_rate"`
	ErrorKinds   map[string]int     `json:"error_kinds,omitempty"`
	All          Percentiles        `json:"all"`
	JSON         Percentiles        `json:"json"`
	Stream       Percentiles        `json:"stream"`
	RSSBefore    map[string]float64 `json:"rss_mib_before"`
	RSSAfter     map[string]float64 `json:"rss_mib_after"`
}

func (r *Report) print(w *os.File) {
	fmt.Fprintf(w, "llmproxy load test: %d req/s offered for %s, upstream latency %s, %d%% streamed\n",
		r.TargetRate, r.Duration, r.Latency, int(float64(r.Stream.Count)*100/float64(max(r.Requests, 1))+0.5))
	fmt.Fprintf(w, "achieved %.1f req/s, %d requests, %d errors (%.4f%%)\n", r.AchievedRate, r.Requests, r.Errors, r.ErrorRate*100)
	for k, n := range r.ErrorKinds {
		fmt.Fprintf(w, "  error %-40s %d\n", k, n)
	}
	fmt.Fprintf(w, "%-8s %8s %9s %9s %9s %9s %9s\n", "kind", "count", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms")
	for _, x := range []struct {
		name string
		p    Percentiles
	}{{"all", r.All}, {"json", r.JSON}, {"stream", r.Stream}} {
		fmt.Fprintf(w, "%-8s %8d %9.2f %9.2f %9.2f %9.2f %9.2f\n", x.name, x.p.Count, x.p.P50, x.p.P90, x.p.P99, x.p.P999, x.p.Max)
	}
	names := make([]string, 0, len(r.RSSBefore))
	for n := range r.RSSBefore {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "RSS %-20s %7.1f MiB before, %7.1f MiB after\n", n, r.RSSBefore[n], r.RSSAfter[n])
	}
}

// verdict says why the run failed, or "".
func (r *Report) verdict(o options) string {
	if r.ErrorRate > o.maxErrors {
		return fmt.Sprintf("error rate %.4f%% above %.4f%%", r.ErrorRate*100, o.maxErrors*100)
	}
	if r.AchievedRate < 0.99*float64(o.rate) {
		return fmt.Sprintf("achieved %.1f req/s of %d", r.AchievedRate, o.rate)
	}
	return ""
}

func run(ctx context.Context, o options) (*Report, error) {
	bin, err := filepath.Abs(o.binDir)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(bin, "llmproxy")); err != nil {
		return nil, fmt.Errorf("llmproxy not found in %s: run `make build` first: %w", bin, err)
	}
	upstream, stopUpstream, err := startUpstream(o.latency)
	if err != nil {
		return nil, err
	}
	defer stopUpstream()
	work, err := os.MkdirTemp("", "llmp-load")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	listen, err := harness.FreeAddress()
	if err != nil {
		return nil, err
	}
	cfg := filepath.Join(work, "llmproxy.hcl")
	if err := os.WriteFile(cfg, []byte(hostConfig(listen, filepath.Join(bin, "plugins"), upstream)), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(filepath.Join(bin, "llmproxy"), "-config", cfg)
	cmd.Env = append(os.Environ(), "TMPDIR="+work)
	host, _, err := harness.Launch(ctx, "llmproxy", filepath.Join(work, "llmproxy.log"), cmd, false, 30*time.Second)
	if err != nil {
		return nil, err
	}
	defer host.Stop(10 * time.Second)
	url := "http://" + listen
	st, err := harness.WaitInstances(ctx, url, []string{"upstream"}, host, 30*time.Second, gatewayKey)
	if err != nil {
		return nil, fmt.Errorf("%w\n%s", err, host.LogTail())
	}
	pids := map[string]int{"host": cmd.Process.Pid, "plugin provider-openai": st["upstream"].PID}

	client := &fasthttp.HostClient{
		Addr:                     listen,
		MaxConns:                 o.maxInFlight,
		MaxIdleConnDuration:      time.Minute,
		ReadTimeout:              30 * time.Second,
		WriteTimeout:             30 * time.Second,
		NoDefaultUserAgentHeader: true,
		MaxConnWaitTimeout:       30 * time.Second,
	}
	if o.warmup > 0 {
		load(ctx, client, o, o.warmup)
	}
	rep := &Report{TargetRate: o.rate, Duration: o.duration.String(), Latency: o.latency.String(),
		RSSBefore: rss(pids), ErrorKinds: map[string]int{}}
	start := time.Now()
	results := load(ctx, client, o, o.duration)
	elapsed := time.Since(start)
	rep.RSSAfter = rss(pids)
	if ctx.Err() != nil {
		return nil, errors.New("interrupted")
	}
	var all, js, sm []time.Duration
	for _, r := range results {
		if r.err != "" {
			rep.Errors++
			rep.ErrorKinds[r.err]++
			continue
		}
		all = append(all, r.latency)
		if r.stream {
			sm = append(sm, r.latency)
		} else {
			js = append(js, r.latency)
		}
	}
	rep.Requests = len(results)
	// Requests are due over o.duration; the rate counts those answered by
	// the time the last one was.
	rep.AchievedRate = float64(len(results)-rep.Errors) / elapsed.Seconds()
	if rep.AchievedRate > float64(o.rate) {
		rep.AchievedRate = float64(len(results)-rep.Errors) / o.duration.Seconds()
	}
	rep.ErrorRate = float64(rep.Errors) / float64(max(len(results), 1))
	rep.All, rep.JSON, rep.Stream = percentiles(all), percentiles(js), percentiles(sm)
	return rep, nil
}

// load sends o.rate requests per second for d, open loop, and returns
// every outcome once all have been answered.
func load(ctx context.Context, client *fasthttp.HostClient, o options, d time.Duration) []result {
	total := int(float64(o.rate) * d.Seconds())
	results := make([]result, total)
	var (
		wg       sync.WaitGroup
		inFlight atomic.Int64
	)
	jsonBody := []byte(`{"model":"` + model + `","messages":[{"role":"user","content":"Say hello."}]}`)
	streamBody := []byte(`{"model":"` + model + `","stream":true,"messages":[{"role":"user","content":"Say hello."}]}`)
	start := time.Now()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	sent := 0
	for sent < total && ctx.Err() == nil {
		<-tick.C
		due := int(float64(time.Since(start)) / float64(time.Second) * float64(o.rate))
		if due > total {
			due = total
		}
		for ; sent < due; sent++ {
			i := sent
			// Request i streams when it takes the share of streams
			// up to the next whole number.
			stream := int(float64(i+1)*o.streamShare) > int(float64(i)*o.streamShare)
			if inFlight.Load() >= int64(o.maxInFlight) {
				results[i] = result{stream: stream, err: "too many requests in flight"}
				continue
			}
			inFlight.Add(1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer inFlight.Add(-1)
				body := jsonBody
				if stream {
					body = streamBody
				}
				results[i] = send(client, body, stream)
			}()
		}
	}
	wg.Wait()
	return results[:sent]
}

var (
	completionMarker = []byte(`"chat.completion"`)
	doneMarker       = []byte("data: [DONE]")
	errorMarker      = []byte(`"error"`)
)

// send sends one chat request and checks its answer.
func send(client *fasthttp.HostClient, body []byte, stream bool) result {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + client.Addr + "/v1/chat/completions")
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	req.Header.Set("Authorization", "Bearer "+gatewayKey)
	req.SetBody(body)
	t := time.Now()
	err := client.Do(req, resp)
	r := result{stream: stream, latency: time.Since(t)}
	switch {
	case err != nil:
		r.err = "transport: " + err.Error()
	case resp.StatusCode() != http.StatusOK:
		r.err = "status " + strconv.Itoa(resp.StatusCode())
	case stream && (!bytes.Contains(resp.Body(), doneMarker) || bytes.Contains(resp.Body(), errorMarker)):
		r.err = "stream not complete"
	case !stream && !bytes.Contains(resp.Body(), completionMarker):
		r.err = "not a chat completion"
	}
	return r
}

func percentiles(ds []time.Duration) Percentiles {
	if len(ds) == 0 {
		return Percentiles{}
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	at := func(p float64) float64 {
		i := int(p * float64(len(ds)-1))
		return float64(ds[i]) / float64(time.Millisecond)
	}
	return Percentiles{Count: len(ds), P50: at(0.5), P90: at(0.9), P99: at(0.99), P999: at(0.999),
		Max: float64(ds[len(ds)-1]) / float64(time.Millisecond)}
}

// rss reads the resident memory of each process, in MiB.
func rss(pids map[string]int) map[string]float64 {
	out := map[string]float64{}
	for name, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
				out[name] = kb / 1024
			}
		}
	}
	return out
}
