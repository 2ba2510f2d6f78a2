package server

import (
	"context"
	"net"
	"sync"
	"syscall"
	"time"
)

// watchInterval is how often an open request checks its client.
const watchInterval = 50 * time.Millisecond

// watchDisconnect calls cancel when the client closes its connection while
// a request is in flight; fasthttp itself only notices at the next write.
// It peeks at the socket (MSG_PEEK, so no request byte is consumed) on a
// timer that only starts after watchInterval, so short requests pay
// nothing but one timer. The returned func stops the watch.
func watchDisconnect(conn net.Conn, cancel context.CancelFunc) func() {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return func() {}
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return func() {}
	}
	var mu sync.Mutex
	stopped := false
	var t *time.Timer
	mu.Lock()
	t = time.AfterFunc(watchInterval, func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		if peerClosed(raw) {
			cancel()
			return
		}
		t.Reset(watchInterval)
	})
	mu.Unlock()
	return func() {
		mu.Lock()
		stopped = true
		mu.Unlock()
		t.Stop()
	}
}

// peerClosed reports whether the peer has closed the connection: a
// non-blocking peek that returns 0 bytes without error is EOF.
func peerClosed(raw syscall.RawConn) bool {
	var buf [1]byte
	closed := false
	raw.Control(func(fd uintptr) {
		n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		closed = n == 0 && err == nil
	})
	return closed
}

// watchClient cancels the request's plugin call when the client goes away,
// and logs it.
func (r *call) watchClient(cancel context.CancelFunc) func() {
	id, log := r.id, r.s.log
	return watchDisconnect(r.ctx.Conn(), func() {
		log.Debug("client closed the connection; cancelling the plugin call", "request_id", id)
		cancel()
	})
}
