package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// tailLines is how many of a child's last log lines are shown to explain a failure.
const tailLines = 40

// child is a server process the suite started (chargemq or Mosquitto). Its owner must call
// stop, on every path: a deferred stop after a successful start is the rule. The child also
// gets SIGKILL from the kernel when the suite dies without running its defers (Pdeathsig), so
// no server outlives a crashed or killed suite.
//
// Its stderr goes to a file, not a pipe: a pipe that the suite (busy running thousands of
// charge points) drains late would block the server's logging, and with it every handshake
// that logs, which would measure the suite instead of the server.
type child struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed once the process has been waited for

	mu      sync.Mutex
	waitErr error // Wait's result, set before done is closed
}

// startChild starts cmd with stdout discarded and stderr written to logPath. A goroutine waits
// for the process; it ends when the process does.
func startChild(name string, cmd *exec.Cmd, logPath string) (*child, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the child has its own copy
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stdin = nil
	cmd.Stdout = nil // /dev/null
	cmd.Stderr = f
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		c.mu.Lock()
		c.waitErr = err
		c.mu.Unlock()
		close(c.done)
	}()
	return c, nil
}

// pid is the process id.
func (c *child) pid() int { return c.cmd.Process.Pid }

// exited reports whether the process has ended, and how.
func (c *child) exited() (bool, error) {
	select {
	case <-c.done:
		c.mu.Lock()
		defer c.mu.Unlock()
		return true, c.waitErr
	default:
		return false, nil
	}
}

// alive returns an error naming the child and its last log lines when it has exited.
func (c *child) alive() error {
	if gone, err := c.exited(); gone {
		return fmt.Errorf("%s (pid %d) exited during the run (%v); its last lines:\n%s", c.name, c.pid(), err, c.logTail())
	}
	return nil
}

// logTail returns the last lines of the child's log, indented.
func (c *child) logTail() string {
	b, err := os.ReadFile(c.logPath)
	if err != nil {
		return "    (" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > tailLines {
		lines = lines[len(lines)-tailLines:]
	}
	return "    " + strings.Join(lines, "\n    ")
}

// stop ends the process: SIGTERM, and SIGKILL when it has not exited within grace. It returns
// once the process has been waited for; calling it again is harmless.
func (c *child) stop(grace time.Duration) {
	select {
	case <-c.done:
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-c.done:
		return
	case <-t.C:
	}
	fmt.Fprintf(os.Stderr, "benchsuite: %s (pid %d) did not stop within %s after SIGTERM: killing it\n", c.name, c.pid(), grace)
	_ = c.cmd.Process.Kill()
	<-c.done
}
