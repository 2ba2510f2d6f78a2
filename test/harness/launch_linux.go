package harness

import (
	"os/exec"
	"syscall"
)

// bindToCaller makes the kernel kill a child when the caller dies, so that
// no process outlives an interrupted run.
func bindToCaller(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
