package harness

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"testing"
)

// Postgres is a throwaway PostgreSQL cluster: made by initdb in a
// temporary directory, served by pg_ctl on a free loopback port, stopped
// and removed when the test ends. PostgreSQL refuses to run as root; under
// root it runs as the user "nobody".
type Postgres struct {
	// URL connects to the "postgres" database as the superuser
	// "postgres" (trust authentication on loopback).
	URL  string
	Port int
	dir  string
	bin  string
	cred *syscall.Credential
}

// PostgresBin finds the directory of initdb, pg_ctl and psql:
// $LLMPROXY_POSTGRES_BIN, the PATH, or the newest
// /usr/lib/postgresql/<version>/bin.
func PostgresBin() (string, error) {
	if d := os.Getenv("LLMPROXY_POSTGRES_BIN"); d != "" {
		return d, nil
	}
	// A PATH entry may be a link into the version's directory, which
	// holds the other binaries.
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Dir(real), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	major := func(d string) int { n, _ := strconv.Atoi(filepath.Base(filepath.Dir(d))); return n }
	sort.Slice(dirs, func(i, j int) bool { return major(dirs[i]) > major(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("PostgreSQL server binaries (initdb, pg_ctl) not found: install them with " +
		"`apt-get install -y postgresql` (scripts/install-deps.sh does) or set LLMPROXY_POSTGRES_BIN")
}

// StartPostgres starts a new cluster for the test, or fails it.
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	bin, err := PostgresBin()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp(tempRoot(), "llmproxy-pg-")
	if err != nil {
		t.Fatal(err)
	}
	p := &Postgres{dir: dir, bin: bin}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if os.Geteuid() == 0 {
		u, err := user.Lookup("nobody")
		if err != nil {
			t.Fatalf("running as root and no user nobody to run PostgreSQL as: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		p.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	data := filepath.Join(dir, "data")
	if out, err := p.Run("initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	var port int
	if _, err := fmt.Sscanf(FreeAddr(t), "127.0.0.1:%d", &port); err != nil {
		t.Fatal(err)
	}
	opts := fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -k %s -c fsync=off -c synchronous_commit=off "+
		"-c full_page_writes=off -c shared_buffers=16MB -c max_connections=100", port, dir)
	if out, err := p.Run("pg_ctl", "-D", data, "-l", filepath.Join(dir, "server.log"), "-w", "-t", "60", "-o", opts, "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "server.log"))
		t.Fatalf("pg_ctl start: %v\n%s\n%s", err, out, log)
	}
	t.Cleanup(func() { p.Run("pg_ctl", "-D", data, "-m", "immediate", "-w", "stop") })
	p.Port = port
	p.URL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	return p
}

// Run runs one of the cluster's binaries (initdb, pg_ctl, psql …) as the
// cluster's user and returns its combined output.
func (p *Postgres) Run(name string, args ...string) ([]byte, error) {
	return p.Command(name, args...).CombinedOutput()
}

// Command returns a command running one of the cluster's binaries as the
// cluster's user.
func (p *Postgres) Command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(p.bin, name), args...)
	cmd.Dir = p.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if p.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	}
	return cmd
}

// SQL runs statements with psql in one session and returns its output.
func (p *Postgres) SQL(statements string) ([]byte, error) {
	return p.Run("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", strconv.Itoa(p.Port), "-U", "postgres",
		"-d", "postgres", "-c", statements)
}

// tempRoot is where the cluster's directory is made: the usual temporary
// directory, or /tmp under root, whose server runs as nobody and must
// reach the directory (a private $TMPDIR would not let it).
func tempRoot() string {
	if os.Geteuid() == 0 {
		return "/tmp"
	}
	return os.TempDir()
}
