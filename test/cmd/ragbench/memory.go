package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// memory is what /proc/<pid>/status says about a process's resident set.
type memory struct {
	// RSS is the current resident set (VmRSS), HWM its peak so far
	// (VmHWM), both in bytes.
	RSS, HWM int64
}

// readMemory reads VmRSS and VmHWM of pid. It needs Linux's /proc.
func readMemory(pid int) (memory, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}, fmt.Errorf("read memory of pid %d (needs Linux /proc): %w", pid, err)
	}
	defer f.Close()
	var m memory
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		fields := strings.Fields(value)
		if len(fields) != 2 || fields[1] != "kB" {
			return memory{}, fmt.Errorf("pid %d: unexpected %s line %q", pid, name, sc.Text())
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return memory{}, fmt.Errorf("pid %d: %s: %w", pid, name, err)
		}
		if name == "VmRSS" {
			m.RSS = kb << 10
		} else {
			m.HWM = kb << 10
		}
	}
	if err := sc.Err(); err != nil {
		return memory{}, fmt.Errorf("read memory of pid %d: %w", pid, err)
	}
	if m.HWM == 0 {
		return memory{}, fmt.Errorf("pid %d: no VmHWM in /proc/%d/status", pid, pid)
	}
	return m, nil
}
