package datapath

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/llmproxy/llmproxy/sdk/internal/rpc"
)

// ErrDial reports that the plugin's socket could not be reached at all;
// nothing was sent, so the caller may use gRPC instead.
var ErrDial = errors.New("datapath: cannot reach the plugin's socket")

// Client calls a plugin's data path over pooled connections.
type Client struct {
	addr string
	// hello opens each connection: the token, plus a flags byte when the
	// plugin acknowledges calls.
	hello []byte

	mu   sync.Mutex
	idle []*conn
}

type conn struct {
	c   net.Conn
	r   *bufio.Reader
	w   *bufio.Writer
	buf []byte
}

// maxIdle bounds the pooled connections of one plugin.
const maxIdle = 64

// NewClient returns a Client for the address and token a plugin announced.
// acks says the plugin announced that it acknowledges calls; the client
// then asks for accept frames and reports them to the hook of
// rpc.WithAccepted.
func NewClient(addr string, token []byte, acks bool) *Client {
	hello := token
	if acks {
		hello = append(slices.Clip(token), flagAccept)
	}
	return &Client{addr: addr, hello: hello}
}

func (cl *Client) get(ctx context.Context) (*conn, error) {
	cl.mu.Lock()
	if n := len(cl.idle); n > 0 {
		c := cl.idle[n-1]
		cl.idle = cl.idle[:n-1]
		cl.mu.Unlock()
		return c, nil
	}
	cl.mu.Unlock()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", cl.addr)
	if err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %v", ErrDial, err)
	}
	c := &conn{c: nc, r: bufio.NewReaderSize(nc, 64<<10), w: bufio.NewWriterSize(nc, 64<<10)}
	if err := writeFrame(c.w, kindHello, cl.hello); err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

func (cl *Client) put(c *conn) {
	cl.mu.Lock()
	if len(cl.idle) < maxIdle {
		cl.idle = append(cl.idle, c)
		c = nil
	}
	cl.mu.Unlock()
	if c != nil {
		c.c.Close()
	}
}

// Addr returns the socket address the client dials.
func (cl *Client) Addr() string { return cl.addr }

// CloseIdle closes the pooled connections.
func (cl *Client) CloseIdle() {
	cl.mu.Lock()
	idle := cl.idle
	cl.idle = nil
	cl.mu.Unlock()
	for _, c := range idle {
		c.c.Close()
	}
}

// Close closes the pooled connections and removes the plugin's socket
// directory, which a plugin killed outright cannot remove itself. Call it
// once the plugin is gone.
func (cl *Client) Close() {
	cl.CloseIdle()
	if dir := filepath.Dir(cl.addr); strings.HasPrefix(filepath.Base(dir), dirPrefix) {
		os.RemoveAll(dir)
	}
}

// Call sends req and decodes the reply into resp. Errors are ErrDial when
// the socket cannot be reached, else gRPC status errors: the plugin's own,
// Canceled/DeadlineExceeded for ctx, or Unavailable when the connection
// failed (the plugin died).
func (cl *Client) Call(ctx context.Context, req, resp proto.Message) error {
	payload, err := proto.Marshal(req)
	if err != nil {
		return status.Errorf(codes.Internal, "datapath: encode request: %v", err)
	}
	c, err := cl.get(ctx)
	if errors.Is(err, ErrDial) {
		return err
	}
	if err != nil {
		return transportError(ctx, err)
	}
	// Cancelling ctx closes the connection: that interrupts a blocking
	// write or read here and tells the plugin to cancel the call.
	stop := context.AfterFunc(ctx, func() { c.c.Close() })
	kind, body, err := roundTrip(ctx, c, payload)
	if !stop() || err != nil {
		c.c.Close()
		return transportError(ctx, err)
	}
	switch kind {
	case kindReply:
		if err := proto.Unmarshal(body, resp); err != nil {
			c.c.Close()
			return status.Errorf(codes.Internal, "datapath: decode reply: %v", err)
		}
	case kindError:
		var st spb.Status
		if err := proto.Unmarshal(body, &st); err != nil {
			c.c.Close()
			return status.Errorf(codes.Internal, "datapath: decode error: %v", err)
		}
		cl.put(c)
		return status.FromProto(&st).Err()
	default:
		c.c.Close()
		return status.Errorf(codes.Internal, "datapath: unexpected frame kind %d", kind)
	}
	cl.put(c)
	return nil
}

// Stream sends req as a streamed call. Recv on the result returns each
// message of the answer, io.EOF after the last.
func (cl *Client) Stream(ctx context.Context, req proto.Message) (*Stream, error) {
	payload, err := proto.Marshal(req)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "datapath: encode request: %v", err)
	}
	c, err := cl.get(ctx)
	if errors.Is(err, ErrDial) {
		return nil, err
	}
	if err != nil {
		return nil, transportError(ctx, err)
	}
	// As in Call, cancelling ctx closes the connection.
	stop := context.AfterFunc(ctx, func() { c.c.Close() })
	if err := writeFrame(c.w, kindStream, payload); err != nil {
		stop()
		c.c.Close()
		return nil, transportError(ctx, err)
	}
	return &Stream{cl: cl, c: c, ctx: ctx, stop: stop}, nil
}

// Stream is a streamed answer being read.
type Stream struct {
	cl   *Client
	c    *conn
	ctx  context.Context
	stop func() bool
	done error
}

// Recv decodes the next message into m. It returns io.EOF after the last
// one, or the status error that ended the stream.
func (s *Stream) Recv(m proto.Message) error {
	if s.done != nil {
		return s.done
	}
	kind, body, err := s.c.read(s.ctx)
	if err != nil {
		return s.finish(transportError(s.ctx, err), false)
	}
	switch kind {
	case kindChunk:
		if err := proto.Unmarshal(body, m); err != nil {
			return s.finish(status.Errorf(codes.Internal, "datapath: decode chunk: %v", err), false)
		}
		return nil
	case kindEnd:
		return s.finish(io.EOF, true)
	case kindError:
		var st spb.Status
		if err := proto.Unmarshal(body, &st); err != nil {
			return s.finish(status.Errorf(codes.Internal, "datapath: decode error: %v", err), false)
		}
		return s.finish(status.FromProto(&st).Err(), true)
	}
	return s.finish(status.Errorf(codes.Internal, "datapath: unexpected frame kind %d", kind), false)
}

// Buffered reports whether the next frame of the stream has already
// arrived whole, so that Recv returns without waiting. A caller relaying
// the messages can then hold its own write for the next one.
func (s *Stream) Buffered() bool {
	if s.done != nil {
		return false
	}
	r := s.c.r
	n := r.Buffered()
	if n < 5 {
		return false
	}
	hdr, err := r.Peek(4)
	if err != nil {
		return false
	}
	return n >= 4+int(binary.BigEndian.Uint32(hdr))
}

// finish ends the stream with err, pooling the connection when the stream
// ended cleanly and the caller did not cancel meanwhile.
func (s *Stream) finish(err error, reusable bool) error {
	s.done = err
	if s.stop() && reusable {
		s.cl.put(s.c)
	} else {
		s.c.c.Close()
	}
	return err
}

func roundTrip(ctx context.Context, c *conn, payload []byte) (byte, []byte, error) {
	if err := writeFrame(c.w, kindCall, payload); err != nil {
		return 0, nil, err
	}
	return c.read(ctx)
}

// read returns the next frame other than an accept frame, reporting
// accept frames to ctx's hook. The payload is valid until the next read.
func (c *conn) read(ctx context.Context) (byte, []byte, error) {
	for {
		kind, body, buf, err := readFrame(c.r, c.buf, maxFrame)
		c.buf = release(buf)
		if err != nil || kind != kindAccept {
			return kind, body, err
		}
		rpc.Accepted(ctx)
	}
}

func transportError(ctx context.Context, err error) error {
	switch ctx.Err() {
	case context.Canceled:
		return status.Error(codes.Canceled, "datapath: call cancelled")
	case context.DeadlineExceeded:
		return status.Error(codes.DeadlineExceeded, "datapath: deadline exceeded")
	}
	return status.Error(codes.Unavailable, fmt.Sprintf("datapath: %v", err))
}
