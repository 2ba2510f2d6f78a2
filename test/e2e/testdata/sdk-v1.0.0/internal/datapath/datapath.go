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
)

// maxFrame bounds one frame; chat requests carry documents and images.
const maxFrame = 256 << 20

func writeFrame(w *bufio.Writer, kind byte, payload []byte) error {
	var hdr [5]byte
	binary.BigEndian.PutUint32(hdr[:4], uint32(len(payload)+1))
	hdr[4] = kind
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	if _, err := w.Write(payload); err != nil {
		return err
	}
	return w.Flush()
}

// readFrame reads one frame into buf (grown as needed) and returns its kind
// and payload, which aliases buf.
func readFrame(r *bufio.Reader, buf []byte) (byte, []byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, buf, err
	}
	n := binary.BigEndian.Uint32(hdr[:4])
	if n == 0 || n > maxFrame {
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
