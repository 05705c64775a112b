package main

import (
	"io"
	"log/slog"
	"strings"
)

// newLogger makes the process's one logger from the validated log config.
func newLogger(w io.Writer, lc LogConfig) *slog.Logger {
	level, _ := parseLogLevel(lc.Level) // validated already; info otherwise
	opts := &slog.HandlerOptions{Level: level}
	if lc.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// parseLogLevel accepts the four documented level names, in any case. It is
// stricter than slog.Level.UnmarshalText ("info+2"), which users don't need.
func parseLogLevel(s string) (slog.Level, bool) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, true
	case "info":
		return slog.LevelInfo, true
	case "warn":
		return slog.LevelWarn, true
	case "error":
		return slog.LevelError, true
	}
	return slog.LevelInfo, false
}
