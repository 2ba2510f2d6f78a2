package plugins

import (
	"os/exec"
	"syscall"
)

// bindToHost makes the kernel kill the plugin when the host dies, even by
// SIGKILL. The SDK's parent watcher is the second line of defence.
func bindToHost(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
