//go:build unix

package broker

import "syscall"

// openFileLimit is the process's descriptor limit (Go raises the soft
// limit to the hard one at start), or 0 when it cannot be read.
func openFileLimit() int64 {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil || r.Cur > 1<<40 {
		return 0
	}
	return int64(r.Cur)
}
