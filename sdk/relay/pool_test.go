package relay

import (
	"context"
	"net"
	"net/url"
	"testing"
	"time"
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
