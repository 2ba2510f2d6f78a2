// Package datapath is a lean side channel between the host and a plugin
// for unary calls on the request path.
//
// gRPC stays the plugin protocol: it carries Describe and Configure, every
// stream, and every call when the side channel is absent. But a gRPC unary
// call between two processes hands each message across three or four
// goroutines per side, and on a small VM every hand-off that wakes a parked
// thread costs tens of microseconds — far more than the work. Here the
// host's calling goroutine writes one frame to a pooled unix-socket
// connection and reads the answer itself; the plugin serves each
// connection in one goroutine. That is one wake-up per direction.
//
// A plugin listens on a socket in a private (0700) directory and announces
// its path and a random token through Describe, over gRPC with mutual TLS;
// a connection that does not open with the token is dropped. Frames are a
// 4-byte big-endian length, a kind byte and a protobuf payload. A
// connection carries one call or stream at a time; the host pools them. The
// host cancels by closing the connection, which the plugin notices after a
// call has run for a millisecond.
//
// A call that runs longer than that millisecond is acknowledged with an
// accept frame, so the host can tell a plugin that is working (its upstream
// is slow) from one that never read the call (it is stopped or wedged), and
// fail over quickly in the second case. A panic in a handler is recovered,
// logged with its stack, and answered with an Internal status; the plugin
// and its other connections carry on. Hello frames are small and must
// arrive promptly; read buffers grown by a large frame are released after
// it.
package datapath

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Frame kinds.
const (
	kindHello  byte = 1 // host → plugin: the token
	kindCall   byte = 2 // host → plugin: a request payload
	kindReply  byte = 3 // plugin → host: the response payload
	kindError  byte = 4 // plugin → host: a google.rpc.Status, ends a call or stream
	kindStream byte = 5 // host → plugin: a request whose answer streams
	kindChunk  byte = 6 // plugin → host: one message of a stream
	kindEnd    byte = 7 // plugin → host: the stream ended well
	kindAccept byte = 8 // plugin → host: the call was read and is running
)

// maxFrame bounds one frame; chat requests carry documents and images.
const maxFrame = 256 << 20

// maxHello bounds the hello frame, which carries only the token.
const maxHello = 1 << 10

// keepBuffer is the largest read buffer a connection keeps between
// frames; a larger one, grown for a large frame, is dropped after use so
// that one big request does not pin its memory for the connection's life.
const keepBuffer = 1 << 20

// release returns buf for reuse, or nil when it is larger than keepBuffer.
func release(buf []byte) []byte {
	if cap(buf) > keepBuffer {
		return nil
	}
	return buf
}

// writeFrame writes one frame to w and flushes it.
func writeFrame(w *bufio.Writer, kind byte, payload []byte) error {
	if err := appendFrame(w, kind, payload); err != nil {
		return err
	}
	return w.Flush()
}

// appendFrame writes one frame to w without flushing it.
func appendFrame(w *bufio.Writer, kind byte, payload []byte) error {
	var hdr [5]byte
	binary.BigEndian.PutUint32(hdr[:4], uint32(len(payload)+1))
	hdr[4] = kind
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := w.Write(payload)
	return err
}

// readFrame reads one frame of at most limit bytes into buf (grown as
// needed) and returns its kind and payload, which aliases buf.
func readFrame(r *bufio.Reader, buf []byte, limit int) (byte, []byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, buf, err
	}
	n := binary.BigEndian.Uint32(hdr[:4])
	if n == 0 || uint64(n) > uint64(limit)+1 {
		return 0, nil, buf, fmt.Errorf("datapath: bad frame length %d", n)
	}
	size := int(n) - 1
	if cap(buf) < size {
		buf = make([]byte, size)
	}
	buf = buf[:size]
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, buf, err
	}
	return hdr[4], buf, buf, nil
}
