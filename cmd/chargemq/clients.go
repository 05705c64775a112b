package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/urfave/cli/v2"
)

// The environment variables of `chargemq clients`, read when the flag is not given.
const (
	envAPI         = envPrefix + "API"
	envAPIUser     = envPrefix + "API_USER"
	envAPIPassword = envPrefix + "API_PASSWORD"
)

const (
	// defaultAPI is the admin API of a chargemq on this host with the default listeners.http.
	defaultAPI = "http://127.0.0.1:18083"
	// apiTimeout bounds each request, from the dial to the last byte of the answer.
	apiTimeout = 10 * time.Second
	// maxAPIAnswer bounds what is read of an answer; a list of 20,000 charge points is ~10 MB.
	maxAPIAnswer = 64 << 20
	// payloadWidth is how much of a frame's payload `clients show` prints, in characters.
	payloadWidth = 60
)

// clientsCommand is `chargemq clients`: list, inspect and disconnect the connected charge
// points through the admin API of a running chargemq (docs/operations.md). It takes its
// arguments unparsed, as `users` does, so flags may follow the CID (`clients kick CP1 --block
// 60s`); the common flags may also come before the subcommand (`clients --api URL list`).
func (p *program) clientsCommand() *cli.Command {
	return &cli.Command{
		Name:      "clients",
		Usage:     "list, show or kick the connected charge points of a running chargemq (admin API)",
		ArgsUsage: "list|show|kick ...",
		Description: "  chargemq clients list [--q SUBSTR] [--limit N] [--offset K] [--json]\n" +
			"  chargemq clients show CID [--json]\n" +
			"  chargemq clients kick CID [--block 60s]\n" +
			"Each takes --api URL (default " + defaultAPI + ", $" + envAPI + "), --user ($" + envAPIUser + ")\n" +
			"and the password from $" + envAPIPassword + " (or --password, which ps shows to every user).\n" +
			"See `chargemq clients help` and docs/operations.md.",
		SkipFlagParsing: true,
		HideHelp:        true,
		HideHelpCommand: true,
		Action: func(c *cli.Context) error {
			app := p.clientsApp()
			return app.RunContext(c.Context, append([]string{"chargemq clients"}, clientsArgs(c.Args().Slice(), app)...))
		},
	}
}

// apiFlags are the flags every clients subcommand takes, and the inner app too. A new slice
// each time: cli flags keep state once applied. They have no Value and no EnvVars: apiClientOf
// resolves them through the lineage and p.lookupEnv, so the innermost given one wins and tests
// need no process environment.
func apiFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "api", Usage: "base `URL` of the chargemq admin API (its listeners.http) [$" + envAPI + "]", DefaultText: defaultAPI},
		&cli.StringFlag{Name: "user", Usage: "the `NAME` of a user with role admin in the users file (HTTP Basic) [$" + envAPIUser + "]"},
		&cli.StringFlag{Name: "password", Usage: "the admin user's `PASSWORD`; visible to every user in ps, prefer $" + envAPIPassword},
	}
}

// clientsApp is the app behind `chargemq clients`, built per run like app().
func (p *program) clientsApp() *cli.App {
	withAPI := func(flags ...cli.Flag) []cli.Flag { return append(flags, apiFlags()...) }
	return &cli.App{
		Name:           "chargemq clients",
		Usage:          "the connected charge points of a running chargemq, through its admin API",
		Writer:         p.stdout,
		ErrWriter:      p.stderr,
		HideVersion:    true,
		ExitErrHandler: func(*cli.Context, error) {},
		Flags:          apiFlags(),
		Commands: []*cli.Command{
			{
				Name:  "list",
				Usage: "list the connected charge points, sorted by id",
				Description: "CONNECTED and LAST SEEN are ages by the server's clock (the time itself past a\n" +
					"day); IN and OUT count frames; OUTSTANDING is the command awaiting an answer.\n" +
					"A last line \"N of TOTAL charge points\" says when the list is a page.",
				Flags: withAPI(
					&cli.StringFlag{Name: "q", Usage: "only charge points whose id contains `SUBSTR`"},
					&cli.IntFlag{Name: "limit", Usage: "at most `N` charge points", DefaultText: "the server's, 100"},
					&cli.IntFlag{Name: "offset", Usage: "skip the first `K` charge points (with --limit, for the next page)"},
					&cli.BoolFlag{Name: "json", Usage: "print the server's JSON answer, indented"},
				),
				Action: p.clientsListAction,
			},
			{
				Name:      "show",
				Usage:     "show one charge point and its recent frames",
				ArgsUsage: "CID",
				Description: "The fields one per line, then the frames the server keeps, oldest first. A\n" +
					"payload is shown compacted and cut to 60 characters; … marks a cut (the server\n" +
					"cuts at 1 KiB). --json has the payloads as the server keeps them.",
				Flags:  withAPI(&cli.BoolFlag{Name: "json", Usage: "print the server's JSON answer, indented (payloads up to 1 KiB)"}),
				Action: p.clientsShowAction,
			},
			{
				Name:        "kick",
				Usage:       "disconnect a charge point, and with --block refuse its reconnects for a while",
				ArgsUsage:   "CID",
				Description: "Exit status 1 when CID is not connected.",
				Flags:       withAPI(&cli.StringFlag{Name: "block", Usage: "refuse the charge point's reconnects for this `DURATION` (60s, 15m, 2h)"}),
				Action:      p.clientsKickAction,
			},
		},
	}
}

// clientsArgs is flagsFirst for the clients app: the app's own flags (with their values) may
// come before the subcommand, the subcommand's flags anywhere after it.
func clientsArgs(args []string, app *cli.App) []string {
	takesValue := map[string]bool{}
	for _, f := range app.Flags {
		if df, ok := f.(cli.DocGenerationFlag); ok && df.TakesValue() {
			for _, n := range f.Names() {
				takesValue[n] = true
			}
		}
	}
	i := 0
	for i < len(args) && len(args[i]) > 1 && args[i][0] == '-' && args[i] != "--" {
		if name := strings.TrimLeft(args[i], "-"); !strings.Contains(name, "=") && takesValue[name] {
			i++
		}
		i++
	}
	i = min(i, len(args))
	return append(slices.Clone(args[:i]), flagsFirst(args[i:], app.Commands)...)
}

// apiClient calls the admin API of one chargemq.
type apiClient struct {
	base           string // --api without a trailing slash, e.g. http://127.0.0.1:18083
	user, password string
	http           *http.Client
}

// flagOrEnv is the flag name as given to the innermost command that has it, else $env, else
// "". Empty values count as not given, as for --users-file.
func (p *program) flagOrEnv(c *cli.Context, name, env string) string {
	for _, lc := range c.Lineage() {
		if slices.Contains(lc.LocalFlagNames(), name) {
			if v := lc.String(name); v != "" {
				return v
			}
		}
	}
	if v, ok := p.lookupEnv(env); ok {
		return v
	}
	return ""
}

// apiClientOf checks --api, --user and --password (or their environment variables) and
// returns the client they describe.
func (p *program) apiClientOf(c *cli.Context) (*apiClient, error) {
	api := p.flagOrEnv(c, "api", envAPI)
	if api == "" {
		api = defaultAPI
	}
	u, err := url.Parse(api)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return nil, fmt.Errorf("--api %q: want the admin API's base URL, such as %s", api, defaultAPI)
	}
	if u.User != nil {
		return nil, fmt.Errorf("--api: give the credentials as --user and $%s, not in the URL", envAPIPassword)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("--api %q: want a base URL without ?query or #fragment", api)
	}
	a := &apiClient{
		base:     strings.TrimRight(u.Scheme+"://"+u.Host+u.EscapedPath(), "/"),
		user:     p.flagOrEnv(c, "user", envAPIUser),
		password: p.flagOrEnv(c, "password", envAPIPassword),
		http: &http.Client{
			Timeout: apiTimeout,
			// A redirected DELETE would come back a GET (net/http's compatibility rule), and a
			// kick would then "succeed" on the charge point's description: follow none.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	switch {
	case a.user != "" && a.password == "":
		return nil, fmt.Errorf("--user %s: no password; set $%s (or --password, which ps shows)", a.user, envAPIPassword)
	case a.user == "" && a.password != "":
		return nil, fmt.Errorf("a password without a user: give --user (or $%s)", envAPIUser)
	}
	return a, nil
}

// apiError is an answer of the admin API with an error status.
type apiError struct {
	Status  int
	Message string // the server's "error"
	Hint    string // what to do about it, in parentheses, or ""
}

// Error is "401 Unauthorized: admin credentials required (--user, CHARGEMQ_API_PASSWORD)".
func (e *apiError) Error() string {
	s := fmt.Sprintf("%d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
	if e.Hint != "" {
		s += " (" + e.Hint + ")"
	}
	return s
}

// do sends method to path (below --api) with query, and returns the JSON answer and the
// server's clock at the time of the answer (its Date header; the local clock without one).
// An error status becomes an *apiError; an answer that is not JSON, an error naming the URL.
func (a *apiClient) do(ctx context.Context, method, path string, query url.Values) ([]byte, time.Time, error) {
	target := a.base + path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, target, nil)
	if err != nil {
		return nil, time.Time{}, err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "chargemq/"+buildVersion().Version)
	if a.user != "" {
		req.SetBasicAuth(a.user, a.password)
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return nil, time.Time{}, a.transportError(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAPIAnswer+1))
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("%s %s: reading the answer: %w", method, target, a.unwrapTimeout(err))
	}
	if len(body) > maxAPIAnswer {
		return nil, time.Time{}, fmt.Errorf("%s %s: the answer is over %d MiB", method, target, maxAPIAnswer>>20)
	}
	if loc := resp.Header.Get("Location"); resp.StatusCode >= 300 && resp.StatusCode < 400 {
		return nil, time.Time{}, fmt.Errorf("%s %s: %s to %q; give --api the URL that answers itself (redirects are not followed)",
			method, target, resp.Status, loc)
	}
	ok := resp.StatusCode >= 200 && resp.StatusCode < 300
	if !json.Valid(body) {
		status := ""
		if !ok {
			status = " " + resp.Status + ","
		}
		return nil, time.Time{}, fmt.Errorf("%s %s:%s the answer is not JSON (%s%s); is --api the admin API of a chargemq?",
			method, target, status, answerContentType(resp.Header), bodySnippet(body))
	}
	if !ok {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(body, &e) != nil || e.Error == "" {
			e.Error = "no error message in the answer"
		}
		return nil, time.Time{}, &apiError{Status: resp.StatusCode, Message: e.Error, Hint: a.hint(resp.StatusCode, resp.Header)}
	}
	now, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil {
		now = time.Now()
	}
	return body, now, nil
}

// hint says what to do about a 401, or when to retry after a 429 (failed logins back off).
// The server's 403 says why itself.
func (a *apiClient) hint(status int, h http.Header) string {
	switch {
	case status == http.StatusUnauthorized && a.user == "":
		return "--user, " + envAPIPassword
	case status == http.StatusUnauthorized:
		return "as " + strconv.Quote(a.user) + "; check --user and " + envAPIPassword
	case status == http.StatusTooManyRequests && h.Get("Retry-After") != "":
		return "retry after " + h.Get("Retry-After") + "s"
	}
	return ""
}

// transportError explains a request that got no answer. When nothing listens, or nothing
// answers in time, it says which server it tried and what to check.
func (a *apiClient) transportError(err error) error {
	var ue *url.Error
	if !errors.As(err, &ue) || errors.Is(err, context.Canceled) {
		return err
	}
	var dnsErr *net.DNSError
	var opErr *net.OpError
	reason := ""
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		reason = "connection refused"
	case ue.Timeout():
		reason = "no answer within " + apiTimeout.String()
	case errors.As(err, &dnsErr):
		reason = "cannot resolve " + dnsErr.Name + ": " + dnsErr.Err
	case errors.As(err, &opErr) && opErr.Op == "dial":
		reason = opErr.Err.Error()
	default:
		return fmt.Errorf("%s %s: %w", ue.Op, ue.URL, ue.Err)
	}
	return fmt.Errorf("no chargemq answers at %s (%s); is it running, and is --api right?", a.base, reason)
}

// unwrapTimeout names the timeout when reading the body outlasted it.
func (a *apiClient) unwrapTimeout(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("no complete answer within %s", apiTimeout)
	}
	return err
}

// answerContentType is the Content-Type of an answer, or "no Content-Type".
func answerContentType(h http.Header) string {
	if ct := h.Get("Content-Type"); ct != "" {
		return ct
	}
	return "no Content-Type"
}

// bodySnippet is the start of a body that is not JSON, quoted, for an error message.
func bodySnippet(body []byte) string {
	s := strings.TrimSpace(string(body))
	if s == "" {
		return ", empty"
	}
	if r := []rune(s); len(r) > 40 {
		s = string(r[:40]) + "…"
	}
	return ": " + strconv.Quote(s)
}

// clientInfo is a charge point as the admin API describes it; the fields after FramesOut come
// only with GET /api/v1/clients/{cid}.
type clientInfo struct {
	CID             string           `json:"cid"`
	Protocol        string           `json:"protocol"`
	Remote          string           `json:"remote"`
	Username        string           `json:"username"`
	SecurityProfile int              `json:"security_profile"`
	ConnectedAt     time.Time        `json:"connected_at"`
	LastSeen        time.Time        `json:"last_seen"`
	QueueDepth      int              `json:"queue_depth"`
	Held            int              `json:"held"`
	Outstanding     *outstandingCall `json:"outstanding"`
	FramesIn        frameCounts      `json:"frames_in"`
	FramesOut       frameCounts      `json:"frames_out"`

	HeartbeatIntervalSeconds *float64    `json:"heartbeat_interval_seconds"`
	Frames                   []frameInfo `json:"frames"`
}

// outstandingCall is the command sent to a charge point and not yet answered.
type outstandingCall struct {
	Action   string    `json:"action"`
	UniqueID string    `json:"unique_id"`
	SentAt   time.Time `json:"sent_at"`
}

// frameCounts counts frames by type (call, callresult, callerror); a map, so types a newer
// server adds are counted too.
type frameCounts map[string]int64

// total is the sum over the types.
func (f frameCounts) total() int64 {
	var n int64
	for _, v := range f {
		n += v
	}
	return n
}

// String is "call 3, callresult 1, callerror 0", the three of OCPP-J first.
func (f frameCounts) String() string {
	keys := []string{"call", "callresult", "callerror"}
	var others []string
	for k := range f {
		if !slices.Contains(keys, k) {
			others = append(others, k)
		}
	}
	slices.Sort(others)
	parts := make([]string, 0, len(f)+2)
	for _, k := range append(keys, others...) {
		parts = append(parts, fmt.Sprintf("%s %d", k, f[k]))
	}
	return strings.Join(parts, ", ")
}

// frameInfo is one frame of a charge point's recent traffic.
type frameInfo struct {
	Time      time.Time `json:"time"`
	Direction string    `json:"direction"`
	Type      string    `json:"type"`
	Action    string    `json:"action"`
	UniqueID  string    `json:"unique_id"`
	Size      int       `json:"size"`
	Payload   string    `json:"payload"`
	Truncated bool      `json:"truncated"`
}

// clientList is the answer of GET /api/v1/clients.
type clientList struct {
	Total   int          `json:"total"`
	Offset  int          `json:"offset"`
	Limit   int          `json:"limit"`
	Clients []clientInfo `json:"clients"`
}

// clientsNoArgs refuses positional arguments to c.
func clientsNoArgs(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("clients %s: unexpected argument %q (see chargemq clients %[1]s --help)", c.Command.Name, c.Args().First())
	}
	return nil
}

// clientsCID is the one CID argument of c.
func clientsCID(c *cli.Context) (string, error) {
	if c.NArg() != 1 || c.Args().First() == "" {
		return "", fmt.Errorf("clients %s: want one CID argument, got %d (see chargemq clients %[1]s --help)", c.Command.Name, c.NArg())
	}
	return c.Args().First(), nil
}

// printIndentedJSON prints a JSON answer as it came, indented.
func (p *program) printIndentedJSON(body []byte) error {
	var out bytes.Buffer
	if err := json.Indent(&out, body, "", "  "); err != nil {
		return err
	}
	out.WriteByte('\n')
	_, err := p.stdout.Write(out.Bytes())
	return err
}

// decodeAPIAnswer decodes a JSON answer of the admin API from target into v, and checks that
// it has the field named field (a JSON object from another server decodes into zero values).
func decodeAPIAnswer(body []byte, target string, v any, field string) error {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%s: not the answer of a chargemq admin API: %w", target, err)
	}
	if err := json.Unmarshal(body, &fields); err != nil || fields[field] == nil {
		return fmt.Errorf("%s: not the answer of a chargemq admin API: no %q in it", target, field)
	}
	return nil
}

// clientsListAction is `clients list`.
func (p *program) clientsListAction(c *cli.Context) error {
	if err := clientsNoArgs(c); err != nil {
		return err
	}
	query := url.Values{}
	if q := c.String("q"); q != "" {
		query.Set("q", q)
	}
	if c.IsSet("limit") {
		if c.Int("limit") < 1 {
			return fmt.Errorf("clients list: --limit %d: want 1 or more", c.Int("limit"))
		}
		query.Set("limit", strconv.Itoa(c.Int("limit")))
	}
	if c.IsSet("offset") {
		if c.Int("offset") < 0 {
			return fmt.Errorf("clients list: --offset %d: want 0 or more", c.Int("offset"))
		}
		query.Set("offset", strconv.Itoa(c.Int("offset")))
	}
	a, err := p.apiClientOf(c)
	if err != nil {
		return err
	}
	body, now, err := a.do(c.Context, http.MethodGet, "/api/v1/clients", query)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return p.printIndentedJSON(body)
	}
	var list clientList
	if err := decodeAPIAnswer(body, a.base+"/api/v1/clients", &list, "clients"); err != nil {
		return err
	}
	return writeClientList(p.stdout, list, c.String("q"), now)
}

// writeClientList prints list as a table; now is the server's clock for the ages.
func writeClientList(out io.Writer, list clientList, q string, now time.Time) error {
	if len(list.Clients) == 0 && list.Total == 0 {
		msg := "no charge points connected"
		if q != "" {
			msg = fmt.Sprintf("no connected charge point matches %q", q)
		}
		_, err := fmt.Fprintln(out, msg)
		return err
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "CID\tPROTOCOL\tPROFILE\tREMOTE\tCONNECTED\tLAST SEEN\tQUEUE\tHELD\tOUTSTANDING\tIN\tOUT")
	for _, cl := range list.Clients {
		pending := "-"
		if o := cl.Outstanding; o != nil {
			pending = o.Action + "/" + o.UniqueID
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%s\t%d\t%d\t%s\t%d\t%d\n",
			tableCell(cl.CID), tableCell(cl.Protocol), cl.SecurityProfile, tableCell(cl.Remote),
			sinceText(cl.ConnectedAt, now), sinceText(cl.LastSeen, now), cl.QueueDepth, cl.Held, tableCell(pending),
			cl.FramesIn.total(), cl.FramesOut.total())
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if paged := len(list.Clients) < list.Total || list.Offset > 0; paged {
		line := fmt.Sprintf("%d of %d charge points", len(list.Clients), list.Total)
		if list.Offset > 0 {
			line += fmt.Sprintf(", from offset %d", list.Offset)
		}
		if _, err := fmt.Fprintln(out, line); err != nil {
			return err
		}
	}
	return nil
}

// clientsShowAction is `clients show CID`.
func (p *program) clientsShowAction(c *cli.Context) error {
	cid, err := clientsCID(c)
	if err != nil {
		return err
	}
	a, err := p.apiClientOf(c)
	if err != nil {
		return err
	}
	path := "/api/v1/clients/" + url.PathEscape(cid)
	body, now, err := a.do(c.Context, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return p.printIndentedJSON(body)
	}
	var cl clientInfo
	if err := decodeAPIAnswer(body, a.base+path, &cl, "cid"); err != nil {
		return err
	}
	return writeClient(p.stdout, cl, now)
}

// writeClient prints one charge point: "key: value" lines, then its frames as a table.
func writeClient(out io.Writer, cl clientInfo, now time.Time) error {
	w := tabwriter.NewWriter(out, 0, 4, 1, ' ', 0)
	when := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.Format(time.RFC3339Nano) + " (" + sinceText(t, now) + " ago)"
	}
	orDash := func(s string) string {
		if s == "" {
			return "-"
		}
		return tableCell(s)
	}
	fmt.Fprintf(w, "cid:\t%s\n", tableCell(cl.CID))
	fmt.Fprintf(w, "protocol:\t%s\n", orDash(cl.Protocol))
	fmt.Fprintf(w, "remote:\t%s\n", orDash(cl.Remote))
	fmt.Fprintf(w, "username:\t%s\n", orDash(cl.Username))
	fmt.Fprintf(w, "security_profile:\t%d\n", cl.SecurityProfile)
	fmt.Fprintf(w, "connected_at:\t%s\n", when(cl.ConnectedAt))
	fmt.Fprintf(w, "last_seen:\t%s\n", when(cl.LastSeen))
	if cl.HeartbeatIntervalSeconds != nil {
		fmt.Fprintf(w, "heartbeat_interval:\t%ss\n", strconv.FormatFloat(*cl.HeartbeatIntervalSeconds, 'f', -1, 64))
	}
	fmt.Fprintf(w, "queue_depth:\t%d\n", cl.QueueDepth)
	fmt.Fprintf(w, "held:\t%d\n", cl.Held)
	if o := cl.Outstanding; o != nil {
		fmt.Fprintf(w, "outstanding:\t%s %s, sent %s\n", tableCell(o.Action), tableCell(o.UniqueID), when(o.SentAt))
	} else {
		fmt.Fprintf(w, "outstanding:\t-\n")
	}
	fmt.Fprintf(w, "frames_in:\t%s\n", cl.FramesIn)
	fmt.Fprintf(w, "frames_out:\t%s\n", cl.FramesOut)
	if err := w.Flush(); err != nil {
		return err
	}
	if len(cl.Frames) == 0 {
		_, err := fmt.Fprintln(out, "\nno recent frames")
		return err
	}
	fmt.Fprintf(out, "\nrecent frames (%d, oldest first):\n", len(cl.Frames))
	// The time of day alone when every frame is from the first one's day, the common case.
	layout := "15:04:05.000"
	for _, f := range cl.Frames {
		if y, m, d := f.Time.Date(); y != cl.Frames[0].Time.Year() || m != cl.Frames[0].Time.Month() || d != cl.Frames[0].Time.Day() {
			layout = "2006-01-02T15:04:05.000Z07:00"
		}
	}
	w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "TIME\tDIR\tTYPE\tACTION\tID\tSIZE\tPAYLOAD")
	for _, f := range cl.Frames {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", f.Time.Format(layout), orDash(f.Direction), orDash(f.Type),
			orDash(f.Action), orDash(f.UniqueID), f.Size, cutPayload(f.Payload, f.Truncated, payloadWidth))
	}
	return w.Flush()
}

// clientsKickAction is `clients kick CID [--block D]`.
func (p *program) clientsKickAction(c *cli.Context) error {
	cid, err := clientsCID(c)
	if err != nil {
		return err
	}
	query := url.Values{}
	if block := strings.TrimSpace(c.String("block")); c.IsSet("block") {
		if d, err := time.ParseDuration(block); err != nil || d <= 0 {
			return fmt.Errorf("clients kick: --block %q: want a positive duration such as 60s, 15m or 2h", c.String("block"))
		}
		query.Set("block", block)
	}
	a, err := p.apiClientOf(c)
	if err != nil {
		return err
	}
	path := "/api/v1/clients/" + url.PathEscape(cid)
	body, _, err := a.do(c.Context, http.MethodDelete, path, query)
	if err != nil {
		return err
	}
	var ans struct {
		Kicked       string     `json:"kicked"`
		BlockedUntil *time.Time `json:"blocked_until"`
	}
	if err := decodeAPIAnswer(body, a.base+path, &ans, "kicked"); err != nil {
		return err
	}
	fmt.Fprintf(p.stdout, "kicked %s\n", tableCell(ans.Kicked))
	switch {
	case ans.BlockedUntil != nil:
		fmt.Fprintf(p.stdout, "reconnects refused until %s\n", ans.BlockedUntil.Format(time.RFC3339))
	case query.Has("block"):
		fmt.Fprintf(p.stderr, "chargemq: warning: the server did not confirm the block (no blocked_until in its answer)\n")
	}
	return nil
}

// sinceText is how long before now t was, rounded to seconds ("5m3s"); the time itself when that is
// a day or more, or when t is after now by more than the Date header's one-second resolution;
// "-" for no time.
func sinceText(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	switch {
	case d < -time.Second || d >= 24*time.Hour:
		return t.Format(time.RFC3339)
	case d < 0:
		d = 0
	}
	return d.Round(time.Second).String()
}

// tableCell is s fit for one table cell: quoted, if it holds control characters (a tab or newline
// would break the table, an escape sequence the terminal).
func tableCell(s string) string {
	if strings.ContainsFunc(s, unicode.IsControl) || !utf8.ValidString(s) {
		return strconv.Quote(s)
	}
	return s
}

// cutPayload is a payload on one line, cut to width characters; "…" marks a cut, ours or the
// server's (truncated).
func cutPayload(payload string, truncated bool, width int) string {
	var compact bytes.Buffer
	s := strings.Join(strings.Fields(payload), " ")
	if json.Compact(&compact, []byte(payload)) == nil {
		s = compact.String() // keeps the spaces inside strings
	}
	if s == "" {
		return "-"
	}
	if r := []rune(s); len(r) > width {
		s, truncated = string(r[:width-1]), true
	}
	if truncated {
		s += "…"
	}
	return tableCell(s)
}
