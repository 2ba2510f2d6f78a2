package server

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestKeepaliveFillsSilences(t *testing.T) {
	var out bytes.Buffer
	k := startKeepalive(bufio.NewWriter(&out), 200*time.Millisecond)
	time.Sleep(450 * time.Millisecond) // two comments
	k.event([]byte("{\n\"a\": 1\n}"), true)
	for range 5 { // events closer together than the period: no comment
		time.Sleep(10 * time.Millisecond)
		k.event([]byte(`{"b":2}`), true)
	}
	k.raw(sseDone)
	k.stop()
	time.Sleep(250 * time.Millisecond) // nothing after stop
	k.mu.Lock()
	got := out.String()
	k.mu.Unlock()

	events, comments := parseSSE(got)
	if len(comments) < 1 || len(comments) > 3 {
		t.Errorf("%d comments during 450ms of silence at a 200ms period: %q", len(comments), got)
	}
	if want := []string{`{"a":1}`, `{"b":2}`, `{"b":2}`, `{"b":2}`, `{"b":2}`, `{"b":2}`, "[DONE]"}; strings.Join(events, "|") != strings.Join(want, "|") {
		t.Errorf("events %q, want %q", events, want)
	}
	if i := strings.LastIndex(got, ": keepalive"); i > strings.Index(got, `{"a":1}`) {
		t.Errorf("a comment arrived while events flowed or after the end: %q", got)
	}
}

// TestKeepaliveHoldsEventsThatAreFollowed checks that an event written
// with another one at hand stays in the buffer until a flushed write.
func TestKeepaliveHoldsEventsThatAreFollowed(t *testing.T) {
	var out bytes.Buffer
	k := startKeepalive(bufio.NewWriterSize(&out, 4096), time.Hour)
	defer k.stop()
	k.event([]byte(`{"a":1}`), false)
	k.event([]byte(`{"b":2}`), false)
	k.mu.Lock()
	held := out.Len()
	k.mu.Unlock()
	if held != 0 {
		t.Fatalf("held events were written: %q", out.String())
	}
	k.event([]byte(`{"c":3}`), true)
	k.mu.Lock()
	got := out.String()
	k.mu.Unlock()
	if events, _ := parseSSE(got); strings.Join(events, "|") != `{"a":1}|{"b":2}|{"c":3}` {
		t.Errorf("events %q after the flushed one", events)
	}
}
