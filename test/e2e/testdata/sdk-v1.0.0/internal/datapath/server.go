package datapath

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Handler serves what arrives on the data path. Errors carry gRPC
// statuses.
type Handler interface {
	// Call decodes payload, runs it and returns the response.
	Call(ctx context.Context, payload []byte) (proto.Message, error)
	// Stream decodes payload and runs it, passing each message of the
	// answer to send, which fails once the host is gone.
	Stream(ctx context.Context, payload []byte, send func(proto.Message) error) error
}

// dirPrefix starts the name of every socket directory.
const dirPrefix = "llmproxy-data-"

// Server accepts host connections on a unix socket.
type Server struct {
	// Address is the socket path; Token opens a connection.
	Address string
	Token   []byte

	dir     string
	ln      net.Listener
	handler Handler
	wg      sync.WaitGroup
}

// Listen starts a Server in a fresh private directory.
func Listen(h Handler) (*Server, error) {
	dir, err := os.MkdirTemp("", dirPrefix)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	addr := filepath.Join(dir, "data.sock")
	ln, err := net.Listen("unix", addr)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	token := make([]byte, 32)
	rand.Read(token)
	s := &Server{Address: addr, Token: token, dir: dir, ln: ln, handler: h}
	go s.accept()
	return s, nil
}

// Close stops accepting and removes the socket directory.
func (s *Server) Close() error {
	err := s.ln.Close()
	os.RemoveAll(s.dir)
	return err
}

func (s *Server) accept() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		go s.serve(c)
	}
}

// pushback is a connection whose reads first return bytes a watcher took
// from it.
type pushback struct {
	net.Conn
	pending []byte
}

func (p *pushback) Read(b []byte) (int, error) {
	if len(p.pending) > 0 {
		n := copy(b, p.pending)
		p.pending = p.pending[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}

// serve runs calls on one connection, one at a time.
func (s *Server) serve(c net.Conn) {
	defer c.Close()
	pc := &pushback{Conn: c}
	r := bufio.NewReaderSize(pc, 64<<10)
	w := bufio.NewWriterSize(c, 64<<10)
	kind, hello, buf, err := readFrame(r, nil)
	if err != nil || kind != kindHello || subtle.ConstantTimeCompare(hello, s.Token) != 1 {
		return
	}
	for {
		kind, payload, b, err := readFrame(r, buf)
		buf = b
		if err != nil || (kind != kindCall && kind != kindStream) {
			return
		}
		ctx, cancel := context.WithCancel(context.Background())
		stop := watch(pc, r, cancel)
		var werr error
		if kind == kindCall {
			werr = s.call(ctx, w, payload)
		} else {
			werr = s.stream(ctx, w, payload)
		}
		closed := stop()
		cancel()
		if werr != nil || closed {
			return
		}
	}
}

// call runs one unary call and writes its reply or error.
func (s *Server) call(ctx context.Context, w *bufio.Writer, payload []byte) error {
	msg, err := s.handler.Call(ctx, payload)
	if err != nil {
		return writeStatus(w, err)
	}
	out, err := proto.Marshal(msg)
	if err != nil {
		return writeStatus(w, err)
	}
	return writeFrame(w, kindReply, out)
}

// stream runs one streamed call: a chunk frame per message, then an end
// or error frame.
func (s *Server) stream(ctx context.Context, w *bufio.Writer, payload []byte) error {
	var werr error
	send := func(m proto.Message) error {
		if werr != nil {
			return werr
		}
		out, err := proto.Marshal(m)
		if err != nil {
			return err
		}
		werr = writeFrame(w, kindChunk, out)
		return werr
	}
	err := s.handler.Stream(ctx, payload, send)
	if werr != nil {
		return werr
	}
	if err != nil {
		return writeStatus(w, err)
	}
	return writeFrame(w, kindEnd, nil)
}

func writeStatus(w *bufio.Writer, err error) error {
	out, _ := proto.Marshal(status.Convert(err).Proto())
	return writeFrame(w, kindError, out)
}

// watchDelay is how long a call runs before its connection is watched:
// quick calls never pay for the watch.
const watchDelay = time.Millisecond

// watch cancels a running call when the host closes the connection (the
// host's request was cancelled). It starts only after watchDelay. The host
// sends nothing while it waits for a reply, so a byte read is already the
// next call: stop hands it back. stop reports whether the connection is
// gone.
func watch(pc *pushback, r *bufio.Reader, cancel context.CancelFunc) (stop func() bool) {
	if r.Buffered() > 0 {
		// The host never pipelines; bytes already buffered are a protocol
		// error the next read will report.
		return func() bool { return false }
	}
	type result struct {
		b   byte
		n   int
		err error
	}
	var (
		mu      sync.Mutex
		stopped bool
		done    chan result
	)
	t := time.AfterFunc(watchDelay, func() {
		mu.Lock()
		if stopped {
			mu.Unlock()
			return
		}
		done = make(chan result, 1)
		ch := done
		mu.Unlock()
		var one [1]byte
		n, err := pc.Conn.Read(one[:])
		if err != nil && !isTimeout(err) {
			cancel()
		}
		ch <- result{one[0], n, err}
	})
	return func() bool {
		mu.Lock()
		stopped = true
		ch := done
		mu.Unlock()
		if t.Stop() || ch == nil {
			return false
		}
		pc.Conn.SetReadDeadline(time.Unix(1, 0))
		res := <-ch
		pc.Conn.SetReadDeadline(time.Time{})
		if res.n == 1 {
			pc.pending = append(pc.pending[:0], res.b)
		}
		return res.err != nil && !isTimeout(res.err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
