// Package redistest runs private redis-server processes for tests: each
// on a free 127.0.0.1 port, with persistence off and its working
// directory and log in a temporary directory, killed when the test ends.
// The redis-server binary must be installed (Debian: the redis-server
// package, see scripts/install-deps.sh).
package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// readyTimeout bounds the wait for a started server to answer PING.
const readyTimeout = 10 * time.Second

// Server is a private redis-server. It keeps its port across Stop and
// Restart, so a test can take Redis away and bring it back under the
// same URL.
type Server struct {
	// Addr is the server's host:port.
	Addr string

	t    testing.TB
	port int
	dir  string
	cmd  *exec.Cmd
}

// Start starts a redis-server on a free port and waits until it answers.
// The server is stopped when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s := &Server{Addr: fmt.Sprintf("127.0.0.1:%d", port), t: t, port: port, dir: t.TempDir()}
	s.Restart()
	t.Cleanup(s.Stop)
	return s
}

// URL returns the redis:// URL of database 0 of the server.
func (s *Server) URL() string { return "redis://" + s.Addr + "/0" }

// Stop kills the server. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
	}
	s.cmd = nil
}

// Restart starts the server again on its port, stopping it first if it
// runs, and waits until it answers.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		s.t.Fatal("redis-server not found: install it with `apt-get install -y redis-server`")
	}
	cmd := exec.Command(bin, "--bind", "127.0.0.1", "--port", strconv.Itoa(s.port),
		"--save", "", "--appendonly", "no", "--dir", s.dir, "--logfile", filepath.Join(s.dir, "redis.log"))
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server: %v", err)
	}
	s.cmd = cmd
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	defer c.Close()
	deadline := time.Now().Add(readyTimeout)
	for {
		err := c.Ping(context.Background()).Err()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
			s.t.Fatalf("redis-server on %s did not answer within %v: %v\nlog:\n%s", s.Addr, readyTimeout, err, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
