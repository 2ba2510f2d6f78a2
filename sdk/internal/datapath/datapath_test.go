package datapath

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// echoHandler answers "x" with "x!", streams each letter, fails on "fail"
// and blocks on "slow" until cancelled.
type echoHandler struct {
	cancelled chan struct{}
}

func (h echoHandler) Call(ctx context.Context, payload []byte) (proto.Message, error) {
	var in wrapperspb.StringValue
	if err := proto.Unmarshal(payload, &in); err != nil {
		return nil, err
	}
	switch in.Value {
	case "fail":
		return nil, status.Error(codes.ResourceExhausted, "slow down")
	case "slow":
		<-ctx.Done()
		close(h.cancelled)
		return nil, status.Error(codes.Canceled, "cancelled")
	case "panic":
		panic("handler bug")
	case "wait":
		time.Sleep(50 * time.Millisecond)
	case "big":
		return wrapperspb.String(strings.Repeat("x", 4<<20)), nil
	}
	return wrapperspb.String(in.Value + "!"), nil
}

func (h echoHandler) Stream(ctx context.Context, payload []byte, send func(proto.Message, bool) error) error {
	var in wrapperspb.StringValue
	if err := proto.Unmarshal(payload, &in); err != nil {
		return err
	}
	if in.Value == "panic" {
		send(wrapperspb.String("p"), false)
		panic("stream handler bug")
	}
	if in.Value == "slow" {
		for ctx.Err() == nil {
			if err := send(wrapperspb.String("."), false); err != nil {
				break
			}
			time.Sleep(time.Millisecond)
		}
		close(h.cancelled)
		return ctx.Err()
	}
	// "held:..." sends every message with more set, so that all of them
	// wait in the write buffer for the end frame; "batch:..." sets more on
	// all but the last.
	v, held := strings.CutPrefix(in.Value, "held:")
	v, batch := strings.CutPrefix(v, "batch:")
	rs := []rune(v)
	for i, r := range rs {
		more := held || (batch && i < len(rs)-1)
		if err := send(wrapperspb.String(string(r)), more); err != nil {
			return err
		}
	}
	if in.Value == "ab-fail" {
		return status.Error(codes.Unavailable, "upstream went away")
	}
	return nil
}

func start(t *testing.T) (*Server, *Client, echoHandler) {
	t.Helper()
	h := echoHandler{cancelled: make(chan struct{})}
	s, err := Listen(h)
	if err != nil {
		t.Fatal(err)
	}
	c := NewClient(s.Address, s.Token, true)
	t.Cleanup(func() {
		c.Close()
		s.Close()
	})
	return s, c, h
}

func call(t *testing.T, c *Client, in string) (string, error) {
	t.Helper()
	var out wrapperspb.StringValue
	err := c.Call(context.Background(), wrapperspb.String(in), &out)
	return out.Value, err
}

func TestCallsReuseConnections(t *testing.T) {
	_, c, _ := start(t)
	for i := range 200 {
		got, err := call(t, c, "x")
		if err != nil || got != "x!" {
			t.Fatalf("call %d = %q, %v", i, got, err)
		}
	}
	if n := len(c.idle); n != 1 {
		t.Errorf("sequential calls used %d pooled connections, want 1", n)
	}
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if got, err := call(t, c, "y"); err != nil || got != "y!" {
				t.Errorf("concurrent call = %q, %v", got, err)
			}
		}()
	}
	wg.Wait()
}

func TestErrorsKeepTheirStatus(t *testing.T) {
	_, c, _ := start(t)
	_, err := call(t, c, "fail")
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "slow down") {
		t.Fatalf("err = %v", err)
	}
	if got, err := call(t, c, "after"); err != nil || got != "after!" {
		t.Fatalf("the connection is unusable after an error reply: %q %v", got, err)
	}
}

func TestCancelReachesTheHandler(t *testing.T) {
	_, c, h := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	var out wrapperspb.StringValue
	err := c.Call(ctx, wrapperspb.String("slow"), &out)
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
	select {
	case <-h.cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the handler was not cancelled")
	}
	if got, err := call(t, c, "z"); err != nil || got != "z!" {
		t.Fatalf("call after a cancel = %q, %v", got, err)
	}
}

func TestStreams(t *testing.T) {
	_, c, h := start(t)
	read := func(in string) (string, error) {
		st, err := c.Stream(context.Background(), wrapperspb.String(in))
		if err != nil {
			return "", err
		}
		var b strings.Builder
		for {
			var m wrapperspb.StringValue
			err := st.Recv(&m)
			if err == io.EOF {
				return b.String(), nil
			}
			if err != nil {
				return b.String(), err
			}
			b.WriteString(m.Value)
		}
	}
	if got, err := read("abc"); err != nil || got != "abc" {
		t.Fatalf("stream = %q, %v", got, err)
	}
	if got, err := read("ab-fail"); status.Code(err) != codes.Unavailable || got != "ab-fail" {
		t.Fatalf("failing stream = %q, %v", got, err)
	}
	// Batched chunks arrive whole and in order, with the chunk that ends
	// a batch or with the end frame.
	for _, in := range []string{"batch:abcdef", "held:ghijk", "batch:" + strings.Repeat("z", 20000)} {
		want := in[strings.IndexByte(in, ':')+1:]
		if got, err := read(in); err != nil || got != want {
			t.Fatalf("stream %.20q = %.20q (%d bytes), %v; want %d bytes", in, got, len(got), err, len(want))
		}
	}
	// Held chunks arrive in one write with the end frame: after the first
	// Recv, the rest are buffered, and nothing is once the stream ended.
	st, err := c.Stream(context.Background(), wrapperspb.String("held:xyz"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	var more []bool
	for {
		var m wrapperspb.StringValue
		err := st.Recv(&m)
		more = append(more, st.Buffered())
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, m.Value)
	}
	if strings.Join(got, "") != "xyz" || !reflect.DeepEqual(more, []bool{true, true, true, false}) {
		t.Errorf("held stream: %q, Buffered after each Recv %v; want xyz, [true true true false]", got, more)
	}
	if got, err := call(t, c, "x"); err != nil || got != "x!" {
		t.Fatalf("call after streams = %q, %v", got, err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	st, err = c.Stream(ctx, wrapperspb.String("slow"))
	if err != nil {
		t.Fatal(err)
	}
	var m wrapperspb.StringValue
	if err := st.Recv(&m); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case <-h.cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("cancelling a stream did not reach the handler")
	}
}

func TestWrongTokenIsDropped(t *testing.T) {
	s, _, _ := start(t)
	bad := NewClient(s.Address, []byte("not the token"), false)
	defer bad.Close()
	var out wrapperspb.StringValue
	err := bad.Call(context.Background(), wrapperspb.String("x"), &out)
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("a client without the token got %v", err)
	}
}

func TestMalformedFramesCloseTheConnection(t *testing.T) {
	s, _, _ := start(t)
	nc, err := net.Dial("unix", s.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	w := bufio.NewWriter(nc)
	writeFrame(w, kindHello, s.Token)
	nc.Write([]byte{0xff, 0xff, 0xff, 0xff, kindCall})
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := nc.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("read after a bad frame: %v, want EOF", err)
	}
}
