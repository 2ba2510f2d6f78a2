package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseFlagsModes(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantErr    bool
		wantDelay  time.Duration
		wantSample time.Duration
		wantProvs  int
	}{
		{"gateway measures the providers", nil, false, 0, 12 * time.Second, 6},
		{"streams slow the fake down", []string{"-mode", "streams"}, false, 50 * time.Millisecond, 12 * time.Second, 0},
		{"streams with a set delay", []string{"-mode", "streams", "-chunk-delay", "5ms"}, false, 5 * time.Millisecond, 12 * time.Second, 0},
		{"long soak samples every minute", []string{"-mode", "soak", "-soak", "30m"}, false, 0, time.Minute, 0},
		{"unknown mode", []string{"-mode", "nope"}, true, 0, 0, 0},
		{"unknown provider", []string{"-providers", "openai,nope"}, true, 0, 0, 0},
		{"no providers", []string{"-providers", ""}, false, 0, 12 * time.Second, 0},
		{"negative delay", []string{"-chunk-delay", "-1s"}, true, 0, 0, 0},
		{"zero load procs", []string{"-loadprocs", "0"}, true, 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseFlags(tt.args)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseFlags(%q) error = %v, want error %v", tt.args, err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if o.chunkDelay != tt.wantDelay || o.sampleEvery != tt.wantSample || len(o.providers) != tt.wantProvs {
				t.Errorf("chunk delay %v, sample %v, providers %v; want %v, %v, %d", o.chunkDelay, o.sampleEvery, o.providers,
					tt.wantDelay, tt.wantSample, tt.wantProvs)
			}
		})
	}
	o, err := parseFlags([]string{"-mode", "soak", "-soak", "1h"})
	if err != nil || o.timeout < time.Hour {
		t.Errorf("soak of an hour has timeout %v (error %v)", o.timeout, err)
	}
}

func TestMemoryOfSelf(t *testing.T) {
	rss, peak, threads, err := memory(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if rss <= 0 || peak < rss || threads < 1 {
		t.Errorf("rss %d, peak %d, threads %d", rss, peak, threads)
	}
	if _, _, _, err := memory(-1); err == nil {
		t.Error("no error for a process that does not exist")
	}
}

func TestSoakVerdict(t *testing.T) {
	flat := func(n int, rss int64, g int) []soakSample {
		var out []soakSample
		for i := range n {
			out = append(out, soakSample{at: time.Duration(i) * time.Second, hostRSS: rss, pluginRSS: rss, hostGoroutines: g, hostThreads: 8, plThreads: 8})
		}
		return out
	}
	tests := []struct {
		name     string
		samples  []soakSample
		failures int64
		wantErr  bool
		want     []string
	}{
		{"flat", flat(6, 50<<20, 70), 0, false, []string{"[MET ] host RSS growth after warm-up: 0.0%", "[MET ] llmproxy failed requests"}},
		{"failures", flat(6, 50<<20, 70), 3, true, []string{"[MISS] llmproxy failed requests: 3.0"}},
		{"growing goroutines", func() []soakSample {
			s := flat(6, 50<<20, 70)
			s[5].hostGoroutines = 140
			return s
		}(), 0, false, []string{"[MISS] host goroutine growth after warm-up: 100.0%"}},
		{"growth during warm-up is allowed", func() []soakSample {
			s := flat(6, 50<<20, 70)
			s[0].hostRSS = 10 << 20
			return s
		}(), 0, false, []string{"[MET ] host RSS growth after warm-up: 0.0%"}},
		{"one more plugin thread", func() []soakSample {
			s := flat(6, 50<<20, 70)
			s[5].plThreads = 9
			return s
		}(), 0, false, []string{"[MET ] openai plugin thread growth after warm-up (or at most 2 threads): 12.5%"}},
		{"growing plugin threads", func() []soakSample {
			s := flat(6, 50<<20, 70)
			s[5].plThreads = 11
			return s
		}(), 0, false, []string{"[MISS] openai plugin thread growth after warm-up (or at most 2 threads): 37.5%"}},
		{"too few samples", flat(2, 1, 1), 0, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			err := soakVerdict(&b, tt.samples, tt.failures)
			if (err != nil) != tt.wantErr {
				t.Errorf("error = %v, want error %v", err, tt.wantErr)
			}
			for _, w := range tt.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("verdict lacks %q:\n%s", w, b.String())
				}
			}
		})
	}
}
