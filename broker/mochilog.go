package broker

import (
	"context"
	"log/slog"
)

// mochiLogHandler is the handler of mochi's logger. mochi logs every
// publish a hook refuses as an ERROR, with the whole packet, payload
// included; for the gateway those are a client's bad commands, already
// logged by the bridge at INFO with the charge point id and the reason,
// and answered on the wire. They are demoted to DEBUG so an operator's
// error log holds errors. Everything else passes unchanged.
type mochiLogHandler struct{ slog.Handler }

// demoted names the mochi messages that are client mistakes, not errors.
func demoted(msg string) bool { return msg == "publish packet error" }

// Handle implements slog.Handler.
func (h mochiLogHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError && demoted(r.Message) {
		if !h.Handler.Enabled(ctx, slog.LevelDebug) {
			return nil
		}
		r.Level = slog.LevelDebug
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
	return mochiLogHandler{h.Handler.WithAttrs(as)}
}

// WithGroup implements slog.Handler.
func (h mochiLogHandler) WithGroup(name string) slog.Handler {
	return mochiLogHandler{h.Handler.WithGroup(name)}
}
