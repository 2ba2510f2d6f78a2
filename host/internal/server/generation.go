package server

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/valyala/fasthttp"

	"github.com/llmproxy/llmproxy/host/internal/access"
	"github.com/llmproxy/llmproxy/host/internal/auth"
	"github.com/llmproxy/llmproxy/host/internal/cache"
	"github.com/llmproxy/llmproxy/host/internal/router"
	"github.com/llmproxy/llmproxy/sdk/openai"
)

// ErrShuttingDown is the cause with which Abort cancels every request
// still running when the shutdown grace has passed.
var ErrShuttingDown = errors.New("the gateway is shutting down")

// shutdownError is what a client whose stream was cut by a shutdown reads
// in the final SSE error event: retrying reaches another replica.
func shutdownError() *openai.Error {
	return openai.NewError(http.StatusServiceUnavailable, openai.TypeServer, "server_shutting_down",
		"the gateway shut down before the response was complete; retry the request")
}

// Routing is the part of the configuration that a reload replaces as a
// whole: the API keys, the routes and the storage access rules.
type Routing struct {
	Keys     *auth.Keys
	Router   *router.Router
	Policies map[string]*access.Policy
	// Cache says which routes (and keys) use the response cache; nil:
	// none.
	Cache *cache.Policy
}

// generation is one published Routing and the number of requests that
// started under it and have not finished yet. A request that streams its
// response finishes when the last byte is written.
type generation struct {
	Routing
	active atomic.Int64
	// retired is set once a newer generation is current.
	retired atomic.Bool
	mu      sync.Mutex
	idle    chan struct{} // closed once retired and no request is active
}

func newGeneration(r Routing) *generation {
	return &generation{Routing: r, idle: make(chan struct{})}
}

func (g *generation) acquire() { g.active.Add(1) }

// enter returns the current generation, held. A request that loaded a
// generation just as a reload retired it takes the new one instead: the
// reload may already have seen no request active, and the instances only
// that generation routes to may be stopping. A generation held before it
// was retired is waited for (retired is set before the count is read).
func (s *Server) enter() *generation {
	for {
		g := s.gen.Load()
		g.acquire()
		if !g.retired.Load() {
			return g
		}
		g.release()
	}
}

func (g *generation) release() {
	if g.active.Add(-1) == 0 {
		g.mu.Lock()
		g.closeIfIdle()
		g.mu.Unlock()
	}
}

// closeIfIdle closes idle when g is retired and nothing runs; g.mu held.
func (g *generation) closeIfIdle() {
	if g.retired.Load() && g.active.Load() == 0 {
		select {
		case <-g.idle:
		default:
			close(g.idle)
		}
	}
}

// Publish makes next the routing of every request that starts from now
// on. Requests already running keep the routing they started with; the
// returned function waits until every request that started under an
// earlier routing has finished (streams included) or ctx ends, whichever
// is first. Waiting for all earlier routings, not only the last, matters
// when reloads follow each other while long streams run: an instance
// removed now may still serve a request of two routings ago.
func (s *Server) Publish(next Routing) (drained func(ctx context.Context) error) {
	old := s.gen.Swap(newGeneration(next))
	old.retired.Store(true)
	old.mu.Lock()
	old.closeIfIdle()
	old.mu.Unlock()
	s.retiredMu.Lock()
	live := s.retired[:0]
	for _, g := range s.retired {
		select {
		case <-g.idle:
		default:
			live = append(live, g)
		}
	}
	s.retired = append(live, old)
	wait := append([]*generation(nil), s.retired...)
	s.retiredMu.Unlock()
	return func(ctx context.Context) error {
		for _, g := range wait {
			select {
			case <-g.idle:
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		}
		return nil
	}
}

// Routing returns the routing new requests use.
func (s *Server) Routing() Routing { return s.gen.Load().Routing }

// Abort cancels every request still running, with ErrShuttingDown as the
// cause: a stream that has started ends with an SSE error event saying
// so. It is the last step of a shutdown whose grace has passed.
func (s *Server) Abort() { s.abort(ErrShuttingDown) }

// track ends the hold Handle took on r's generation; a streamed response
// holds it on its own (see setBodyStreamWriter and setBodyStream) until
// its last byte is written.
func (r *call) track() { r.g.release() }

// setBodyStreamWriter sets w to write the response body and holds r's
// generation until w returns. The body is a writerBody: fasthttp runs w
// on the connection's own goroutine once the header is written, so that a
// stream costs no goroutine, pipe or copy buffer of its own and its header
// leaves with its first event.
func (r *call) setBodyStreamWriter(w func(*bufio.Writer)) {
	r.g.acquire()
	r.ctx.Response.SetBodyStream(&writerBody{write: w, release: r.g.release}, -1)
}

// writerBody is a response body written by a func, as by fasthttp's
// SetBodyStreamWriter, but through WriteTo (fasthttp.BodyWriterTo): each
// Flush of the *bufio.Writer that write gets sends what was written as
// one HTTP chunk. Read is there for anything that reads the body instead;
// it runs write on a pipe as SetBodyStreamWriter does. Close, which
// fasthttp calls in every case, releases the generation, and runs write
// against a closed writer if the body was never written (the client went
// away before the header), so that write's cleanup always happens.
type writerBody struct {
	write   func(*bufio.Writer)
	release func()
	run     sync.Once // write has been started, by one of the three
	done    sync.Once // release has been called
	pipe    io.ReadCloser
}

// SupportsBodyWriteTo reports that WriteTo may replace Read.
func (b *writerBody) SupportsBodyWriteTo() bool { return true }

// WriteTo runs write with a buffered writer over w.
func (b *writerBody) WriteTo(w io.Writer) (int64, error) {
	cw := &countingWriter{w: w}
	b.run.Do(func() {
		defer b.done.Do(b.release)
		bw := chunkWriters.Get().(*bufio.Writer)
		bw.Reset(cw)
		defer func() {
			bw.Flush()
			bw.Reset(nil)
			chunkWriters.Put(bw)
		}()
		b.write(bw)
	})
	return cw.n, cw.err
}

// Read reads the body through a pipe that write fills.
func (b *writerBody) Read(p []byte) (int, error) {
	b.run.Do(func() {
		b.pipe = fasthttp.NewStreamReader(func(bw *bufio.Writer) {
			defer b.done.Do(b.release)
			b.write(bw)
		})
	})
	if b.pipe == nil {
		return 0, io.EOF
	}
	return b.pipe.Read(p)
}

// Close releases the body.
func (b *writerBody) Close() error {
	b.run.Do(func() {
		go func() {
			defer b.done.Do(b.release)
			b.write(bufio.NewWriterSize(closedWriter{}, 64))
		}()
	})
	if b.pipe != nil {
		return b.pipe.Close()
	}
	return nil
}

var (
	_ fasthttp.BodyWriterTo = (*writerBody)(nil)
	_ io.Closer             = (*writerBody)(nil)
)

// chunkWriters pools the buffered writers of writerBody. Their buffer
// holds the events written between two flushes (a few hundred bytes
// each) and is small because a host may hold a thousand streams at once;
// a larger write goes out as a chunk of its own, and the connection's own
// buffered writer sits behind it anyway.
var chunkWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 1<<10) }}

// countingWriter counts what it writes and keeps the first error.
type countingWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.err = err
	return n, err
}

// closedWriter is the writer of a body whose client is gone.
type closedWriter struct{}

func (closedWriter) Write([]byte) (int, error) { return 0, errBodyClosed }

var errBodyClosed = errors.New("the response was closed before its body was written")

// setBodyStream sets body as the response body and holds r's generation
// until fasthttp closes it.
func (r *call) setBodyStream(body io.Reader, size int) {
	r.g.acquire()
	r.ctx.SetBodyStream(&released{Reader: body, release: r.g.release}, size)
}

// released is a response body that releases its request's generation when
// fasthttp closes it, after writing the response or failing to.
type released struct {
	io.Reader
	once    sync.Once
	release func()
}

func (b *released) Close() error {
	var err error
	if c, ok := b.Reader.(io.Closer); ok {
		err = c.Close()
	}
	b.once.Do(b.release)
	return err
}

var _ io.Closer = (*released)(nil)
