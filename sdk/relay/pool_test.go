package relay

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

func TestOriginOf(t *testing.T) {
	tests := []struct {
		raw    string
		want   Origin
		wantOK bool
	}{
		{"http://127.0.0.1:8080", Origin{key: "http://127.0.0.1:8080", addr: "127.0.0.1:8080", serverName: "127.0.0.1"}, true},
		{"https://api.openai.com", Origin{key: "https://api.openai.com:443", addr: "api.openai.com:443", tls: true, serverName: "api.openai.com"}, true},
		{"http://[::1]", Origin{key: "http://[::1]:80", addr: "[::1]:80", serverName: "::1"}, true},
		{"unix:///run/x.sock", Origin{}, false},
		{"http:///no-host", Origin{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			u, err := url.Parse(tt.raw)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := OriginOf(u)
			if ok != tt.wantOK || got != tt.want {
				t.Errorf("OriginOf(%s) = %+v, %v; want %+v, %v", tt.raw, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestPoolClosesStaleConnections(t *testing.T) {
	p := NewPool(2, time.Minute)
	o := Origin{key: "http://x:80"}
	conns := make([]*closeCounter, 4)
	for i := range conns {
		conns[i] = &closeCounter{}
	}
	old := &conn{Conn: conns[0]}
	p.put(o, old)
	old.lastUsed = time.Now().Add(-2 * time.Minute)
	p.put(o, &conn{Conn: conns[1]})
	if conns[0].closed != 1 || len(p.idle[o.key]) != 1 {
		t.Errorf("stale connection closed %d times, %d idle; want 1 and 1", conns[0].closed, len(p.idle[o.key]))
	}
	p.put(o, &conn{Conn: conns[2]})
	p.put(o, &conn{Conn: conns[3]})
	if conns[3].closed != 1 || len(p.idle[o.key]) != 2 {
		t.Errorf("connection beyond maxIdle closed %d times, %d idle; want 1 and 2", conns[3].closed, len(p.idle[o.key]))
	}
	c, reused, err := p.get(context.Background(), o)
	if err != nil || !reused || c.Conn != conns[2] {
		t.Errorf("get = %v, %v, %v; want the most recent idle connection", c, reused, err)
	}
}

// closeCounter is a net.Conn that only counts Close calls.
type closeCounter struct {
	net.Conn
	closed int
}

func (c *closeCounter) Close() error { c.closed++; return nil }

// TestExchangeBuffered: the first event of a stream that came with the
// answer's header is in Buffered before anything reads the body.
func TestExchangeBuffered(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 4096)
		c.Read(buf)
		event := "data: {\"x\":1}\n\n"
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n", len(event), event)
		time.Sleep(time.Second)
	}()
	u, _ := url.Parse("http://" + ln.Addr().String() + "/v1/chat/completions")
	o, _ := OriginOf(u)
	p := NewPool(2, time.Minute)
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(u.String())
	req.Header.SetMethod("POST")
	req.SetBodyString("{}")
	resp.StreamBody = true
	x, err := p.Send(context.Background(), o, req, resp, 5*time.Second, 1<<10)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Finish(resp, false)
	deadline := time.Now().Add(2 * time.Second)
	for !strings.Contains(string(x.Buffered()), "data: {\"x\":1}\n\n") {
		if time.Now().After(deadline) {
			t.Fatalf("Buffered = %q, want the first event", x.Buffered())
		}
		time.Sleep(5 * time.Millisecond)
	}
	ev := NewEvents("test", Body(resp.BodyStream()))
	defer ev.Release()
	b, err := ev.Next(context.Background())
	if err != nil || string(b) != `{"x":1}` {
		t.Fatalf("Next = %q, %v", b, err)
	}
	if len(x.Buffered()) != 0 && strings.Contains(string(x.Buffered()), "\n\n") {
		t.Errorf("after the event was read, Buffered still holds an event end: %q", x.Buffered())
	}
}
