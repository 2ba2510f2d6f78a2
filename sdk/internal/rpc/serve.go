package rpc

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/llmproxy/llmproxy/sdk/internal/tracing"
	"github.com/llmproxy/llmproxy/sdk/profile"
)

var logger = hclog.New(&hclog.LoggerOptions{
	Name:       "plugin",
	Level:      hclog.LevelFromString(os.Getenv("LLMPROXY_LOG_LEVEL")),
	Output:     os.Stderr,
	JSONFormat: true,
})

// Logger is the plugin-side logger: hclog JSON on stderr, which the host
// parses and merges into its own log by level.
func Logger() hclog.Logger { return logger }

// Serve runs one plugin service until the host goes away. It never returns
// normally: go-plugin exits the process when the host closes it, and a
// watcher exits it when the host dies without closing it.
func Serve(name string, p goplugin.Plugin) {
	tuneGC()
	profile.FromEnv(os.Args[0])
	go watchParent(os.Getppid())
	if flush, err := tracing.Setup(context.Background()); err != nil {
		logger.Warn("tracing is off: the OTLP exporter could not start", "error", err)
	} else if flush != nil {
		OnExit(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			flush(ctx)
		})
	}
	goplugin.Serve(&goplugin.ServeConfig{
		HandshakeConfig: Handshake,
		VersionedPlugins: map[int]goplugin.PluginSet{
			ProtocolVersion: {name: p},
		},
		Logger: logger,
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			opts = append(opts,
				grpc.MaxRecvMsgSize(MaxMessageBytes),
				grpc.MaxSendMsgSize(MaxMessageBytes),
				grpc.InitialWindowSize(4<<20),
				grpc.InitialConnWindowSize(16<<20),
				grpc.ReadBufferSize(64<<10),
				grpc.WriteBufferSize(64<<10),
				grpc.SharedWriteBuffer(true),
				grpc.NumStreamWorkers(uint32(runtime.GOMAXPROCS(0))),
				grpc.ChainUnaryInterceptor(recoverUnary, acceptUnary),
				grpc.ChainStreamInterceptor(recoverStream, acceptStream),
				grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
					MinTime:             KeepaliveTime / 2,
					PermitWithoutStream: true,
				}),
			)
			return grpc.NewServer(opts...)
		},
	})
	runExitHooks()
	os.Exit(0)
}

var (
	exitMu    sync.Mutex
	exitHooks []func()
)

// OnExit registers f to run when the plugin exits normally or because the
// host went away.
func OnExit(f func()) {
	exitMu.Lock()
	defer exitMu.Unlock()
	exitHooks = append(exitHooks, f)
}

func runExitHooks() {
	exitMu.Lock()
	defer exitMu.Unlock()
	for _, f := range exitHooks {
		f()
	}
	exitHooks = nil
}

// DefaultGOGC is the garbage collector target of plugins (and the host)
// unless GOGC says otherwise: request handling allocates short-lived
// buffers, and trading some memory for fewer collections pays for itself.
const DefaultGOGC = 400

// tuneGC applies DefaultGOGC when GOGC is not set.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(DefaultGOGC)
	}
}

// watchParent exits the plugin when its parent process changes, i.e. the
// host died (even by SIGKILL) and the plugin was re-parented.
func watchParent(ppid int) {
	for range time.Tick(200 * time.Millisecond) {
		if os.Getppid() != ppid {
			logger.Warn("host process is gone; exiting", "host_pid", ppid)
			runExitHooks()
			os.Exit(2)
		}
	}
}

func recoverUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = Recovered(info.FullMethod, r)
		}
	}()
	return h(ctx, req)
}

func recoverStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = Recovered(info.FullMethod, r)
		}
	}()
	return h(srv, ss)
}

// Recovered logs a panic recovered while serving method, with its stack,
// and returns the Internal status the host turns into 500 plugin_error.
// Every transport (gRPC and the data path) recovers through it, so a
// panicking call costs that call only.
func Recovered(method string, r any) error {
	logger.Error("plugin panicked", "method", method, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
	return status.Errorf(codes.Internal, "plugin panicked in %s: %v", method, r)
}
