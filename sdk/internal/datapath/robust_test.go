package datapath

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/llmproxy/llmproxy/sdk/internal/rpc"
)

func TestPanicsAreRecovered(t *testing.T) {
	_, c, _ := start(t)
	_, err := call(t, c, "panic")
	if status.Code(err) != codes.Internal || !strings.Contains(err.Error(), "handler bug") {
		t.Fatalf("a panicking call returned %v, want Internal naming the panic", err)
	}
	st, err := c.Stream(context.Background(), wrapperspb.String("panic"))
	if err != nil {
		t.Fatal(err)
	}
	var m wrapperspb.StringValue
	if err := st.Recv(&m); err != nil || m.Value != "p" {
		t.Fatalf("first chunk = %q, %v", m.Value, err)
	}
	if err := st.Recv(&m); status.Code(err) != codes.Internal || !strings.Contains(err.Error(), "stream handler bug") {
		t.Fatalf("a panicking stream ended with %v, want Internal", err)
	}
	// The server and the pooled connection survive.
	if got, err := call(t, c, "x"); err != nil || got != "x!" {
		t.Fatalf("call after panics = %q, %v", got, err)
	}
}

func TestAcceptFrames(t *testing.T) {
	tests := []struct {
		in       string
		acks     bool
		accepted bool
	}{
		{"wait", true, true},   // runs 50ms: acknowledged before the reply
		{"x", true, false},     // answered at once: no accept frame needed
		{"wait", false, false}, // the client did not ask for accept frames
	}
	for _, tt := range tests {
		s, _, _ := start(t)
		c := NewClient(s.Address, s.Token, tt.acks)
		defer c.Close()
		for range 3 { // pooled connections must not carry stale accept frames
			var n atomic.Int32
			ctx := rpc.WithAccepted(context.Background(), func() { n.Add(1) })
			var out wrapperspb.StringValue
			if err := c.Call(ctx, wrapperspb.String(tt.in), &out); err != nil || out.Value != tt.in+"!" {
				t.Fatalf("%s: call = %q, %v", tt.in, out.Value, err)
			}
			if got := n.Load() > 0; got != tt.accepted {
				t.Errorf("%s (acks %v): accepted hook ran %d times, want accepted=%v", tt.in, tt.acks, n.Load(), tt.accepted)
			}
		}
	}
}

func TestHelloIsBoundedInSizeAndTime(t *testing.T) {
	s, _, _ := start(t)
	t.Run("oversized", func(t *testing.T) {
		nc, err := net.Dial("unix", s.Address)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		var hdr [5]byte
		binary.BigEndian.PutUint32(hdr[:4], 200<<20)
		hdr[4] = kindHello
		nc.Write(hdr[:])
		nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := nc.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Fatalf("read after a 200 MiB hello header: %v, want EOF", err)
		}
	})
	t.Run("silent", func(t *testing.T) {
		const helloTimeout = 300 * time.Millisecond
		s, err := listen(echoHandler{}, helloTimeout)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		nc, err := net.Dial("unix", s.Address)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		start := time.Now()
		nc.SetReadDeadline(time.Now().Add(3 * helloTimeout))
		if _, err := nc.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Fatalf("read on a silent connection: %v, want EOF", err)
		}
		if d := time.Since(start); d > helloTimeout+time.Second {
			t.Errorf("a silent connection was dropped after %v, want about %v", d, helloTimeout)
		}
	})
}

func TestLargeFramesDoNotPinTheirBuffers(t *testing.T) {
	_, c, _ := start(t)
	got, err := call(t, c, "big")
	if err != nil || len(got) != 4<<20 {
		t.Fatalf("big call: %d bytes, %v", len(got), err)
	}
	if len(c.idle) != 1 {
		t.Fatalf("%d idle connections, want 1", len(c.idle))
	}
	if n := cap(c.idle[0].buf); n > keepBuffer {
		t.Errorf("the pooled connection keeps a %d-byte buffer after a large reply", n)
	}
}

func TestReadFrameLimit(t *testing.T) {
	var b bytes.Buffer
	w := bufio.NewWriter(&b)
	writeFrame(w, kindCall, make([]byte, 100))
	if _, _, _, err := readFrame(bufio.NewReader(bytes.NewReader(b.Bytes())), nil, 99); err == nil {
		t.Error("a 100-byte payload passed a 99-byte limit")
	}
	kind, p, _, err := readFrame(bufio.NewReader(bytes.NewReader(b.Bytes())), nil, 100)
	if err != nil || kind != kindCall || len(p) != 100 {
		t.Errorf("readFrame = %d, %d bytes, %v", kind, len(p), err)
	}
}
