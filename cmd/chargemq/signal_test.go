package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"syscall"
	"testing"
	"time"
)

// TestShutdownOnSignal sends real signals to the test process. It is not
// parallel: it runs while parallel tests wait, and the handler is installed
// before the first signal and released only after the second is handled, so
// neither can reach the default (fatal) disposition.
func TestShutdownOnSignal(t *testing.T) {
	var logs bytes.Buffer
	codes := make(chan int, 1)
	ctx, stop := shutdownOnSignal(context.Background(), slog.New(slog.NewTextHandler(&logs, nil)), func(code int) { codes <- code })
	defer stop()

	deadline := time.After(10 * time.Second)
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ctx.Done():
	case <-deadline:
		t.Fatal("first signal did not cancel the context")
	}
	select {
	case code := <-codes:
		t.Fatalf("exit(%d) after the first signal", code)
	default:
	}

	if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-codes:
		if code != 128+int(syscall.SIGINT) {
			t.Errorf("exit code = %d, want %d", code, 128+int(syscall.SIGINT))
		}
	case <-deadline:
		t.Fatal("second signal did not exit")
	}
	stop()
	if !bytes.Contains(logs.Bytes(), []byte("shutting down")) || !bytes.Contains(logs.Bytes(), []byte("second signal")) {
		t.Errorf("logs = %q", logs.String())
	}
}

// TestShutdownOnSignalStop checks that stop without a signal cancels the
// context and returns (the watcher goroutine ends).
func TestShutdownOnSignalStop(t *testing.T) {
	t.Parallel()
	ctx, stop := shutdownOnSignal(context.Background(), slog.New(slog.DiscardHandler), func(code int) { t.Errorf("exit(%d)", code) })
	stop()
	stop() // idempotent
	if ctx.Err() == nil {
		t.Error("context not cancelled by stop")
	}
}
