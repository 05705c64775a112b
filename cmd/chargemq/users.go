package main

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/chargemq/chargemq/broker/users"
)

// envUsersFile names the users file when --users-file is not given.
const envUsersFile = envPrefix + "USERS_FILE"

// usersCommand is `chargemq users`: edit the users file (docs/security.md). The work is in
// broker/users; this file maps flags onto it.
//
// People type the name first (`users add CP1 --users-file F`), but urfave/cli v2 stops reading
// flags at the first positional argument. So `users` takes its arguments unparsed, moves the
// flags of the subcommand before its positional arguments, and runs its own small cli.App on
// them, which parses flags and prints help as usual.
func (p *program) usersCommand() *cli.Command {
	return &cli.Command{
		Name:      "users",
		Usage:     "add, remove, list or import the accounts of the users file (charge points, MQTT users, admins)",
		ArgsUsage: "add|remove|list|import ...",
		Description: "  chargemq users add NAME --users-file F [--role chargepoint|mqtt|admin] [--min-profile 2|3] [--pub FILTER]... [--sub FILTER]...\n" +
			"                         [--password-stdin | --generate] [--replace]\n" +
			"  chargemq users remove NAME --users-file F\n" +
			"  chargemq users list --users-file F\n" +
			"  chargemq users import CSV --users-file F     (lines name,password[,role]; - reads stdin)\n" +
			"--users-file defaults to $" + envUsersFile + ". See `chargemq users help` and docs/security.md.",
		SkipFlagParsing: true,
		// Help, including `users help add`, is the inner app's: urfave would otherwise add a help
		// subcommand here that knows none of add, remove, list, import.
		HideHelp:        true,
		HideHelpCommand: true,
		Action: func(c *cli.Context) error {
			app := p.usersApp()
			return app.RunContext(c.Context, append([]string{"chargemq users"}, flagsFirst(c.Args().Slice(), app.Commands)...))
		},
	}
}

// usersApp is the app behind `chargemq users`, built per run like app().
func (p *program) usersApp() *cli.App {
	fileFlag := func() cli.Flag {
		return &cli.StringFlag{Name: "users-file", Usage: "the users file (YAML) [$" + envUsersFile + "]"}
	}
	costFlag := func() cli.Flag {
		return &cli.IntFlag{Name: "bcrypt-cost", Value: users.DefaultCost,
			Usage: "bcrypt cost for mqtt and admin passwords (each +1 doubles the time of a check)"}
	}
	return &cli.App{
		Name:           "chargemq users",
		Usage:          "edit the users file",
		Writer:         p.stdout,
		ErrWriter:      p.stderr,
		HideVersion:    true,
		ExitErrHandler: func(*cli.Context, error) {},
		Commands: []*cli.Command{
			{
				Name:      "add",
				Usage:     "add a user (the password is read from the terminal, or one line of stdin)",
				ArgsUsage: "NAME",
				Description: "Charge point keys are stored as salted SHA-256, people's passwords as bcrypt\n" +
					"(docs/security.md). The file is created if missing, and rewritten atomically\n" +
					"with mode 0600. An existing NAME is an error unless --replace is given.",
				Flags: []cli.Flag{
					fileFlag(),
					&cli.StringFlag{Name: "role", Value: string(users.RoleChargePoint), Usage: "chargepoint, mqtt or admin"},
					&cli.GenericFlag{Name: "pub", Value: &filterList{}, Usage: "topic filter the mqtt user may publish to (%u: its name, %c: its client id); repeat for more"},
					&cli.GenericFlag{Name: "sub", Value: &filterList{}, Usage: "topic filter the mqtt user may subscribe to; repeat for more"},
					&cli.IntFlag{Name: "min-profile", Usage: "chargepoint: the lowest OCPP security profile it may connect with (2: TLS, 3: client certificate); refuses downgrades"},
					&cli.BoolFlag{Name: "password-stdin", Usage: "read the password as one line of stdin, never from a prompt"},
					&cli.BoolFlag{Name: "generate", Usage: "make a random key (20 bytes, as 40 hex digits, as OCPP 1.6 AuthorizationKey) and print it"},
					&cli.BoolFlag{Name: "replace", Usage: "replace the user if NAME exists (new password, role and rules)"},
					costFlag(),
				},
				Action: p.usersAddAction,
			},
			{
				Name:      "remove",
				Usage:     "remove a user",
				ArgsUsage: "NAME",
				Flags:     []cli.Flag{fileFlag()},
				Action:    p.usersRemoveAction,
			},
			{
				Name:   "list",
				Usage:  "list the users: name, role, pub and sub rules, minimum security profile (never a password)",
				Flags:  []cli.Flag{fileFlag()},
				Action: p.usersListAction,
			},
			{
				Name:      "import",
				Usage:     "add the users of a CSV file (name,password[,role]; - reads stdin), all or none",
				ArgsUsage: "CSV",
				Description: "Lines are name,password,role; the role defaults to chargepoint; a first line\n" +
					"name,password,role is a header; lines starting with # are comments. A name\n" +
					"already in the file, or any bad line, fails the whole import.",
				Flags:  []cli.Flag{fileFlag(), costFlag()},
				Action: p.usersImportAction,
			},
		},
	}
}

// filterList is a repeatable flag. cli.StringSliceFlag would split values at commas, and a
// topic filter may contain one.
type filterList []string

// Set implements flag.Value by appending.
func (l *filterList) Set(v string) error { *l = append(*l, v); return nil }

// String implements flag.Value.
func (l *filterList) String() string { return strings.Join(*l, " ") }

// flagsFirst moves the flags given after a subcommand's positional arguments before them:
// ["add", "CP1", "--users-file", "f"] becomes ["add", "--users-file", "f", "--", "CP1"]. A flag
// that takes a value keeps the argument after it; "--" ends the flags, as usual, so a NAME that
// starts with '-' can still be given. Arguments not naming a subcommand are left alone.
func flagsFirst(args []string, cmds []*cli.Command) []string {
	i := 0
	for i < len(args) && strings.HasPrefix(args[i], "-") {
		i++
	}
	if i == len(args) {
		return args
	}
	var cmd *cli.Command
	for _, c := range cmds {
		if c.HasName(args[i]) {
			cmd = c
		}
	}
	if cmd == nil {
		return args
	}
	takesValue := map[string]bool{}
	for _, f := range cmd.Flags {
		if df, ok := f.(cli.DocGenerationFlag); ok && df.TakesValue() {
			for _, n := range f.Names() {
				takesValue[n] = true
			}
		}
	}
	out := append([]string{}, args[:i+1]...)
	var positional []string
	rest := args[i+1:]
	if slices.ContainsFunc(rest, func(a string) bool { return a == "-h" || a == "--help" || a == "-help" }) {
		// urfave would take a positional argument for a help topic ("No help topic for 'CP1'").
		return append(out, "--help")
	}
	for j := 0; j < len(rest); j++ {
		a := rest[j]
		switch {
		case a == "--":
			positional = append(positional, rest[j+1:]...)
			j = len(rest)
		case len(a) > 1 && a[0] == '-':
			out = append(out, a)
			name := strings.TrimLeft(a, "-")
			if !strings.Contains(name, "=") && takesValue[name] && j+1 < len(rest) {
				out = append(out, rest[j+1])
				j++
			}
		default:
			positional = append(positional, a)
		}
	}
	if len(positional) > 0 {
		out = append(append(out, "--"), positional...)
	}
	return out
}

// usersFile is --users-file, else $CHARGEMQ_USERS_FILE.
func (p *program) usersFile(c *cli.Context) (string, error) {
	if f := c.String("users-file"); f != "" {
		return f, nil
	}
	if f, ok := p.lookupEnv(envUsersFile); ok && f != "" {
		return f, nil
	}
	return "", fmt.Errorf("users %s: --users-file (or $%s) is required", c.Command.Name, envUsersFile)
}

// oneArg is the single positional argument of c, called what.
func oneArg(c *cli.Context, what string) (string, error) {
	if c.NArg() != 1 {
		return "", fmt.Errorf("users %s: want one %s argument, got %d (see chargemq users %[1]s --help)", c.Command.Name, what, c.NArg())
	}
	return c.Args().First(), nil
}

// usersAddAction is `users add NAME`.
func (p *program) usersAddAction(c *cli.Context) error {
	name, err := oneArg(c, "NAME")
	if err != nil {
		return err
	}
	file, err := p.usersFile(c)
	if err != nil {
		return err
	}
	u := users.User{
		Name:       name,
		Role:       users.Role(c.String("role")),
		MinProfile: c.Int("min-profile"),
		Pub:        []string(*c.Generic("pub").(*filterList)),
		Sub:        []string(*c.Generic("sub").(*filterList)),
	}
	var password string
	switch {
	case c.Bool("generate") && c.Bool("password-stdin"):
		return errors.New("users add: --generate and --password-stdin exclude each other")
	case c.Bool("generate"):
		key := make([]byte, 20)
		if _, err := rand.Read(key); err != nil {
			return fmt.Errorf("users add: %w", err)
		}
		password = hex.EncodeToString(key)
	default:
		if password, err = p.readPassword(name, c.Bool("password-stdin")); err != nil {
			return fmt.Errorf("users add: %w", err)
		}
	}
	add := users.AddUser
	if c.Bool("replace") {
		add = users.SetUser
	}
	warning, err := add(file, u, password, c.Int("bcrypt-cost"))
	if errors.Is(err, users.ErrExists) {
		return fmt.Errorf("%w in %s (--replace changes it)", err, file)
	}
	if err != nil {
		return err
	}
	if warning != "" {
		fmt.Fprintf(p.stderr, "chargemq: warning: %s: %s\n", name, warning)
	}
	if c.Bool("generate") {
		fmt.Fprintln(p.stdout, password)
	}
	return nil
}

// readPassword reads name's password: from a prompt without echo, twice, when stdin is a
// terminal and fromStdin is false; otherwise as one line of stdin (without its line ending).
func (p *program) readPassword(name string, fromStdin bool) (string, error) {
	in := p.stdin
	if in == nil {
		in = strings.NewReader("")
	}
	if f, ok := in.(*os.File); ok && !fromStdin && term.IsTerminal(int(f.Fd())) {
		fmt.Fprintf(p.stderr, "Password for %s: ", name)
		first, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(p.stderr)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(p.stderr, "Again: ")
		second, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(p.stderr)
		if err != nil {
			return "", err
		}
		if string(first) != string(second) {
			return "", errors.New("the passwords differ")
		}
		if len(first) == 0 {
			return "", errors.New("empty password")
		}
		return string(first), nil
	}
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading the password: %w", err)
	}
	line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	if line == "" {
		return "", errors.New("no password on stdin (give one line, or use --generate)")
	}
	return line, nil
}

// usersRemoveAction is `users remove NAME`.
func (p *program) usersRemoveAction(c *cli.Context) error {
	name, err := oneArg(c, "NAME")
	if err != nil {
		return err
	}
	file, err := p.usersFile(c)
	if err != nil {
		return err
	}
	if err := users.RemoveUser(file, name); err != nil {
		if errors.Is(err, users.ErrNotFound) {
			return fmt.Errorf("%w in %s", err, file)
		}
		return err
	}
	return nil
}

// usersListAction is `users list`: a table of name, role and rules.
func (p *program) usersListAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("users list: unexpected argument %q", c.Args().First())
	}
	file, err := p.usersFile(c)
	if err != nil {
		return err
	}
	list, err := users.List(file)
	if err != nil {
		return err
	}
	rules := func(l []string) string {
		if len(l) == 0 {
			return "-"
		}
		return strings.Join(l, " ")
	}
	w := tabwriter.NewWriter(p.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tROLE\tPUB\tSUB\tMIN_PROFILE")
	for _, u := range list {
		profile := "-"
		if u.MinProfile > 0 {
			profile = strconv.Itoa(u.MinProfile)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", u.Name, u.Role, rules(u.Pub), rules(u.Sub), profile)
	}
	return w.Flush()
}

// usersImportAction is `users import CSV`.
func (p *program) usersImportAction(c *cli.Context) error {
	src, err := oneArg(c, "CSV")
	if err != nil {
		return err
	}
	file, err := p.usersFile(c)
	if err != nil {
		return err
	}
	var in io.Reader
	if src == "-" {
		in = p.stdin
		if in == nil {
			in = strings.NewReader("")
		}
	} else {
		f, err := os.Open(src)
		if err != nil {
			return fmt.Errorf("users import: %w", err)
		}
		defer f.Close()
		in = f
	}
	added, warnings, err := users.Import(file, in, c.Int("bcrypt-cost"))
	if err != nil {
		return err
	}
	for _, w := range warnings {
		fmt.Fprintf(p.stderr, "chargemq: warning: %s\n", w)
	}
	fmt.Fprintf(p.stdout, "added %d users to %s\n", added, file)
	return nil
}
