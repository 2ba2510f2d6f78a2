package datapath

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// frames encodes frames for seeds.
func frames(fs ...[]byte) []byte {
	var b bytes.Buffer
	w := bufio.NewWriter(&b)
	for _, f := range fs {
		writeFrame(w, f[0], f[1:])
	}
	return b.Bytes()
}

func frame(kind byte, payload []byte) []byte { return append([]byte{kind}, payload...) }

func marshal(m proto.Message) []byte {
	b, _ := proto.Marshal(m)
	return b
}

// FuzzReadFrame reads arbitrary bytes as frames: every frame returned
// must be as long as its header says and within the limit, and the reader
// must stop with an error rather than loop or panic.
func FuzzReadFrame(f *testing.F) {
	f.Add(frames(frame(kindHello, []byte("token")), frame(kindCall, []byte("payload"))), 1024)
	f.Add([]byte{0, 0, 0, 0, kindCall}, 16)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, kindCall}, maxHello)
	f.Add([]byte{0, 0, 0, 9, kindReply, 1, 2}, 64)
	f.Fuzz(func(t *testing.T, data []byte, limit int) {
		if limit < 0 || limit > 1<<20 {
			limit = 1 << 20
		}
		r := bufio.NewReader(bytes.NewReader(data))
		var buf []byte
		for range len(data) + 1 {
			_, payload, b, err := readFrame(r, buf, limit)
			if err != nil {
				return
			}
			if len(payload) > limit {
				t.Fatalf("a %d-byte payload passed a %d-byte limit", len(payload), limit)
			}
			buf = release(b)
		}
		t.Fatal("the reader did not stop at the end of its input")
	})
}

// FuzzClientStream plays a hostile plugin: whatever bytes it answers a
// streamed call with, the host's client returns messages and then one
// error or io.EOF, without panicking or hanging.
func FuzzClientStream(f *testing.F) {
	f.Add(frames(frame(kindChunk, marshal(wrapperspb.String("a"))), frame(kindEnd, nil)))
	f.Add(frames(frame(kindAccept, nil), frame(kindChunk, marshal(wrapperspb.String("b"))),
		frame(kindError, marshal(&spb.Status{Code: 8, Message: "slow down"}))))
	f.Add(frames(frame(kindReply, []byte{0xff})))
	f.Add(frames(frame(kindChunk, []byte{0x0a, 0xff, 0x01})))
	f.Add([]byte{0, 0, 0, 2, kindChunk})
	f.Fuzz(func(t *testing.T, answer []byte) {
		host, plugin := net.Pipe()
		defer host.Close()
		go func() {
			defer plugin.Close()
			// Read the hello and the call, then answer.
			r := bufio.NewReader(plugin)
			for range 2 {
				if _, _, _, err := readFrame(r, nil, maxFrame); err != nil {
					return
				}
			}
			plugin.Write(answer)
		}()
		c := &conn{c: host, r: bufio.NewReader(host), w: bufio.NewWriter(host)}
		writeFrame(c.w, kindHello, []byte("token"))
		cl := &Client{addr: "fuzz"}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		stop := context.AfterFunc(ctx, func() { host.Close() })
		if err := writeFrame(c.w, kindStream, marshal(wrapperspb.String("go"))); err != nil {
			t.Fatal(err)
		}
		s := &Stream{cl: cl, c: c, ctx: ctx, stop: stop}
		for range len(answer) + 2 {
			var m wrapperspb.StringValue
			err := s.Recv(&m)
			if err == nil {
				continue
			}
			if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
				t.Fatal("the client hung on a finished answer")
			}
			if err != io.EOF && s.Recv(&m) != err {
				t.Fatal("Recv after the end returned a different error")
			}
			cl.CloseIdle()
			return
		}
		t.Fatal("the client returned more messages than the answer could hold")
	})
}
