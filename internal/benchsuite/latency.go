package main

import (
	"context"
	"fmt"
	"time"

	"github.com/chargemq/chargemq/internal/sim"
)

// latencyConfig is scenario 2: round trips CP → gateway → MQTT responder → gateway → CP.
type latencyConfig struct {
	CPs      int
	Rates    []float64     // calls per second in total, one run each
	Duration time.Duration // the sim's steady phase
}

// latencyResult is one rate's run.
type latencyResult struct {
	Rate      float64
	CPs       int
	Report    sim.Report
	ServerCPU time.Duration // over the whole sim run
	Wall      time.Duration
	// Baseline is the plain-MQTT round trip at the same rate, measured right after on a fresh
	// server: what the box and the load generator allow without OCPP.
	Baseline mqttRTTResult
}

// baselineRatio is the OCPP steady p99 over the baseline's, "–" when the baseline has none.
func (l latencyResult) baselineRatio() string {
	if l.Baseline.Err != nil || l.Baseline.Answered == 0 {
		return "–"
	}
	return ratio(l.Report.Upstream.SteadyLatency.P99, l.Baseline.P99)
}

// reached says whether the answered rate was within 1 % of the target.
func (l latencyResult) reached() bool { return l.Report.Upstream.AnsweredPerSecond >= 0.99*l.Rate }

// runLatency runs the sim with its MQTT responder at each rate, on a fresh server each, and
// after each the plain-MQTT round-trip baseline at the same rate, on another fresh server.
func (b *bench) runLatency(ctx context.Context) ([]latencyResult, error) {
	cfg := b.cfg.Latency
	var out []latencyResult
	for _, rate := range cfg.Rates {
		b.logf("latency: %d charge points, %g calls/s, %s steady, with the MQTT responder", cfg.CPs, rate, cfg.Duration)
		r, err := b.latencyRun(ctx, rate)
		if err != nil {
			return nil, fmt.Errorf("latency at %g/s: %w", rate, err)
		}
		u := r.Report.Upstream
		b.logf("  answered %.1f/s, steady p50 %.3f p90 %.3f p99 %.3f max %.3f ms, timed out %d, skipped %d",
			u.AnsweredPerSecond, u.SteadyLatency.P50, u.SteadyLatency.P90, u.SteadyLatency.P99, u.SteadyLatency.Max, u.TimedOut, u.Skipped)
		b.logf("latency: plain MQTT round-trip baseline: %d requesters and one responder, %g requests/s, %s window", cfg.CPs, rate, cfg.Duration)
		r.Baseline, err = b.mqttRTTRun(ctx, rate)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if m := r.Baseline; err != nil {
			// The OCPP row still stands; the table says why its baseline is missing.
			r.Baseline.Err = err
			b.logf("  baseline failed: %v", err)
		} else {
			b.logf("  answered %.1f/s, p50 %.3f p90 %.3f p99 %.3f max %.3f ms, timed out %d, skipped %d, server %.2f cores",
				m.AnsweredPerSecond, m.P50, m.P90, m.P99, m.Max, m.TimedOut, m.Skipped, m.cores())
		}
		out = append(out, r)
	}
	return out, nil
}

func (b *bench) latencyRun(ctx context.Context, rate float64) (latencyResult, error) {
	cfg := b.cfg.Latency
	s, err := b.startServer(ctx)
	if err != nil {
		return latencyResult{}, err
	}
	defer s.stop(stopGrace)
	opts := sim.DefaultOptions()
	opts.URL = "ws://" + s.OCPP + "/ocpp"
	opts.MQTTURL = "mqtt://" + s.MQTT
	opts.Count = cfg.CPs
	opts.IDPrefix = "rt-"
	opts.ConnectRate = 2000
	opts.CallRate = rate
	opts.Action = sim.ActionHeartbeat
	opts.Respond = true
	opts.Duration = cfg.Duration
	c0, err := readCPU(s.pid())
	if err != nil {
		return latencyResult{}, err
	}
	t0 := time.Now()
	rep, err := sim.Run(ctx, opts, nil)
	if err != nil {
		return latencyResult{}, err
	}
	wall := time.Since(t0)
	c1, err := readCPU(s.pid())
	if err != nil {
		return latencyResult{}, err
	}
	if rep.Interrupted {
		return latencyResult{}, ctx.Err()
	}
	return latencyResult{Rate: rate, CPs: cfg.CPs, Report: rep, ServerCPU: c1.Sub(c0).Total(), Wall: wall}, s.alive()
}
