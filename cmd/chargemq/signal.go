package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// shutdownOnSignal returns a context that is cancelled by the first SIGINT or
// SIGTERM, so serve can drain and return; a second signal calls exit at once
// with 128+signal (the shell's convention), for an operator whose graceful
// shutdown is stuck. stop releases the signals (a later one then kills the
// process as usual) and waits for the watcher goroutine; call it when serve
// has returned.
func shutdownOnSignal(parent context.Context, log *slog.Logger, exit func(code int)) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancel(parent)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case sig := <-sigs:
			log.Info("shutting down; send the signal again to exit at once", "signal", sig.String())
			cancel()
		case <-done:
			return
		}
		select {
		case sig := <-sigs:
			log.Error("second signal: exiting without finishing shutdown", "signal", sig.String())
			exit(exitCode(sig))
		case <-done:
		}
	}()
	var once sync.Once
	return ctx, func() {
		once.Do(func() {
			signal.Stop(sigs)
			close(done)
			wg.Wait()
			cancel()
		})
	}
}

// exitCode is the status a shell reports for a process killed by sig.
func exitCode(sig os.Signal) int {
	if s, ok := sig.(syscall.Signal); ok {
		return 128 + int(s)
	}
	return 1
}
