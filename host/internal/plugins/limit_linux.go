package plugins

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// limitProcess caps a started process: its address space at what it
// has mapped now plus memory bytes (the Go runtime reserves address
// space up front, so a fixed cap would count that too), and its CPU time
// at cpuHard seconds.
func limitProcess(pid int, memory, cpuHard uint64) error {
	vm, err := vmSize(pid)
	if err != nil {
		return err
	}
	as := unix.Rlimit{Cur: vm + memory, Max: vm + memory}
	if err := unix.Prlimit(pid, unix.RLIMIT_AS, &as, nil); err != nil {
		return fmt.Errorf("RLIMIT_AS: %w", err)
	}
	return limitCPU(pid, cpuHard, cpuHard)
}

// limitCPU sets a process's CPU-time limits in seconds. At the soft
// limit the kernel sends SIGXCPU (extractor.Serve exits on it), at the
// hard limit SIGKILL.
func limitCPU(pid int, soft, hard uint64) error {
	cpu := unix.Rlimit{Cur: soft, Max: hard}
	if err := unix.Prlimit(pid, unix.RLIMIT_CPU, &cpu, nil); err != nil {
		return fmt.Errorf("RLIMIT_CPU: %w", err)
	}
	return nil
}

// userHZ is the unit of the CPU times in /proc/<pid>/stat; Linux fixes
// it at 100 for user space.
const userHZ = 100

// cpuSeconds returns the CPU time (user and system) a process has used,
// in whole seconds rounded up.
func cpuSeconds(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces and parentheses; fields are
	// counted after its closing parenthesis.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	return (utime + stime + userHZ - 1) / userHZ, nil
}

// vmSize returns a process's mapped address space in bytes.
func vmSize(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmSize:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("malformed VmSize in /proc/%d/status", pid)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmSize in /proc/%d/status", pid)
}
