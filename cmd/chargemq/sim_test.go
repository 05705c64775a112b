package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/chargemq/chargemq/broker"
	"github.com/chargemq/chargemq/internal/sim"
)

// The tests in this file drive the urfave/cli app and are not parallel (see main_test.go).

// startSimGateway runs the gateway in-process with every listener on 127.0.0.1:0.
func startSimGateway(t *testing.T) *broker.Broker {
	t.Helper()
	o := broker.DefaultOptions()
	o.MQTTAddr, o.MQTTWSAddr, o.OCPPAddr, o.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	o.OCPP.MaxQueue = 100
	o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	b, err := broker.New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		b.Shutdown(ctx)
	})
	return b
}

// TestSimCommandJSON runs `chargemq sim --json` briefly and reads the summary back.
func TestSimCommandJSON(t *testing.T) {
	b := startSimGateway(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	err := run(ctx, []string{"chargemq", "sim",
		"--url", "ws://" + b.Addr(broker.ListenerOCPP).String() + "/ocpp",
		"--mqtt-url", "mqtt://" + b.Addr(broker.ListenerMQTT).String(),
		"--count", "3", "--connect-rate", "30/s", "--duration", "1s", "--call-rate", "15",
		"--respond", "--command-rate", "5/s", "--json"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v (stderr %q)", err, stderr.String())
	}
	var rep sim.Report
	dec := json.NewDecoder(&stdout)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("summary is not a Report: %v\n%s", err, stdout.String())
	}
	if dec.More() {
		t.Errorf("more than one JSON value on stdout")
	}
	if rep.Count != 3 || rep.Connections.Connected != 3 || rep.Upstream.Sent == 0 ||
		rep.Upstream.Answered != rep.Upstream.Sent || rep.Responder == nil {
		t.Errorf("report %+v", rep)
	}
	if stderr.Len() != 0 { // a buffer is not a terminal: no progress
		t.Errorf("stderr %q, want nothing", stderr.String())
	}
}

// TestSimCommandText prints the summary for people.
func TestSimCommandText(t *testing.T) {
	b := startSimGateway(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	err := run(ctx, []string{"chargemq", "sim",
		"--url", "ws://" + b.Addr(broker.ListenerOCPP).String() + "/ocpp",
		"--count", "2", "--duration", "1s", "--call-rate", "0"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v (stderr %q)", err, stderr.String())
	}
	for _, want := range []string{"chargemq sim: 2 charge points", "connections  2 connected", "upstream "} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, stdout.String())
		}
	}
}

// TestSimCommandErrors: bad flags and an unreachable gateway are errors (exit status 1).
func TestSimCommandErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	tests := []struct {
		name string
		args []string
		want string // in stderr
	}{
		{"count 0", []string{"--count", "0"}, "count: 0"},
		{"bad rate", []string{"--call-rate", "fast"}, "--call-rate"},
		{"negative rate", []string{"--connect-rate", "-5/s"}, "--connect-rate"},
		{"unknown action", []string{"--action", "Reset"}, "action: "},
		{"bad url", []string{"--url", "http://x/ocpp"}, "url: "},
		{"positional argument", []string{"extra"}, "unexpected argument"},
		{"unknown flag", []string{"--no-such-flag", "u"}, "no-such-flag"},
		{"unreachable", []string{"--url", "ws://" + closed + "/ocpp", "--duration", "1s"}, "cannot reach"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := run(ctx, append([]string{"chargemq", "sim"}, tt.args...), &stdout, &stderr); err == nil {
				t.Fatalf("run succeeded, want an error; stdout %q", stdout.String())
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("stderr %q, want %q", stderr.String(), tt.want)
			}
		})
	}
}

func TestSimParseRate(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want float64
		ok   bool
	}{
		{"500", 500, true}, {"500/s", 500, true}, {" 2.5/s", 2.5, true}, {"0", 0, true},
		{"", 0, false}, {"-1", 0, false}, {"fast", 0, false}, {"5/m", 0, false}, {"Inf", 0, false}, {"NaN", 0, false},
	} {
		got, err := parseRate(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseRate(%q) = %v, %v; want %v, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

// TestSimFlagsTLS: the TLS flags land in sim.Options as given ({cid} is sim's to replace).
func TestSimFlagsTLS(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want func(*sim.Options)
	}{
		{"none", nil, func(*sim.Options) {}},
		{"profile 3 with certificates per id", []string{
			"--url", "wss://gw.example:443/ocpp", "--tls-ca", "ca.pem",
			"--tls-cert", "certs/{cid}.crt", "--tls-key", "certs/{cid}.key", "--tls-server-name", "gw.internal",
		}, func(o *sim.Options) {
			o.URL, o.TLSCA, o.TLSCert, o.TLSKey, o.TLSServerName = "wss://gw.example:443/ocpp", "ca.pem", "certs/{cid}.crt", "certs/{cid}.key", "gw.internal"
		}},
		{"profile 2 in a lab, mqtts with a client certificate", []string{
			"--url", "wss://lab/ocpp", "--password", "key-{cid}", "--tls-insecure-skip-verify",
			"--respond", "--mqtt-url", "mqtts://lab:8883", "--mqtt-tls-cert", "csms.crt", "--mqtt-tls-key", "csms.key",
		}, func(o *sim.Options) {
			o.URL, o.Password, o.TLSInsecureSkipVerify = "wss://lab/ocpp", "key-{cid}", true
			o.Respond, o.MQTTURL, o.MQTTTLSCert, o.MQTTTLSKey = true, "mqtts://lab:8883", "csms.crt", "csms.key"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got sim.Options
			cmd := (&program{}).simCommand()
			cmd.Action = func(c *cli.Context) error {
				var err error
				got, err = simOptions(c)
				return err
			}
			app := &cli.App{Name: "chargemq", Commands: []*cli.Command{cmd}, Writer: io.Discard, ErrWriter: io.Discard}
			if err := app.Run(append([]string{"chargemq", "sim"}, tt.args...)); err != nil {
				t.Fatal(err)
			}
			want := sim.DefaultOptions()
			want.Password = got.Password // $CHARGEMQ_SIM_PASSWORD may be set where the test runs
			want.MQTTPassword = got.MQTTPassword
			tt.want(&want)
			if got != want {
				t.Errorf("options\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

// TestSimTLSFlagErrors: TLS flags that do not fit together are named before anything dials.
func TestSimTLSFlagErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string // in stderr
	}{
		{"certificate without key", []string{"--url", "wss://127.0.0.1:1/ocpp", "--tls-cert", "c.crt"}, "tls-cert: \"c.crt\": needs --tls-key too"},
		{"certificate for ws://", []string{"--tls-cert", "c.crt", "--tls-key", "c.key"}, "tls-cert: only with a wss:// --url"},
		{"CA file missing", []string{"--url", "wss://127.0.0.1:1/ocpp", "--tls-ca", "/nonexistent/ca.pem"}, "tls-ca: open /nonexistent/ca.pem"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := run(ctx, append([]string{"chargemq", "sim"}, tt.args...), &stdout, &stderr); err == nil {
				t.Fatalf("run succeeded, want an error; stdout %q", stdout.String())
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("stderr %q, want %q", stderr.String(), tt.want)
			}
		})
	}
}
