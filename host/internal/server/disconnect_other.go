//go:build !linux

package server

import (
	"context"
	"net"
)

// watchDisconnect is a no-op where non-blocking peeks are not available:
// a disconnect is then noticed at the next write.
func watchDisconnect(net.Conn, context.CancelFunc) func() { return func() {} }

// watchClient does nothing where disconnects cannot be watched.
func (r *call) watchClient(context.CancelFunc) func() { return func() {} }
