package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/chargemq/chargemq/broker/users"
	"github.com/chargemq/chargemq/internal/sim"
)

// stormCount is the depot of the reconnect storm: after a power cut the
// box and every charger come back together, so a cold process meets
// stormCount handshakes at once, each with its own key (issue target: all
// admitted within 10 s of the start).
const stormCount = 2000

// stormResult is one reconnect storm.
type stormResult struct {
	N         int
	Admitted  int64         // connected when the storm settled
	Elapsed   time.Duration // process start → every charge point connected
	ServerCPU time.Duration
	Report    sim.Report
	Refused   map[string]uint64
}

// stormKey is a charge point's key in the storm's users file.
func stormKey(cid string) string { return "key-" + cid + "-0123456789abcdef" }

// runStorm provisions stormCount charge points, each with its own key,
// starts a fresh server with that users file, and dials them all at once.
func (b *bench) runStorm(ctx context.Context) ([]stormResult, error) {
	path := filepath.Join(b.dir, "storm-users.yaml")
	var csv strings.Builder
	opts := sim.DefaultOptions()
	opts.Count = stormCount
	opts.IDPrefix = "storm-"
	width := len(fmt.Sprint(stormCount))
	for i := 1; i <= stormCount; i++ {
		cid := fmt.Sprintf("%s%0*d", opts.IDPrefix, width, i)
		fmt.Fprintf(&csv, "%s,%s,chargepoint\n", cid, stormKey(cid))
	}
	// With a users file the admin API wants an admin's credentials, and
	// the suite counts the admitted charge points through it.
	admin := [2]string{"storm-admin", stormKey("storm-admin")}
	fmt.Fprintf(&csv, "%s,%s,admin\n", admin[0], admin[1])
	os.Remove(path)
	if _, _, err := users.Import(path, strings.NewReader(csv.String()), users.DefaultCost); err != nil {
		return nil, fmt.Errorf("provisioning the storm's users: %w", err)
	}

	t0 := time.Now()
	s, err := b.startServer(ctx, "--users-file", path)
	if err != nil {
		return nil, err
	}
	defer s.stop(stopGrace)
	s.admin = admin
	opts.URL = "ws://" + s.OCPP + "/ocpp"
	opts.MQTTURL = "mqtt://" + s.MQTT
	opts.ConnectRate = 0 // all at once
	opts.CallRate = 0
	opts.Password = "key-{cid}-0123456789abcdef"
	opts.Duration = time.Hour // cancelled once settled
	run := simRun(ctx, opts)
	defer run.cancel()
	got, err := s.awaitSettled(ctx, stormCount, 60*time.Second, 0, run.done)
	if err != nil {
		return nil, err
	}
	r := stormResult{N: stormCount, Admitted: got, Elapsed: time.Since(t0)}
	if cpu, err := readCPU(s.pid()); err == nil {
		r.ServerCPU = cpu.Total()
	}
	if st, err := s.stats(ctx); err == nil {
		r.Refused = st.OCPP.Refused
	}
	run.cancel()
	r.Report, _ = run.wait()
	b.logf("  storm: %d of %d admitted %s after the process started", got, stormCount, r.Elapsed.Round(time.Millisecond))
	return []stormResult{r}, nil
}

// renderStorm writes the storm's table.
func renderStorm(b *strings.Builder, cfg benchConfig, res *benchResults) {
	if !cfg.runs("storm") {
		return
	}
	fmt.Fprintf(b, "### Reconnect storm with authentication\n\n%s\n\n", code(cfg.command("storm")))
	fmt.Fprintf(b, "%s charge points, each with its own key in a users file (`chargemq users import`; keys are salted "+
		"SHA-256, see [security.md](security.md#stored-passwords)), dial a server that has just been started, all at once "+
		"(connect rate 0), with HTTP Basic credentials (OCPP security profile 1). _Elapsed_ runs from the server process's "+
		"start to the moment `/api/v1/stats` counts every charge point connected. Target: all admitted within 10 s.\n\n",
		thousands(stormCount))
	if err := res.Errs["storm"]; err != nil {
		b.WriteString(notMeasured(err) + "\n")
		return
	}
	t := newTable("charge points", "admitted", "process start → all admitted", "target ≤ 10 s", "connect p50 / p99 / max ms",
		"failed dials", "refused by the server", "server CPU over the storm")
	for _, r := range res.Storm {
		met := "met"
		if r.Admitted < int64(r.N) || r.Elapsed > 10*time.Second {
			met = "**not met**"
		}
		l := r.Report.Connections.Latency
		var refused []string
		for k, n := range r.Refused {
			if n > 0 {
				refused = append(refused, fmt.Sprintf("%s %d", k, n))
			}
		}
		if len(refused) == 0 {
			refused = []string{"none"}
		}
		t.row(thousands(int64(r.N)), thousands(r.Admitted), fmt.Sprintf("%.2f s", r.Elapsed.Seconds()), met,
			fmt.Sprintf("%.0f / %.0f / %.0f", l.P50, l.P99, l.Max), thousands(r.Report.Connections.Failed),
			strings.Join(refused, ", "), fmt.Sprintf("%.2f s", r.ServerCPU.Seconds()))
	}
	b.WriteString(t.String() + "\n")
}
