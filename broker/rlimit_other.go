//go:build !unix

package broker

// openFileLimit reports no limit where it cannot be read.
func openFileLimit() int64 { return 0 }
