package broker

import (
	"context"
	"log/slog"
	"sync/atomic"
)

// mochiLogHandler is the handler of mochi's logger. It keeps an
// operator's log readable under abuse:
//
//   - mochi logs every publish a hook refuses as an ERROR, with the whole
//     packet, payload included; for the gateway those are a client's bad
//     commands, already logged by the bridge with the charge point id and
//     the reason, and answered on the wire. They are demoted to DEBUG.
//   - mochi logs a WARN for every message it drops for a session whose
//     store is full, so one slow or absent subscriber would write a line
//     per message. Those are sampled: the first few, then one in
//     logEvery, with the running count (every drop is counted in
//     Stats.MQTTDropped regardless).
//
// Everything else passes unchanged.
type mochiLogHandler struct {
	slog.Handler
	sampled *[len(sampledMochiMessages)]atomic.Uint64
}

func newMochiLogHandler(h slog.Handler) mochiLogHandler {
	return mochiLogHandler{Handler: h, sampled: new([len(sampledMochiMessages)]atomic.Uint64)}
}

// demoted names the mochi messages that are client mistakes, not errors.
func demoted(msg string) bool { return msg == "publish packet error" }

// sampledMochiMessages are mochi's lines written once per message.
var sampledMochiMessages = [...]string{"client store quota reached", "packet ids exhausted"}

// Handle implements slog.Handler.
func (h mochiLogHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError && demoted(r.Message) {
		if !h.Handler.Enabled(ctx, slog.LevelDebug) {
			return nil
		}
		r.Level = slog.LevelDebug
	}
	for i, m := range sampledMochiMessages {
		if r.Message != m {
			continue
		}
		n := h.sampled[i].Add(1)
		if n > logFirst && n%logEvery != 0 {
			if !h.Handler.Enabled(ctx, slog.LevelDebug) {
				return nil
			}
			r.Level = slog.LevelDebug
		}
		r.AddAttrs(slog.Uint64("so_far", n))
	}
	return h.Handler.Handle(ctx, r)
}

// Enabled implements slog.Handler; Handle drops a demoted record the
// wrapped handler would not take at DEBUG.
func (h mochiLogHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.Handler.Enabled(ctx, l)
}

// WithAttrs implements slog.Handler.
func (h mochiLogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return mochiLogHandler{h.Handler.WithAttrs(as), h.sampled}
}

// WithGroup implements slog.Handler.
func (h mochiLogHandler) WithGroup(name string) slog.Handler {
	return mochiLogHandler{h.Handler.WithGroup(name), h.sampled}
}
