package main

import (
	"os/exec"
	"syscall"
)

// setProcAttr makes the kernel kill a child when the benchmark dies, so no
// fake, proxy or gateway outlives an interrupted run.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
