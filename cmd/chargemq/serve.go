package main

import (
	"context"
	"log/slog"
)

// serve runs the broker with cfg until ctx is cancelled. It is owned by the
// wiring work (broker package); config loading lives in config.go.
func serve(ctx context.Context, cfg Config, log *slog.Logger) error {
	<-ctx.Done()
	return nil
}
