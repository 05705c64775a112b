package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// errProcFormat is returned when a /proc file does not have the expected shape.
var errProcFormat = errors.New("benchsuite: unexpected /proc format")

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat. It is 100 on every
// Linux architecture Go supports (sysconf(_SC_CLK_TCK) would need cgo); one tick is 10 ms, so
// a measured window must hold seconds of CPU for the figure to mean anything.
const clockTicks = 100

// cpuTimes is the CPU a process has used, user and system, all threads together.
type cpuTimes struct {
	User, System time.Duration
}

// Total is user plus system time.
func (c cpuTimes) Total() time.Duration { return c.User + c.System }

// Sub returns c − o.
func (c cpuTimes) Sub(o cpuTimes) cpuTimes {
	return cpuTimes{User: c.User - o.User, System: c.System - o.System}
}

// parseStat reads utime and stime (fields 14 and 15, proc(5)) from the contents of
// /proc/<pid>/stat. The command name (field 2) is in parentheses and may itself hold spaces
// and parentheses, so the fields are counted from after its last ')'.
func parseStat(b []byte) (cpuTimes, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return cpuTimes{}, fmt.Errorf("%w: stat has no command name", errProcFormat)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state), so field n is f[n-3].
	if len(f) < 13 {
		return cpuTimes{}, fmt.Errorf("%w: stat has %d fields after the command name, want at least 13", errProcFormat, len(f))
	}
	utime, err1 := strconv.ParseUint(f[14-3], 10, 64)
	stime, err2 := strconv.ParseUint(f[15-3], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return cpuTimes{}, fmt.Errorf("%w: stat utime/stime: %v", errProcFormat, err)
	}
	tick := time.Second / clockTicks
	return cpuTimes{User: time.Duration(utime) * tick, System: time.Duration(stime) * tick}, nil
}

// parseStatusBytes returns the value of a "kB" line of /proc/<pid>/status (VmRSS, VmHWM, …) in
// bytes.
func parseStatusBytes(b []byte, key string) (uint64, error) {
	for _, line := range strings.Split(string(b), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok || name != key {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("%w: status %s: %q", errProcFormat, key, rest)
		}
		kb, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%w: status %s: %v", errProcFormat, key, err)
		}
		return kb * 1024, nil
	}
	return 0, fmt.Errorf("%w: status has no %s line", errProcFormat, key)
}

// procPath is /proc/<pid>/<name>; pid 0 means this process (/proc/self).
func procPath(pid int, name string) string {
	if pid == 0 {
		return "/proc/self/" + name
	}
	return "/proc/" + strconv.Itoa(pid) + "/" + name
}

// readCPU returns the CPU time process pid (0: this process) has used so far.
func readCPU(pid int) (cpuTimes, error) {
	b, err := os.ReadFile(procPath(pid, "stat"))
	if err != nil {
		return cpuTimes{}, err
	}
	return parseStat(b)
}

// readRSS returns the resident set size (VmRSS) of process pid in bytes.
func readRSS(pid int) (uint64, error) {
	b, err := os.ReadFile(procPath(pid, "status"))
	if err != nil {
		return 0, err
	}
	return parseStatusBytes(b, "VmRSS")
}

// countFDs returns how many file descriptors process pid has open.
func countFDs(pid int) (int, error) {
	entries, err := os.ReadDir(procPath(pid, "fd"))
	if err != nil {
		return 0, err
	}
	return len(entries), nil
}
