//go:build !linux

package main

import "os/exec"

// setProcAttr does nothing where the kernel cannot tie a child's life to
// its parent; the benchmark stops its children itself.
func setProcAttr(*exec.Cmd) {}
