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
}

// reached says whether the answered rate was within 1 % of the target.
func (l latencyResult) reached() bool { return l.Report.Upstream.AnsweredPerSecond >= 0.99*l.Rate }

// runLatency runs the sim with its MQTT responder at each rate, on a fresh server each.
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
