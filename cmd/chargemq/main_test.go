package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// The tests in this file drive the urfave/cli app and are deliberately not
// parallel: urfave/cli v2 writes package-level state (cli.HelpFlag and its
// help command) on every run, which the race detector reports when two apps
// run at once. The process itself runs one app, so only tests are affected.

func TestRunVersion(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"chargemq", "version"}, &stdout, &stderr); err != nil {
		t.Fatalf("run version: %v (stderr %q)", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "chargemq ") ||
		!strings.HasPrefix(lines[1], "commit: ") || lines[2] != "go: "+runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH {
		t.Errorf("version output = %q", stdout.String())
	}
	if stderr.Len() != 0 {
		t.Errorf("stderr = %q, want empty", stderr.String())
	}
}

func TestRunCheckConfig(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantErr    bool
		wantStdout []string // substrings
		wantStderr []string // substrings
	}{
		{name: "full file", args: []string{"check-config", "testdata/full.yaml"},
			wantStdout: []string{"mqtt: 127.0.0.1:11883", "call_timeout: 1m30s", "BootNotification: up/${cid}/boot", "format: json"}},
		{name: "minimal file keeps defaults", args: []string{"check-config", "testdata/minimal.yaml"},
			wantStdout: []string{"ocpp: :9000", "mqtt: :1883", "write_timeout: 10s", "qos: 2"}},
		{name: "global flag applies", args: []string{"--log-level", "warn", "check-config", "testdata/minimal.yaml"},
			wantStdout: []string{"level: warn"}},
		{name: "--config instead of FILE", args: []string{"--config", "testdata/minimal.yaml", "check-config"},
			wantStdout: []string{"ocpp: :9000"}},
		{name: "unknown key", args: []string{"check-config", "testdata/unknown_key.yaml"}, wantErr: true,
			wantStderr: []string{"ocpp.upstream.max_pendng: unknown key"}},
		{name: "bad duration", args: []string{"check-config", "testdata/bad_duration.yaml"}, wantErr: true,
			wantStderr: []string{"ocpp.dnstream.call_timeout", "duration"}},
		{name: "qos 3", args: []string{"check-config", "testdata/qos3.yaml"}, wantErr: true,
			wantStderr: []string{"ocpp.upstream.qos: must be 0, 1 or 2"}},
		{name: "unknown placeholder", args: []string{"check-config", "testdata/bad_template.yaml"}, wantErr: true,
			wantStderr: []string{"ocpp.upstream.topic", "${foo}"}},
		{name: "missing file", args: []string{"check-config", "testdata/nope.yaml"}, wantErr: true,
			wantStderr: []string{"nope.yaml"}},
		{name: "no file", args: []string{"check-config"}, wantErr: true, wantStderr: []string{"FILE"}},
		{name: "flag after FILE", args: []string{"check-config", "testdata/full.yaml", "--log-level", "debug"}, wantErr: true,
			wantStderr: []string{`unexpected argument "--log-level"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			p := &program{stdout: &stdout, stderr: &stderr, lookupEnv: envOf(nil), serve: failServe(t), exit: failExit(t)}
			err := p.run(context.Background(), append([]string{"chargemq"}, tt.args...))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v; stderr %q", err, tt.wantErr, stderr.String())
			}
			if tt.wantErr && stdout.Len() != 0 {
				t.Errorf("stdout = %q, want nothing on error", stdout.String())
			}
			for _, w := range tt.wantStdout {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("stdout does not contain %q:\n%s", w, stdout.String())
				}
			}
			for _, w := range tt.wantStderr {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr does not contain %q:\n%s", w, stderr.String())
				}
			}
		})
	}
}

// TestRunCheckConfigProcessEnv goes through run itself (os.LookupEnv), with a
// file whose every key is set, so the process environment cannot change the
// outcome unless it sets CHARGEMQ_* variables, which the test then skips.
func TestRunCheckConfigProcessEnv(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"chargemq", "check-config", filepath.Join("testdata", "full.yaml")}, &stdout, &stderr); err != nil {
		t.Fatalf("run check-config: %v; stderr %q", err, stderr.String())
	}
	cfg, err := loadConfig(configSources{File: writeConfig(t, stdout.String())})
	if err != nil {
		t.Fatalf("check-config output does not load: %v", err)
	}
	if cfg.OCPP.Upstream.MaxPending != 32 {
		t.Errorf("max_pending = %d, want 32 from the file", cfg.OCPP.Upstream.MaxPending)
	}
	var bad bytes.Buffer
	if err := run(context.Background(), []string{"chargemq", "check-config", filepath.Join("testdata", "qos3.yaml")}, &stdout, &bad); err == nil ||
		!strings.Contains(bad.String(), "ocpp.upstream.qos") {
		t.Errorf("bad file: err %v, stderr %q", err, bad.String())
	}
}

// failServe is a serve that must not be called.
func failServe(t *testing.T) func(context.Context, Config, *slog.Logger) error {
	return func(context.Context, Config, *slog.Logger) error {
		t.Error("serve called")
		return nil
	}
}

// failExit is an exit that must not be called.
func failExit(t *testing.T) func(int) {
	return func(code int) { t.Errorf("exit(%d) called", code) }
}

// TestServeSelection checks which invocations reach serve and with what
// configuration; the real serve is replaced (it belongs to the broker work).
func TestServeSelection(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string        // "" = serve must be called
		want    func(*Config) // applied to DefaultConfig()
	}{
		{name: "no command runs serve", args: nil, want: func(*Config) {}},
		{name: "serve", args: []string{"serve"}, want: func(*Config) {}},
		{name: "global flags", args: []string{"--mqtt-addr", ":0", "--log-format", "json"},
			want: func(c *Config) { c.Listeners.MQTT, c.Log.Format = ":0", "json" }},
		{name: "serve flags win over global ones", args: []string{"--log-level", "warn", "serve", "--log-level", "error", "--ocpp-addr", ""},
			want: func(c *Config) { c.Log.Level, c.Listeners.OCPP = "error", "" }},
		{name: "config file via flag, env and flag over it", args: []string{"serve", "--config", "testdata/minimal.yaml", "--http-addr", ":0"},
			env:  map[string]string{"CHARGEMQ_MQTT_ADDR": ":0", "CHARGEMQ_OCPP_ADDR": ":1"},
			want: func(c *Config) { c.Listeners.OCPP, c.Listeners.MQTT, c.Listeners.HTTP = ":1", ":0", ":0" }},
		{name: "config file via env", env: map[string]string{"CHARGEMQ_CONFIG": "testdata/minimal.yaml"},
			want: func(c *Config) { c.Listeners.OCPP = ":9000" }},
		{name: "unknown command is not serve", args: []string{"sreve"}, wantErr: `unexpected argument "sreve"`},
		{name: "bad config does not serve", args: []string{"--config", "testdata/qos3.yaml"}, wantErr: "ocpp.upstream.qos"},
		{name: "unknown flag", args: []string{"serve", "--mqtt-port", "1"}, wantErr: "mqtt-port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			var got *Config
			p := &program{
				stdout: &stdout, stderr: &stderr, lookupEnv: envOf(tt.env), exit: failExit(t),
				serve: func(ctx context.Context, cfg Config, log *slog.Logger) error {
					if log == nil {
						t.Error("serve got a nil logger")
					}
					got = &cfg
					return nil
				},
			}
			err := p.run(context.Background(), append([]string{"chargemq"}, tt.args...))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(stderr.String(), tt.wantErr) {
					t.Fatalf("err = %v, stderr %q; want an error mentioning %q", err, stderr.String(), tt.wantErr)
				}
				if got != nil {
					t.Error("serve was called")
				}
				return
			}
			if err != nil {
				t.Fatalf("run: %v; stderr %q", err, stderr.String())
			}
			if got == nil {
				t.Fatal("serve was not called")
			}
			want := DefaultConfig()
			tt.want(&want)
			if got.Listeners != want.Listeners || got.Log != want.Log {
				t.Errorf("serve got %+v %+v, want %+v %+v", got.Listeners, got.Log, want.Listeners, want.Log)
			}
		})
	}
}

// TestServeLogs checks that the logger handed to serve follows log.level and
// log.format, and that a serve error is logged once rather than printed again.
func TestServeLogs(t *testing.T) {
	var stdout, stderr bytes.Buffer
	boom := errors.New("boom")
	p := &program{
		stdout: &stdout, stderr: &stderr, lookupEnv: envOf(nil), exit: failExit(t),
		serve: func(_ context.Context, _ Config, log *slog.Logger) error {
			log.Debug("hidden")
			log.Warn("shown", "k", "v")
			return boom
		},
	}
	err := p.run(context.Background(), []string{"chargemq", "--log-format", "json", "--log-level", "warn"})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	out := stderr.String()
	if strings.Contains(out, "hidden") || !strings.Contains(out, `"msg":"shown","k":"v"`) ||
		!strings.Contains(out, `"error":"boom"`) || strings.Contains(out, "chargemq: boom") {
		t.Errorf("stderr = %q", out)
	}
}

// TestServeStopsWithContext checks that cancelling run's context ends serve
// and run returns nil (the graceful path a first signal takes).
func TestServeStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	started := make(chan struct{})
	p := &program{
		stdout: new(bytes.Buffer), stderr: new(bytes.Buffer), lookupEnv: envOf(nil), exit: failExit(t),
		serve: func(ctx context.Context, _ Config, _ *slog.Logger) error {
			close(started)
			<-ctx.Done()
			return nil
		},
	}
	errc := make(chan error, 1)
	go func() { errc <- p.run(ctx, []string{"chargemq", "serve"}) }()
	<-started
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("run = %v, want nil", err)
	}
}

// TestCheckConfigLoadsUsersFile: check-config refuses a users file that
// serve would refuse (here, not a users file at all).
func TestCheckConfigLoadsUsersFile(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "users.yaml")
	if err := os.WriteFile(bad, []byte("name,password,role\nCP1,secret,chargepoint\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "chargemq.yaml")
	if err := os.WriteFile(cfg, []byte("auth:\n  users_file: "+bad+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	if err := run(context.Background(), []string{"chargemq", "check-config", cfg}, io.Discard, &stderr); err == nil {
		t.Fatal("check-config accepted a users file that does not load")
	}
	if !strings.Contains(stderr.String(), "auth.users_file") {
		t.Fatalf("error does not name the key: %s", stderr.String())
	}
}
