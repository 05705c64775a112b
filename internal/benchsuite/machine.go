package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// machineInfo names the machine the numbers come from.
type machineInfo struct {
	CPUModel   string // /proc/cpuinfo "model name"
	Cores      int    // /proc/cpuinfo "processor" lines
	GOMAXPROCS int
	MemTotal   uint64 // bytes
	Kernel     string // /proc/sys/kernel/osrelease
	OS         string // /etc/os-release PRETTY_NAME
	Go         string // of the suite, which is the toolchain that built bin/chargemq under make
	Chargemq   string // bin/chargemq version, first line
	Mosquitto  string // mosquitto -h, first line
	NoFileHard uint64 // the suite's hard open-file limit
	LoadStart  string // /proc/loadavg, 1, 5 and 15 minutes
	LoadEnd    string
}

// readMachine gathers machineInfo; what cannot be read is left "unknown".
func readMachine(ctx context.Context, chargemqBin, mosquittoBin string) machineInfo {
	m := machineInfo{CPUModel: "unknown", Kernel: "unknown", OS: "unknown", GOMAXPROCS: runtime.GOMAXPROCS(0),
		Go: runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		m.CPUModel, m.Cores = parseCPUInfo(b)
	}
	if m.Cores == 0 {
		m.Cores = runtime.NumCPU()
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		m.MemTotal, _ = parseStatusBytes(b, "MemTotal")
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
				m.OS = strings.Trim(v, `"`)
			}
		}
	}
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil {
		m.NoFileHard = l.Max
	}
	m.Chargemq = firstLine(ctx, chargemqBin, "version")
	m.Mosquitto = firstLine(ctx, mosquittoBin, "-h") // prints its version, exits 3
	m.LoadStart = loadAverage()
	return m
}

// parseCPUInfo returns the first model name and the number of processors in /proc/cpuinfo.
func parseCPUInfo(b []byte) (model string, cores int) {
	model = "unknown"
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "processor":
			cores++
		case "model name":
			if model == "unknown" {
				model = strings.TrimSpace(v)
			}
		}
	}
	return model, cores
}

// firstLine runs bin with args (for at most 5 s) and returns the first line it printed, or
// "unknown".
func firstLine(ctx context.Context, bin string, args ...string) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	line, _, _ := bytes.Cut(bytes.TrimSpace(out), []byte("\n"))
	if len(line) == 0 {
		return "unknown"
	}
	return string(line)
}

// loadAverage returns the 1, 5 and 15 minute load averages as "1.10 0.90 0.80".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// summary is the machine in one paragraph of markdown.
func (m machineInfo) summary() string {
	return fmt.Sprintf("%s (`/proc/cpuinfo` model name), %d cores, GOMAXPROCS %d, %.1f GiB RAM; Linux %s (%s); %s; "+
		"`%s`; `%s`; open files: hard limit %s per process",
		m.CPUModel, m.Cores, m.GOMAXPROCS, float64(m.MemTotal)/(1<<30), m.Kernel, m.OS, m.Go, m.Chargemq, m.Mosquitto,
		thousands(int64(m.NoFileHard)))
}
