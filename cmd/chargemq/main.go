// Command chargemq runs an MQTT broker with an OCPP-J gateway in one process:
// charge points connect over WebSocket, and their messages appear on MQTT
// topics; commands published on MQTT reach the charge points.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/urfave/cli/v2"
)

func main() {
	if err := run(context.Background(), os.Args, os.Stdout, os.Stderr); err != nil {
		os.Exit(1)
	}
}

// run is the whole program except the process itself: it parses args (args[0]
// is the program name), writes output to stdout and diagnostics to stderr,
// and returns instead of exiting, so tests drive it in-process. Errors are
// reported on stderr before they are returned.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	p := &program{
		stdin:     os.Stdin,
		stdout:    stdout,
		stderr:    stderr,
		lookupEnv: os.LookupEnv,
		serve:     serve,
		exit:      os.Exit,
	}
	return p.run(ctx, args)
}

// program holds run's collaborators. Tests replace lookupEnv (to run in
// parallel without os.Setenv), serve (to check what it would be given),
// exit (to survive the second shutdown signal) and stdin (where `users add`
// reads a password; nil reads as empty).
type program struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	lookupEnv      func(string) (string, bool)
	serve          func(context.Context, Config, *slog.Logger) error
	exit           func(code int)
}

// reportedError marks an error already written to the log, so run does not
// print it a second time (and does not mix a plain line into JSON logs).
type reportedError struct{ error }

// Unwrap gives errors.Is/As the underlying error.
func (e reportedError) Unwrap() error { return e.error }

// run runs the CLI and reports a returned error on stderr.
func (p *program) run(ctx context.Context, args []string) error {
	err := p.app().RunContext(ctx, args)
	if err != nil && !errors.As(err, new(reportedError)) {
		// Validate joins one error per key: indent the continuation lines.
		fmt.Fprintf(p.stderr, "chargemq: %s\n", strings.ReplaceAll(err.Error(), "\n", "\n  "))
	}
	return err
}

// app builds the urfave/cli application. It is built per run, never stored,
// because cli.App keeps per-run state.
func (p *program) app() *cli.App {
	return &cli.App{
		Name:  "chargemq",
		Usage: "MQTT broker with an OCPP-J (OCPP 1.6 over WebSocket) gateway",
		Description: "Without a command, chargemq runs serve. Settings come from defaults, then the\n" +
			"YAML file (--config), then CHARGEMQ_* environment variables, then flags.\n" +
			"See docs/configuration.md.",
		Writer:      p.stdout,
		ErrWriter:   p.stderr,
		HideVersion: true,
		Flags:       configFlags(),
		Action:      p.serveAction,
		// run reports errors itself; the default handler would os.Exit from
		// inside the library, which tests cannot survive.
		ExitErrHandler: func(*cli.Context, error) {},
		Commands: []*cli.Command{
			{
				Name:   "serve",
				Usage:  "run the broker and all listeners (the default command)",
				Flags:  configFlags(),
				Action: p.serveAction,
			},
			{
				Name:      "check-config",
				Usage:     "validate a config file and print the effective configuration as YAML",
				ArgsUsage: "FILE",
				Action:    p.checkConfigAction,
			},
			{
				Name:   "version",
				Usage:  "print version, commit and Go version",
				Action: p.versionAction,
			},
			p.simCommand(),
			p.usersCommand(),
			p.clientsCommand(),
		},
	}
}

// configFlags returns the flags that override config keys, plus --config.
// They are defined on the app and on serve, so both `chargemq --mqtt-addr X`
// and `chargemq serve --mqtt-addr X` work; a new slice is made for each
// because cli flags keep state once applied.
func configFlags() []cli.Flag {
	flags := []cli.Flag{&cli.StringFlag{
		Name:  "config",
		Usage: "YAML config file [$" + envConfigFile + "]",
	}}
	def := DefaultConfig()
	for _, s := range settings() {
		if s.flag == "" {
			continue
		}
		if _, repeated := s.field(&def).(certList); repeated {
			flags = append(flags, &cli.StringSliceFlag{Name: s.flag, Usage: s.usage + " [$" + s.env() + ", comma-separated]"})
			continue
		}
		flags = append(flags, &cli.StringFlag{
			Name:        s.flag,
			Usage:       s.usage + " [$" + s.env() + "]",
			DefaultText: fmt.Sprintf("%q", s.get(&def)),
		})
	}
	return flags
}

// flagValues collects the config flags given on the command line, from the
// outermost command to the innermost, so `chargemq --log-level warn serve
// --log-level debug` ends with debug. Flags left unset are absent, which is
// what lets a file or environment value show through.
func flagValues(c *cli.Context) map[string]string {
	out := map[string]string{}
	lineage := c.Lineage()
	for i := len(lineage) - 1; i >= 0; i-- {
		lc := lineage[i]
		for _, name := range lc.LocalFlagNames() {
			if v := lc.StringSlice(name); len(v) > 0 {
				out[name] = strings.Join(v, ",") // a repeatable flag (--tls-cert)
				continue
			}
			out[name] = lc.String(name)
		}
	}
	return out
}

// loadFromCLI loads the configuration with file named by file (or, when
// file is "", by --config or $CHARGEMQ_CONFIG) and the flags given in c.
func (p *program) loadFromCLI(c *cli.Context, file string) (Config, error) {
	flags := flagValues(c)
	if file == "" {
		if f, ok := flags["config"]; ok {
			file = f
		} else if f, ok := p.lookupEnv(envConfigFile); ok {
			file = f
		}
	}
	return loadConfig(configSources{File: file, LookupEnv: p.lookupEnv, Flags: flags})
}

// serveAction runs the broker until the first SIGINT/SIGTERM (or until run's
// context ends). It makes the one logger of the process, from the loaded
// config, and hands it to serve.
func (p *program) serveAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: commands are serve, check-config, version (see --help)", c.Args().First())
	}
	cfg, err := p.loadFromCLI(c, "")
	if err != nil {
		return err
	}
	log := newLogger(p.stderr, cfg.Log)
	ctx, stop := shutdownOnSignal(c.Context, log, p.exit)
	defer stop()

	v := buildVersion()
	log.Info("starting", "version", v.Version, "commit", v.Commit, "go", v.GoVersion)
	if err := p.serve(ctx, cfg, log); err != nil {
		log.Error("stopped", "error", err)
		return reportedError{err}
	}
	log.Info("stopped")
	return nil
}
