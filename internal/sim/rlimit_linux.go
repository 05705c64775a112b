//go:build linux

package sim

import "syscall"

// raiseOpenFileLimit raises the soft limit on open files to the hard limit, since every
// simulated charge point holds a socket and the usual soft limit (1,024) is far below a load
// test's count. Go has done the same at start-up since 1.19; doing it here as well makes the
// limit explicit and reportable. It returns the limits in force afterwards.
func raiseOpenFileLimit() (soft, hard uint64, err error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, 0, err
	}
	if l.Cur < l.Max {
		raised := l
		raised.Cur = raised.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
			return l.Cur, l.Max, err
		}
		l = raised
	}
	return l.Cur, l.Max, nil
}
