package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		out := make([]time.Duration, len(ns))
		for i, n := range ns {
			out[i] = time.Duration(n) * time.Millisecond
		}
		return out
	}
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one value", ms(7), 99, 7 * time.Millisecond},
		{"median of odd", ms(1, 2, 3, 4, 5), 50, 3 * time.Millisecond},
		{"median of even is the lower middle", ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{"p99 of 100", hundred, 99, 99 * time.Millisecond},
		{"p100 is the max", hundred, 100, 100 * time.Millisecond},
		{"p1 of 100", hundred, 1, 1 * time.Millisecond},
		{"tiny p is the min", ms(4, 5, 6), 0.01, 4 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("percentile(%v, %v) = %v, want %v", tt.sorted, tt.p, got, tt.want)
			}
		})
	}
}

func TestRatio(t *testing.T) {
	tests := []struct{ a, b, want float64 }{
		{30, 60, 0.5},
		{60, 30, 2},
		{-5, 10, -0.5},
		{10, 0, 0},
		{10, -3, 0},
	}
	for _, tt := range tests {
		if got := ratio(tt.a, tt.b); got != tt.want {
			t.Errorf("ratio(%v, %v) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestSummarizeSortsAndDescribes(t *testing.T) {
	ds := []time.Duration{40 * time.Microsecond, 10 * time.Microsecond, 30 * time.Microsecond, 20 * time.Microsecond}
	got := summarize(ds)
	want := Summary{N: 4, MeanUS: 25, P50US: 20, P90US: 40, P99US: 40, MaxUS: 40}
	if got != want {
		t.Errorf("summarize = %+v, want %+v", got, want)
	}
	if (summarize(nil) != Summary{}) {
		t.Error("summarize(nil) is not the zero Summary")
	}
}

func TestSummarizeStreams(t *testing.T) {
	us := time.Microsecond
	tests := []struct {
		name     string
		in       []streamResult
		want     StreamSummary
		wantSame bool
	}{
		{"none", nil, StreamSummary{}, true},
		{
			"three streams",
			[]streamResult{
				{firstChunk: 300 * us, total: 1000 * us, chunks: 10},
				{firstChunk: 100 * us, total: 500 * us, chunks: 10},
				{firstChunk: 200 * us, total: 2000 * us, chunks: 10},
			},
			// Per chunk: 100µs, 50µs, 200µs; the median 100µs is 10000/s.
			StreamSummary{N: 3, Chunks: 10, TTFCP50US: 200, TTFCP99US: 300, TotalP50US: 1000, ChunksPerSecP50: 10000},
			true,
		},
		{
			"a stream that lost chunks",
			[]streamResult{{firstChunk: us, total: 10 * us, chunks: 5}, {firstChunk: us, total: 10 * us, chunks: 4}},
			StreamSummary{N: 2, Chunks: 5, TTFCP50US: 1, TTFCP99US: 1, TotalP50US: 10, ChunksPerSecP50: 500000},
			false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, same := summarizeStreams(tt.in)
			if got != tt.want || same != tt.wantSame {
				t.Errorf("summarizeStreams = %+v, %v; want %+v, %v", got, same, tt.want, tt.wantSame)
			}
		})
	}
}

func TestReadEvents(t *testing.T) {
	chunk := `data: {"id":"c","object":"chat.completion.chunk","choices":[{"delta":{"content":"hi "}}]}` + "\n\n"
	tests := []struct {
		name       string
		body       string
		wantChunks int
		wantErr    string
	}{
		{"complete stream", chunk + chunk + chunk + "data: [DONE]\n\n", 3, ""},
		{"CRLF line ends", strings.ReplaceAll(chunk+chunk+"data: [DONE]\n\n", "\n", "\r\n"), 2, ""},
		{"comments and other fields are not chunks", ": keep-alive\n\nevent: x\n" + chunk + "data: [DONE]\n\n", 1, ""},
		{"last line without newline", chunk + "data: [DONE]", 1, ""},
		{"no [DONE]", chunk + chunk, 2, "without [DONE]"},
		{"empty body", "", 0, "without [DONE]"},
		{"error event", chunk + `data: {"error":{"message":"boom","type":"server_error"}}` + "\n\n", 1, "error event"},
		{"data after [DONE]", chunk + "data: [DONE]\n\n" + chunk, 1, "after [DONE]"},
		{"line longer than the buffer", "data: " + strings.Repeat("x", 300) + "\n\ndata: [DONE]\n\n", 1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			br := bufio.NewReaderSize(strings.NewReader(tt.body), 64)
			r, err := readEvents(br, start)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("readEvents: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("readEvents error %v, want one containing %q", err, tt.wantErr)
			}
			if r.chunks != tt.wantChunks {
				t.Errorf("chunks = %d, want %d", r.chunks, tt.wantChunks)
			}
			if tt.wantErr == "" && (r.firstChunk <= 0 || r.total < r.firstChunk) {
				t.Errorf("times first=%v total=%v: want 0 < first <= total", r.firstChunk, r.total)
			}
		})
	}
}

func TestInRoundsInterleavesTargets(t *testing.T) {
	type call struct{ target, count int }
	tests := []struct {
		name                    string
		total, rounds, nTargets int
		want                    []call
	}{
		{"one round", 5, 1, 3, []call{{0, 5}, {1, 5}, {2, 5}}},
		{"rotating start", 6, 3, 3, []call{{0, 2}, {1, 2}, {2, 2}, {1, 2}, {2, 2}, {0, 2}, {2, 2}, {0, 2}, {1, 2}}},
		{"remainder goes to the first rounds", 5, 2, 2, []call{{0, 3}, {1, 3}, {1, 2}, {0, 2}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []call
			err := inRounds(tt.total, tt.rounds, tt.nTargets, func(i, count int) error {
				got = append(got, call{i, count})
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("calls %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr bool
	}{
		{"defaults", nil, false},
		{"small run", []string{"-requests", "10", "-streams", "5", "-rounds", "5", "-duration", "1s"}, false},
		{"zero requests", []string{"-requests", "0"}, true},
		{"more rounds than streams", []string{"-streams", "2", "-rounds", "3"}, true},
		{"negative warm-up", []string{"-warmup", "-1"}, true},
		{"zero duration", []string{"-duration", "0s"}, true},
		{"unknown flag", []string{"-nope"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseFlags(tt.args)
			if (err != nil) != tt.wantErr {
				t.Errorf("parseFlags(%q) error = %v, want error %v", tt.args, err, tt.wantErr)
			}
		})
	}
}

// sampleReport is a finished report with round numbers.
func sampleReport() *Report {
	rep := &Report{
		Env:    Env{GoVersion: "go1.x", OS: "linux/amd64", CPUs: 2, LoadProcs: 1},
		Params: Params{Requests: 100, Rounds: 2, Concurrency: 8, DurationS: 1, Streams: 10, BodyBytes: 390},
		Results: []Result{
			{Target: "direct", Latency: Summary{P50US: 40, P99US: 100}, ThroughputRPS: 40000, StreamLoadChunksPerSec: 300000,
				Stream: StreamSummary{Chunks: 22, TTFCP50US: 200, ChunksPerSecP50: 100000}},
			{Target: "bare", Latency: Summary{P50US: 70, P99US: 200}, ThroughputRPS: 20000, StreamLoadChunksPerSec: 200000,
				Stream: StreamSummary{Chunks: 22, TTFCP50US: 300, ChunksPerSecP50: 80000}},
			{Target: "llmproxy", Proxied: true, Latency: Summary{P50US: 100, P99US: 500}, ThroughputRPS: 10000, StreamLoadChunksPerSec: 180000,
				Stream: StreamSummary{Chunks: 22, TTFCP50US: 350, ChunksPerSecP50: 40000}},
			{Target: "anthropic", Proxied: true, Latency: Summary{P50US: 200, P99US: 300}, ThroughputRPS: 16000, StreamLoadChunksPerSec: 100000,
				Stream: StreamSummary{Chunks: 23, TTFCP50US: 500, ChunksPerSecP50: 70000}},
		},
	}
	finish(rep)
	return rep
}

func TestFinish(t *testing.T) {
	rep := sampleReport()
	gw := rep.Results[2]
	if gw.AddedP50US != 60 || gw.AddedP99US != 400 || gw.AddedTTFCP50US != 150 {
		t.Errorf("llmproxy added p50/p99/ttfc = %v/%v/%v, want 60/400/150", gw.AddedP50US, gw.AddedP99US, gw.AddedTTFCP50US)
	}
	if d := rep.Results[0]; d.AddedP50US != 0 || d.AddedP99US != 0 {
		t.Errorf("direct has added latency %v/%v", d.AddedP50US, d.AddedP99US)
	}
	ratios := map[string]float64{}
	for _, r := range rep.Ratios {
		ratios[r.Name] = r.Value
	}
	want := map[string]float64{
		"bare/direct throughput":             0.5,
		"llmproxy/bare throughput":           0.5,
		"llmproxy/bare stream chunks/s c=1":  0.5,
		"llmproxy/bare stream chunks/s c=N":  0.9,
		"anthropic/bare throughput":          0.8,
		"anthropic/bare stream chunks/s c=1": 0.875,
		"anthropic/bare stream chunks/s c=N": 0.5,
	}
	for name, v := range want {
		if ratios[name] != v {
			t.Errorf("%s = %v, want %v", name, ratios[name], v)
		}
	}
	type key struct{ target, name string }
	met := map[key]bool{}
	for _, c := range rep.Checks {
		met[key{c.Target, c.Name}] = c.Met
	}
	wantMet := map[key]bool{
		// llmproxy adds 60 - 30 = 30µs beyond bare at p50, 400 - 100 =
		// 300µs at p99, 50µs to the first chunk.
		{"llmproxy", "added p50 beyond bare"}:   true,
		{"llmproxy", "added p99 beyond bare"}:   true,
		{"llmproxy", "throughput / bare"}:       false,
		{"llmproxy", "stream TTFB beyond bare"}: true,
		{"llmproxy", "chunks/s c=1 / bare"}:     false,
		{"llmproxy", "chunks/s c=N / bare"}:     true,
		// anthropic: 130µs and 100µs beyond bare, 200µs to the first chunk.
		{"anthropic", "added p50 beyond bare"}:   false,
		{"anthropic", "added p99 beyond bare"}:   true,
		{"anthropic", "throughput / bare"}:       true,
		{"anthropic", "stream TTFB beyond bare"}: false,
		{"anthropic", "chunks/s c=1 / bare"}:     true,
		{"anthropic", "chunks/s c=N / bare"}:     false,
	}
	if !reflect.DeepEqual(met, wantMet) {
		t.Errorf("checks met %v, want %v", met, wantMet)
	}
}

func TestWriteTable(t *testing.T) {
	var b bytes.Buffer
	writeTable(&b, sampleReport())
	out := b.String()
	for _, want := range []string{
		"load generator GOMAXPROCS=1",
		"390-byte request",
		"22 chunks",
		"medians of 2 interleaved rounds",
		"llmproxy/bare throughput = 0.50",
		"bare/direct throughput = 0.50",
		"[MET ] llmproxy added p50 beyond bare: 30.0µs (goal <= 100µs)",
		"[MISS] anthropic added p50 beyond bare: 130.0µs (goal <= 100µs)",
		"[MISS] llmproxy throughput / bare: 0.50 (goal >= 0.60)",
		"goals of issue 9",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	rows := map[string][]string{}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 10 {
			rows[f[0]] = f[1:]
		}
	}
	// target p50 added-p50 added-p99 req/s ÷bare TTFB-p50 TTFB-p99 chunks/s-c1 chunks/s-cN
	want := map[string][]string{
		"direct":    {"40.0µs", "-", "-", "40000", "2.00", "200.0µs", "0.0µs", "100000", "300000"},
		"llmproxy":  {"100.0µs", "60.0µs", "400.0µs", "10000", "0.50", "350.0µs", "0.0µs", "40000", "180000"},
		"anthropic": {"200.0µs", "160.0µs", "200.0µs", "16000", "0.80", "500.0µs", "0.0µs", "70000", "100000"},
	}
	for target, w := range want {
		if !reflect.DeepEqual(rows[target], w) {
			t.Errorf("row %s = %q, want %q", target, rows[target], w)
		}
	}
	// The goal grid: a row per goal, a column per proxied target.
	grid := map[string][]string{}
	for _, line := range strings.Split(out, "\n") {
		for _, goal := range []string{"added p50 beyond bare <= 100µs", "throughput / bare >= 0.60", "goals met"} {
			if strings.HasPrefix(line, goal) {
				grid[goal] = strings.Fields(line[len(goal):])
			}
		}
	}
	wantGrid := map[string][]string{
		"added p50 beyond bare <= 100µs": {"30.0µs", "ok", "130.0µs", "MISS"},
		"throughput / bare >= 0.60":      {"0.50", "MISS", "0.80", "ok"},
	}
	for goal, w := range wantGrid {
		if !reflect.DeepEqual(grid[goal], w) {
			t.Errorf("goal row %q = %q, want %q\n%s", goal, grid[goal], w, out)
		}
	}
	if len(grid["goals met"]) != 2 {
		t.Errorf("goals met row = %q, want one count per target", grid["goals met"])
	}
}

func TestHostConfigNamesEverything(t *testing.T) {
	provs := map[string]string{"anthropic": "http://127.0.0.1:3", "azure": "http://127.0.0.1:4", "bedrock": "http://127.0.0.1:5", "watsonx": "http://127.0.0.1:6", "vertex": "http://127.0.0.1:7", "oci": "http://127.0.0.1:8"}
	oci := map[string]string{"tenancy_ocid": "ocid1.tenancy.x", "user_ocid": "ocid1.user.x", "fingerprint": "aa:bb", "private_key": "PEM", "compartment_id": "ocid1.compartment.x"}
	cfg := hostConfig("127.0.0.1:1234", "/x/plugins", "http://127.0.0.1:1", "http://127.0.0.1:2", true, provs, oci, map[string]string{"GOGC": "400"})
	for _, want := range []string{
		`listen         = "127.0.0.1:1234"`,
		`plugins_dir    = "/x/plugins"`,
		`key         = "` + gatewayKey + `"`,
		`provider "fast"`, `provider "stream"`,
		`base_url = "http://127.0.0.1:1/v1"`, `base_url = "http://127.0.0.1:2/v1"`,
		`from "value" { value = "` + upstreamKey + `" }`,
		`from "value" { value = "` + awsSecret + `" }`,
		`GOGC = "400"`,
		`route "` + chatModel + `"`, `route "` + streamModel + `"`,
		`type = "anthropic"`, `base_url = "http://127.0.0.1:3"`,
		`type = "azure"`, `endpoint = "http://127.0.0.1:4"`,
		`type = "bedrock"`, `endpoint = "http://127.0.0.1:5"`, `region   = "us-east-1"`,
		`type = "oci"`, `endpoint       = "http://127.0.0.1:8"`, `compartment_id = "ocid1.compartment.x"`,
		`credential "fingerprint" {
    from "value" { value = "aa:bb" }`,
		`type = "vertex"`, `endpoint = "http://127.0.0.1:7"`,
		`type = "watsonx"`, `url        = "http://127.0.0.1:6"`, `iam_url    = "http://127.0.0.1:6"`, `project_id = "` + watsonxProject + `"`,
		`route "bedrock-bench" {
  target "bedrock" { model = "anthropic.claude-3-sonnet-20240229-v1:0" }`,
		`provider "fast_served"`, `forward  = false`,
		`route "` + servedChatModel + `" {
  target "fast_served" { model = "` + chatModel + `" }`,
	} {
		if !strings.Contains(cfg, want) {
			t.Errorf("config lacks %q:\n%s", want, cfg)
		}
	}
	bare := hostConfig("a", "b", "c", "d", false, nil, nil, nil)
	if strings.Contains(bare, "env =") {
		t.Error("config without env settings has an env block")
	}
	if strings.Contains(bare, "forward") {
		t.Error("config without served instances has one")
	}
}

func TestRequestBody(t *testing.T) {
	b := requestBody(chatModel, false)
	if len(b) != 390 {
		t.Errorf("request is %d bytes, want the issue's 390", len(b))
	}
	var req struct {
		Model    string `json:"model"`
		Stream   bool   `json:"stream"`
		Messages []struct{ Role, Content string }
	}
	if err := json.Unmarshal(requestBody(streamModel, true), &req); err != nil {
		t.Fatalf("stream request is not JSON: %v", err)
	}
	if !req.Stream || req.Model != streamModel || len(req.Messages) != 2 || req.Messages[0].Role != "system" {
		t.Errorf("stream request %+v", req)
	}
	// The OpenAI fake answers "You said: " and the question: 20 content
	// chunks, like the provider fakes.
	if n := 2 + len(strings.Fields(req.Messages[1].Content)); n != contentChunks {
		t.Errorf("answer has %d words, want %d", n, contentChunks)
	}
}

func TestMedians(t *testing.T) {
	if got := median([]float64{5, 1, 3, 2}); got != 2 {
		t.Errorf("median = %v, want the lower middle 2", got)
	}
	if got := median(nil); got != 0 {
		t.Errorf("median of nothing = %v", got)
	}
	us := time.Microsecond
	s := medianSummary([][]time.Duration{{10 * us, 20 * us, 30 * us}, {100 * us}, {1 * us, 2 * us, 3 * us}})
	if s.N != 7 || s.P50US != 20 || s.MaxUS != 30 {
		t.Errorf("medianSummary = %+v, want N 7, p50 20, max 30", s)
	}
	ss := medianStreams([]StreamSummary{{N: 2, Chunks: 22, TTFCP50US: 5, ChunksPerSecP50: 10}, {N: 3, Chunks: 22, TTFCP50US: 1, ChunksPerSecP50: 30}, {N: 1, Chunks: 22, TTFCP50US: 9, ChunksPerSecP50: 20}})
	if ss.N != 6 || ss.Chunks != 22 || ss.TTFCP50US != 5 || ss.ChunksPerSecP50 != 20 {
		t.Errorf("medianStreams = %+v", ss)
	}
}

// TestRunEndToEnd runs a tiny benchmark over the built binaries and
// checks the JSON report (every target answered, streams were relayed
// whole) and that no process it started is left running.
func TestRunEndToEnd(t *testing.T) {
	o, err := parseFlags([]string{"-requests", "20", "-warmup", "5", "-rounds", "2", "-streams", "4",
		"-concurrency", "4", "-duration", "400ms", "-timeout", "2m"})
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("LLMPROXY_BIN") == "" {
		o.binDir = filepath.Join("..", "..", "..", "bin")
	}
	if _, err := os.Stat(filepath.Join(o.binDir, "llmproxy")); err != nil {
		t.Fatalf("llmproxy binary not found in %s: run `make build` first (or set LLMPROXY_BIN)", o.binDir)
	}
	o.jsonPath = filepath.Join(t.TempDir(), "bench.json")
	// The work directory, and so every binary and config the run starts
	// from, is under tmp: a process still running from it afterwards is a
	// leak.
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	stdout := os.Stdout
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	os.Stdout = devnull
	err = run(o)
	os.Stdout = stdout
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	b, err := os.ReadFile(o.jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var rep Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, b)
	}
	names := []string{"direct", "bare", "chained", "llmproxy", "served", "anthropic", "azure", "bedrock", "oci", "vertex", "watsonx"}
	if len(rep.Results) != len(names) {
		t.Fatalf("%d results, want %d", len(rep.Results), len(names))
	}
	for i, name := range names {
		r := rep.Results[i]
		if r.Target != name {
			t.Errorf("result %d is %q, want %q", i, r.Target, name)
		}
		if r.Latency.N != 20 || r.Latency.P50US <= 0 || r.Proxied != (i >= 3) {
			t.Errorf("%s latency %+v, want 20 samples", name, r.Latency)
		}
		if r.ThroughputRPS <= 0 || r.Errors != 0 || r.StreamLoadChunksPerSec <= 0 || r.StreamLoadErrors != 0 {
			t.Errorf("%s throughput %v req/s with %d errors, %v chunks/s with %d errors",
				name, r.ThroughputRPS, r.Errors, r.StreamLoadChunksPerSec, r.StreamLoadErrors)
		}
		// 20 content chunks, plus the role and finish chunks (and a usage
		// chunk from some providers).
		if r.Stream.N != 4 || r.Stream.Chunks < 22 || r.Stream.Chunks > 24 {
			t.Errorf("%s stream %+v, want 4 streams of 22 to 24 chunks", name, r.Stream)
		}
	}
	if len(rep.Ratios) != 1+3*9 || len(rep.Checks) != 6*9 {
		t.Errorf("ratios %v, checks %v", rep.Ratios, rep.Checks)
	}
	if left := processesMentioning(t, tmp); len(left) > 0 {
		t.Errorf("processes left running after the run: %q", left)
	}
}

// processesMentioning returns the command lines of running processes
// that contain s.
func processesMentioning(t *testing.T, s string) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatalf("list processes: %v", err)
	}
	var out []string
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if cmd := strings.ReplaceAll(string(b), "\x00", " "); strings.Contains(cmd, s) {
			out = append(out, cmd)
		}
	}
	return out
}
