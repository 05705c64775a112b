package broker

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestMochiLogHandlerDemotesRefusedPublishes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		level slog.Level
		want  []string
		not   []string
	}{
		{slog.LevelInfo, []string{"real error"}, []string{"publish packet error"}},
		{slog.LevelDebug, []string{"real error", "level=DEBUG msg=\"publish packet error\""}, nil},
	} {
		var buf bytes.Buffer
		log := slog.New(mochiLogHandler{slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: tc.level})}).With("component", "mqtt")
		log.Error("publish packet error", "error", "payload format invalid")
		log.Error("real error")
		for _, w := range tc.want {
			if !strings.Contains(buf.String(), w) {
				t.Errorf("level %s: log %q lacks %q", tc.level, buf.String(), w)
			}
		}
		for _, n := range tc.not {
			if strings.Contains(buf.String(), n) {
				t.Errorf("level %s: log %q has %q", tc.level, buf.String(), n)
			}
		}
	}
}
