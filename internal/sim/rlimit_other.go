//go:build !linux

package sim

// raiseOpenFileLimit does nothing outside Linux, where the simulator has not been measured;
// zero limits mean unknown, and the summary leaves them out.
func raiseOpenFileLimit() (soft, hard uint64, err error) { return 0, 0, nil }
