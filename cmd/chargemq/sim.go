package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/chargemq/chargemq/internal/sim"
)

// simCommand is `chargemq sim`: charge point simulator and load generator (docs/sim.md). The
// work is in internal/sim; this file maps flags onto sim.Options and prints the Report.
func (p *program) simCommand() *cli.Command {
	def := sim.DefaultOptions()
	rate := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) + "/s" }
	return &cli.Command{
		Name:  "sim",
		Usage: "simulate OCPP 1.6 charge points against a running gateway (demos, load tests)",
		Description: "Connects --count charge points to --url, has them call at --call-rate in total, and\n" +
			"prints a summary: connections, calls sent/answered/timed out, throughput and latency\n" +
			"per direction. --respond answers the calls from MQTT; --command-rate sends commands\n" +
			"from MQTT for the charge points to answer. A progress line goes to stderr once a\n" +
			"second when stderr is a terminal. Exit status 1 only when the run cannot start.\n" +
			"See docs/sim.md.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "url", Value: def.URL, Usage: "gateway OCPP endpoint; the charge point id is appended"},
			&cli.IntFlag{Name: "count", Value: def.Count, Usage: "number of charge points"},
			&cli.StringFlag{Name: "id-prefix", Value: def.IDPrefix, Usage: "charge point ids are PREFIX0001, PREFIX0002, …"},
			&cli.StringFlag{Name: "connect-rate", Value: rate(def.ConnectRate), Usage: "charge points dialled per second (0: all at once)"},
			&cli.DurationFlag{Name: "duration", Value: def.Duration, Usage: "steady phase, after every charge point has been dialled"},
			&cli.StringFlag{Name: "call-rate", Value: rate(def.CallRate), Usage: "calls per second over all charge points (0: idle, BootNotification and heartbeats only)"},
			&cli.StringFlag{Name: "action", Value: def.Action, Usage: "Heartbeat, StatusNotification, MeterValues, BootNotification or DataTransfer"},
			&cli.IntFlag{Name: "payload-bytes", Usage: "send DataTransfer calls with payloads of exactly this size instead of --action"},
			&cli.BoolFlag{Name: "respond", Usage: "answer every call from MQTT (subscribes to ocpp/cp/+), so calls complete CP→MQTT→CP"},
			&cli.StringFlag{Name: "mqtt-url", Usage: "MQTT broker for --respond and --command-rate: mqtt://HOST:1883, or mqtts://HOST:8883 over TLS", DefaultText: "mqtt://<host of --url>:1883"},
			&cli.StringFlag{Name: "command-rate", Value: "0", Usage: "Reset commands per second published on MQTT for the charge points to answer"},
			&cli.DurationFlag{Name: "timeout", Value: def.Timeout, Usage: "how long a call waits for its answer; also bounds dials and writes"},
			&cli.DurationFlag{Name: "heartbeat-interval", Value: def.HeartbeatInterval, Usage: "interval the responder's BootNotification answer gives"},
			&cli.StringFlag{Name: "username", Usage: "charge points' HTTP Basic username; {cid} is the charge point id", DefaultText: "the charge point id, when --password is set"},
			&cli.StringFlag{Name: "password", Usage: "charge points' HTTP Basic password (key); {cid} is the charge point id, e.g. key-{cid}", EnvVars: []string{"CHARGEMQ_SIM_PASSWORD"}},
			&cli.StringFlag{Name: "mqtt-username", Usage: "MQTT username of the responder and the command publisher"},
			&cli.StringFlag{Name: "mqtt-password", Usage: "MQTT password of the responder and the command publisher", EnvVars: []string{"CHARGEMQ_SIM_MQTT_PASSWORD"}},
			&cli.StringFlag{Name: "tls-ca", Usage: "PEM file of the CA certificates that verify a wss:// gateway and an mqtts:// broker", DefaultText: "the system's roots"},
			&cli.StringFlag{Name: "tls-cert", Usage: "charge points' client certificate, PEM (OCPP security profile 3, wss:// only); {cid} is the charge point id, e.g. certs/{cid}.crt"},
			&cli.StringFlag{Name: "tls-key", Usage: "key of --tls-cert, PEM; {cid} is the charge point id, e.g. certs/{cid}.key"},
			&cli.StringFlag{Name: "tls-server-name", Usage: "name the gateway's certificate is verified against and sent as SNI", DefaultText: "the host of --url"},
			&cli.BoolFlag{Name: "tls-insecure-skip-verify", Usage: "accept any server certificate, the gateway's and the broker's: lab use only, never against anything real"},
			&cli.StringFlag{Name: "mqtt-tls-cert", Usage: "client certificate, PEM, of the responder and the command publisher on an mqtts:// --mqtt-url"},
			&cli.StringFlag{Name: "mqtt-tls-key", Usage: "key of --mqtt-tls-cert, PEM"},
			&cli.BoolFlag{Name: "json", Usage: "print the summary as one JSON object"},
		},
		Action: p.simAction,
	}
}

// simAction runs the simulation until it ends or the first SIGINT/SIGTERM (the summary is
// printed either way) and prints the report.
func (p *program) simAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("sim: unexpected argument %q (see chargemq sim --help)", c.Args().First())
	}
	opts, err := simOptions(c)
	if err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	log := slog.New(slog.NewTextHandler(p.stderr, nil))
	ctx, stop := shutdownOnSignal(c.Context, log, p.exit)
	defer stop()

	var progress io.Writer
	if isTerminal(p.stderr) {
		progress = p.stderr
	}
	rep, err := sim.Run(ctx, opts, progress)
	if err != nil {
		return err // sim's errors say "sim: …"
	}
	if c.Bool("json") {
		return json.NewEncoder(p.stdout).Encode(rep)
	}
	return rep.WriteText(p.stdout)
}

// simOptions maps the flags onto sim.Options; sim.Run validates the values.
func simOptions(c *cli.Context) (sim.Options, error) {
	o := sim.DefaultOptions()
	o.URL = c.String("url")
	o.Count = c.Int("count")
	o.IDPrefix = c.String("id-prefix")
	o.Duration = c.Duration("duration")
	o.Action = c.String("action")
	o.PayloadBytes = c.Int("payload-bytes")
	o.Respond = c.Bool("respond")
	o.MQTTURL = c.String("mqtt-url")
	o.Timeout = c.Duration("timeout")
	o.HeartbeatInterval = c.Duration("heartbeat-interval")
	o.Username, o.Password = c.String("username"), c.String("password")
	o.MQTTUsername, o.MQTTPassword = c.String("mqtt-username"), c.String("mqtt-password")
	o.TLSCA = c.String("tls-ca")
	o.TLSCert, o.TLSKey = c.String("tls-cert"), c.String("tls-key")
	o.TLSServerName = c.String("tls-server-name")
	o.TLSInsecureSkipVerify = c.Bool("tls-insecure-skip-verify")
	o.MQTTTLSCert, o.MQTTTLSKey = c.String("mqtt-tls-cert"), c.String("mqtt-tls-key")
	var err error
	for _, f := range []struct {
		name string
		dst  *float64
	}{{"connect-rate", &o.ConnectRate}, {"call-rate", &o.CallRate}, {"command-rate", &o.CommandRate}} {
		if *f.dst, err = parseRate(c.String(f.name)); err != nil {
			return o, fmt.Errorf("--%s: %w", f.name, err)
		}
	}
	return o, nil
}

// parseRate reads a rate per second written "500" or "500/s".
func parseRate(s string) (float64, error) {
	v, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(s), "/s"), 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, fmt.Errorf("%q: want a rate per second such as 100 or 100/s", s)
	}
	return v, nil
}

// isTerminal reports whether w is a character device (a terminal), where a progress line a
// second helps a person; in a pipe or a CI log it would only be noise.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
