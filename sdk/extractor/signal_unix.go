//go:build unix

package extractor

import (
	"os"
	"os/signal"
	"syscall"

	"github.com/llmproxy/llmproxy/sdk/internal/rpc"
)

// exitOnCPULimit ends the process when the kernel reports that it
// reached its CPU-time soft limit (SIGXCPU), which the host sets before
// every call. The Go runtime would otherwise ignore the signal until the
// hard limit's SIGKILL.
func exitOnCPULimit() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGXCPU)
	go func() {
		<-c
		rpc.Logger().Error("CPU time limit reached; exiting")
		os.Exit(3)
	}()
}
