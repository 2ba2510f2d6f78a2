package server

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

// TestWriterBodyStreams: a body set with setBodyStreamWriter reaches the
// client flush by flush, while the writer still runs, and the
// generation is held until the writer returns.
func TestWriterBodyStreams(t *testing.T) {
	g := newGeneration(Routing{})
	next := make(chan struct{})
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		r := &call{ctx: ctx, g: g}
		r.setBodyStreamWriter(func(w *bufio.Writer) {
			w.WriteString("data: one\n\n")
			w.Flush()
			<-next
			w.WriteString("data: two\n\n")
			w.Flush()
		})
	}}
	ln := fasthttputil.NewInmemoryListener()
	defer ln.Close()
	go srv.Serve(ln)
	conn, err := ln.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	br := bufio.NewReader(conn)
	var resp fasthttp.Response
	if err := resp.Header.Read(br); err != nil {
		t.Fatal(err)
	}
	if !resp.Header.IsHTTP11() || resp.Header.ContentLength() != -1 {
		t.Fatalf("want a chunked HTTP/1.1 answer, got content length %d", resp.Header.ContentLength())
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if got := readChunk(t, br); got != "data: one\n\n" {
		t.Fatalf("first chunk %q", got)
	}
	if n := g.active.Load(); n != 1 {
		t.Errorf("while the body is written the generation has %d holds, want 1", n)
	}
	close(next)
	if got := readChunk(t, br); got != "data: two\n\n" {
		t.Fatalf("second chunk %q", got)
	}
	if got := readChunk(t, br); got != "" {
		t.Fatalf("last chunk %q, want the empty one", got)
	}
	for deadline := time.Now().Add(2 * time.Second); g.active.Load() != 0; {
		if time.Now().After(deadline) {
			t.Fatalf("the generation is still held (%d) after the body", g.active.Load())
		}
		time.Sleep(time.Millisecond)
	}
}

// readChunk reads one HTTP chunk.
func readChunk(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	var n int
	for _, c := range strings.TrimSpace(line) {
		d := strings.IndexRune("0123456789abcdef", c)
		if d < 0 {
			t.Fatalf("chunk size line %q", line)
		}
		n = n*16 + d
	}
	b := make([]byte, n+2)
	if _, err := io.ReadFull(br, b); err != nil {
		t.Fatal(err)
	}
	return string(b[:n])
}

// TestWriterBodyClosedUnwritten: a body that fasthttp closes without
// writing it (the client went away first) still runs its writer, which
// sees its writes fail, and releases the generation.
func TestWriterBodyClosedUnwritten(t *testing.T) {
	g := newGeneration(Routing{})
	var ctx fasthttp.RequestCtx
	r := &call{ctx: &ctx, g: g}
	werr := make(chan error, 1)
	r.setBodyStreamWriter(func(w *bufio.Writer) {
		w.WriteString(strings.Repeat("x", 100))
		werr <- w.Flush()
	})
	ctx.Response.ResetBody()
	select {
	case err := <-werr:
		if !errors.Is(err, errBodyClosed) {
			t.Errorf("the writer's flush returned %v, want errBodyClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the writer never ran")
	}
	for deadline := time.Now().Add(2 * time.Second); g.active.Load() != 0; {
		if time.Now().After(deadline) {
			t.Fatal("the generation is still held")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestWriterBodyRead: a reader of the body gets what the writer wrote.
func TestWriterBodyRead(t *testing.T) {
	g := newGeneration(Routing{})
	g.acquire()
	b := &writerBody{release: g.release, write: func(w *bufio.Writer) {
		w.WriteString("hello, ")
		w.Flush()
		w.WriteString("world")
	}}
	got, err := io.ReadAll(b)
	if err != nil || string(got) != "hello, world" {
		t.Fatalf("ReadAll = %q, %v", got, err)
	}
	b.Close()
	if n := g.active.Load(); n != 0 {
		t.Errorf("generation holds %d after Close, want 0", n)
	}
}
