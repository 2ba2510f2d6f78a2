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

	"github.com/llmproxy/llmproxy/sdk/internal/rpc"
)

// Handler serves what arrives on the data path. Errors carry gRPC
// statuses.
type Handler interface {
	// Call decodes payload, runs it and returns the response.
	Call(ctx context.Context, payload []byte) (proto.Message, error)
	// Stream decodes payload and runs it, passing each message of the
	// answer to send, which fails once the host is gone. With more set,
	// the handler tells that another message follows at once: the frame
	// may be held and written with the next one.
	Stream(ctx context.Context, payload []byte, send func(m proto.Message, more bool) error) error
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
	// hello bounds the wait for a connection's hello frame.
	hello time.Duration
	wg    sync.WaitGroup
}

// Listen starts a Server in a fresh private directory.
func Listen(h Handler) (*Server, error) { return listen(h, helloTimeout) }

func listen(h Handler, hello time.Duration) (*Server, error) {
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
	s := &Server{Address: addr, Token: token, dir: dir, ln: ln, handler: h, hello: hello}
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

// helloTimeout bounds how long a new connection may take to present its
// token.
const helloTimeout = 5 * time.Second

// flagAccept, appended to the token in the hello frame, asks for accept
// frames.
const flagAccept byte = 1

// frameWriter serialises the frames of one connection: the serving
// goroutine writes replies and chunks, the watcher writes the accept frame.
type frameWriter struct {
	mu sync.Mutex
	w  *bufio.Writer
	// answered is set once the current call's reply, end or error frame
	// was written; an accept frame after it would be read as the next
	// call's.
	answered bool
}

func (f *frameWriter) write(kind byte, payload []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch kind {
	case kindAccept:
		if f.answered {
			return nil
		}
	case kindReply, kindEnd, kindError:
		f.answered = true
	}
	return writeFrame(f.w, kind, payload)
}

// writeChunk writes a chunk frame, flushed or left in the buffer.
func (f *frameWriter) writeChunk(payload []byte, flush bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := appendFrame(f.w, kindChunk, payload); err != nil {
		return err
	}
	if !flush {
		return nil
	}
	return f.w.Flush()
}

// next readies the writer for the next call.
func (f *frameWriter) next() {
	f.mu.Lock()
	f.answered = false
	f.mu.Unlock()
}

// serve runs calls on one connection, one at a time.
func (s *Server) serve(c net.Conn) {
	defer c.Close()
	pc := &pushback{Conn: c}
	r := bufio.NewReaderSize(pc, 64<<10)
	w := &frameWriter{w: bufio.NewWriterSize(c, 64<<10)}
	c.SetReadDeadline(time.Now().Add(s.hello))
	kind, hello, _, err := readFrame(r, nil, maxHello)
	if err != nil || kind != kindHello {
		return
	}
	acks := false
	if len(hello) == len(s.Token)+1 && hello[len(hello)-1]&flagAccept != 0 {
		hello, acks = hello[:len(s.Token)], true
	}
	if subtle.ConstantTimeCompare(hello, s.Token) != 1 {
		return
	}
	c.SetReadDeadline(time.Time{})
	var buf, out []byte
	for {
		kind, payload, b, err := readFrame(r, buf, maxFrame)
		if err != nil || (kind != kindCall && kind != kindStream) {
			return
		}
		w.next()
		ctx, cancel := context.WithCancel(context.Background())
		var accept func()
		if acks {
			accept = func() { w.write(kindAccept, nil) }
		}
		stop := watch(pc, r, cancel, accept)
		var werr error
		if kind == kindCall {
			out, werr = s.call(ctx, w, payload, out)
		} else {
			werr = s.stream(ctx, w, payload)
		}
		buf = release(b)
		closed := stop()
		cancel()
		if werr != nil || closed {
			return
		}
	}
}

// call runs one unary call and writes its reply or error. The reply is
// marshalled into buf, which the connection reuses from call to call; it
// returns the buffer to keep.
func (s *Server) call(ctx context.Context, w *frameWriter, payload, buf []byte) ([]byte, error) {
	msg, err := s.runCall(ctx, payload)
	if err != nil {
		return buf, writeStatus(w, err)
	}
	out, err := proto.MarshalOptions{}.MarshalAppend(buf[:0], msg)
	if err != nil {
		return buf, writeStatus(w, err)
	}
	return release(out), w.write(kindReply, out)
}

// runCall runs the handler's Call, turning a panic into an Internal status.
func (s *Server) runCall(ctx context.Context, payload []byte) (msg proto.Message, err error) {
	defer func() {
		if r := recover(); r != nil {
			msg, err = nil, rpc.Recovered("datapath call", r)
		}
	}()
	return s.handler.Call(ctx, payload)
}

// runStream runs the handler's Stream, turning a panic into an Internal
// status.
func (s *Server) runStream(ctx context.Context, payload []byte, send func(proto.Message, bool) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = rpc.Recovered("datapath stream", r)
		}
	}()
	return s.handler.Stream(ctx, payload, send)
}

// stream runs one streamed call: a chunk frame per message, then an end
// or error frame. Messages are marshalled into one buffer reused for the
// whole stream. A chunk sent with more set stays in the connection's
// write buffer until a later frame is flushed (the next chunk without
// more, the end or error frame, an accept frame) or the buffer fills, so
// that chunks the upstream delivered together reach the host in one
// write.
func (s *Server) stream(ctx context.Context, w *frameWriter, payload []byte) error {
	var (
		werr error
		buf  []byte
	)
	send := func(m proto.Message, more bool) error {
		if werr != nil {
			return werr
		}
		out, err := proto.MarshalOptions{}.MarshalAppend(buf[:0], m)
		if err != nil {
			return err
		}
		buf = release(out)
		werr = w.writeChunk(out, !more)
		return werr
	}
	err := s.runStream(ctx, payload, send)
	if werr != nil {
		return werr
	}
	if err != nil {
		return writeStatus(w, err)
	}
	return w.write(kindEnd, nil)
}

func writeStatus(w *frameWriter, err error) error {
	out, _ := proto.Marshal(status.Convert(err).Proto())
	return w.write(kindError, out)
}

// watchDelay is how long a call runs before its connection is watched:
// quick calls never pay for the watch.
const watchDelay = time.Millisecond

// watch cancels a running call when the host closes the connection (the
// host's request was cancelled). It starts only after watchDelay, first
// calling accept (when not nil) to tell the host the call is running. The host
// sends nothing while it waits for a reply, so a byte read is already the
// next call: stop hands it back. stop reports whether the connection is
// gone.
func watch(pc *pushback, r *bufio.Reader, cancel context.CancelFunc, accept func()) (stop func() bool) {
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
		if accept != nil {
			accept()
		}
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
