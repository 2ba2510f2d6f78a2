//go:build !linux

package harness

import "os/exec"

// bindToCaller has no parent-death signal to use outside Linux.
func bindToCaller(*exec.Cmd) {}
