package router

import (
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/host/internal/config"
)

func routes() []config.Route {
	return []config.Route{
		{Model: "claude-3-sonnet-20240229", Aliases: []string{"sonnet"}, Targets: []config.Target{
			{Instance: "bedrock_us1", Model: "anthropic.claude-3-sonnet-20240229-v1:0"},
			{Instance: "bedrock_eu1", Model: "anthropic.claude-3-sonnet-20240229-v1:0"},
			{Instance: "anthropic_direct"},
		}},
		{Model: "claude-*", Targets: []config.Target{{Instance: "anthropic_direct"}}},
		{Model: "claude-3-*", Targets: []config.Target{{Instance: "bedrock_us1"}}},
		{Model: "gpt-4o", Strategy: "round_robin", Targets: []config.Target{{Instance: "a"}, {Instance: "b"}, {Instance: "c"}}},
		{Model: "w", Strategy: "weighted", Targets: []config.Target{{Instance: "heavy", Weight: 9}, {Instance: "light", Weight: 1}}},
	}
}

func TestLookup(t *testing.T) {
	r, err := New(routes(), nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ model, want string }{
		{"claude-3-sonnet-20240229", "claude-3-sonnet-20240229"},
		{"sonnet", "claude-3-sonnet-20240229"},
		{"claude-3-haiku", "claude-3-*"},
		{"claude-2", "claude-*"},
		{"gpt-4o", "gpt-4o"},
		{"gpt-4", ""},
		{"", ""},
	}
	for _, tt := range tests {
		rt := r.Lookup(tt.model)
		got := ""
		if rt != nil {
			got = rt.Name
		}
		if got != tt.want {
			t.Errorf("Lookup(%q) = %q, want %q", tt.model, got, tt.want)
		}
	}
}

func TestPlanFailover(t *testing.T) {
	r, _ := New(routes(), nil)
	plan := r.Lookup("sonnet").Plan("sonnet")
	def := (&config.Server{}).Resolve(&config.Route{}, &config.Target{})
	want := []Target{
		{"bedrock_us1", "anthropic.claude-3-sonnet-20240229-v1:0", 1, def, 0},
		{"bedrock_eu1", "anthropic.claude-3-sonnet-20240229-v1:0", 1, def, 0},
		{"anthropic_direct", "sonnet", 1, def, 0},
	}
	for i := range want {
		if plan[i] != want[i] {
			t.Errorf("plan[%d] = %+v, want %+v", i, plan[i], want[i])
		}
	}
}

func TestPlanRoundRobin(t *testing.T) {
	r, _ := New(routes(), nil)
	rt := r.Lookup("gpt-4o")
	var firsts []string
	for range 4 {
		p := rt.Plan("gpt-4o")
		if len(p) != 3 {
			t.Fatalf("plan has %d targets", len(p))
		}
		firsts = append(firsts, p[0].Instance)
	}
	if got := firsts[0] + firsts[1] + firsts[2] + firsts[3]; got != "abca" {
		t.Errorf("round robin firsts = %v", firsts)
	}
}

func TestPlanWeighted(t *testing.T) {
	r, _ := New(routes(), nil)
	rt := r.Lookup("w")
	counts := map[string]int{}
	for range 2000 {
		p := rt.Plan("w")
		if len(p) != 2 || p[0].Instance == p[1].Instance {
			t.Fatalf("weighted plan must hold both targets once: %+v", p)
		}
		counts[p[0].Instance]++
	}
	if counts["heavy"] < 1600 || counts["light"] < 100 {
		t.Errorf("weighted picks %v, want about 9:1", counts)
	}
}

func TestPreferHealthy(t *testing.T) {
	plan := []Target{{Instance: "a"}, {Instance: "b"}, {Instance: "c"}, {Instance: "d"}}
	tests := []struct {
		degraded map[string]bool
		want     string
	}{
		{nil, "abcd"},
		{map[string]bool{"a": true}, "bcda"},
		{map[string]bool{"a": true, "c": true}, "bdac"},
		{map[string]bool{"a": true, "b": true, "c": true, "d": true}, "abcd"},
	}
	for _, tt := range tests {
		got := ""
		for _, x := range PreferHealthy(plan, func(in string) bool { return tt.degraded[in] }) {
			got += x.Instance
		}
		if got != tt.want {
			t.Errorf("degraded %v: order %s, want %s", tt.degraded, got, tt.want)
		}
	}
	if plan[0].Instance != "a" {
		t.Error("PreferHealthy reordered its input")
	}
}

func TestTargetsCarryAttemptBounds(t *testing.T) {
	r, err := New([]config.Route{{Model: "m", Attempt: config.Attempt{ConnectTimeout: "2s"}, Targets: []config.Target{
		{Instance: "a"}, {Instance: "b", Attempt: config.Attempt{ConnectTimeout: "1s", FirstByteTimeout: "9s"}},
	}}}, &config.Server{Attempt: config.Attempt{StreamKeepalive: "5s"}})
	if err != nil {
		t.Fatal(err)
	}
	p := r.Lookup("m").Plan("m")
	if b := p[0].Bounds; b.Connect != 2*time.Second || b.FirstByte != 0 || b.StreamKeepalive != 5*time.Second {
		t.Errorf("target a bounds %+v", b)
	}
	if b := p[1].Bounds; b.Connect != time.Second || b.FirstByte != 9*time.Second || b.StreamKeepalive != 5*time.Second {
		t.Errorf("target b bounds %+v", b)
	}
}
