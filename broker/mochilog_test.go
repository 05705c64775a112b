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
		log := slog.New(newMochiLogHandler(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: tc.level}))).With("component", "mqtt")
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

// TestMochiLogHandlerSamplesPerMessageWarnings: mochi's line per dropped
// message is written ten times and then once in a thousand.
func TestMochiLogHandlerSamplesPerMessageWarnings(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := slog.New(newMochiLogHandler(slog.NewTextHandler(&buf, nil))).With("component", "mqtt")
	for range 2500 {
		log.Warn("client store quota reached", "client", "slow")
	}
	if n := strings.Count(buf.String(), "client store quota reached"); n != 12 {
		t.Fatalf("%d lines for 2,500 drops, want 12 (10 + the 1000th and 2000th)", n)
	}
	if !strings.Contains(buf.String(), "so_far=2000") {
		t.Fatalf("no running count in %q", buf.String())
	}
}
