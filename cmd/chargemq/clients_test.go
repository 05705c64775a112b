package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/chargemq/chargemq/broker"
)

// The tests that drive the urfave/cli app (through run or p.run) are not parallel, as in
// main_test.go: urfave/cli v2 writes package state (cli.HelpFlag) on every run, which the race
// detector reports when two apps run at once. The pure parts (formatting, argument order,
// error classification) are table tests with t.Parallel.

// apiNow is the server's clock in the fake answers (their Date header), so ages are exact.
var apiNow = time.Date(2026, 12, 1, 22, 5, 3, 0, time.UTC)

// The fake admin API's answers, as the contract in the brief of `chargemq clients` gives them.
const (
	clientCP1 = `{"cid":"CP1","protocol":"ocpp1.6","remote":"127.0.0.1:5555","username":"CP1","security_profile":1,` +
		`"connected_at":"2026-12-01T22:00:00.123456789Z","last_seen":"2026-12-01T22:00:05Z","queue_depth":0,"held":0,` +
		`"outstanding":{"action":"Reset","unique_id":"abc","sent_at":"2026-12-01T22:00:04Z"},` +
		`"frames_in":{"call":3,"callresult":1,"callerror":0},"frames_out":{"call":1,"callresult":3,"callerror":0}}`
	clientCP2 = `{"cid":"CP2","protocol":"ocpp1.6","remote":"10.0.0.7:40112","security_profile":2,` +
		`"connected_at":"2026-11-28T09:30:00Z","last_seen":"2026-12-01T22:04:33.6Z","queue_depth":2,"held":5,` +
		`"outstanding":null,"frames_in":{"call":1200,"callresult":7,"callerror":1},"frames_out":{"call":8,"callresult":1200,"callerror":0},` +
		`"future_field":true}`
	listBody = `{"total":2,"offset":0,"limit":100,"clients":[` + clientCP1 + `,` + clientCP2 + `]}`
	showBody = `{"cid":"CP1","protocol":"ocpp1.6","remote":"127.0.0.1:5555","username":"CP1","security_profile":1,` +
		`"connected_at":"2026-12-01T22:00:00.123456789Z","last_seen":"2026-12-01T22:00:05Z","queue_depth":1,"held":0,` +
		`"outstanding":{"action":"Reset","unique_id":"abc","sent_at":"2026-12-01T22:00:04Z"},` +
		`"frames_in":{"call":3,"callresult":1,"callerror":0,"malformed":1},"frames_out":{"call":1,"callresult":3,"callerror":0},` +
		`"heartbeat_interval_seconds":60,"frames":[` +
		`{"time":"2026-12-01T22:00:00.2Z","direction":"in","type":"call","action":"BootNotification","unique_id":"1","size":98,` +
		`"payload":"{\"chargePointVendor\": \"ACME\", \"chargePointModel\": \"Wallbox 22 kW Pro\", \"firmwareVersion\": \"1.0\"}","truncated":false},` +
		`{"time":"2026-12-01T22:00:00.201Z","direction":"out","type":"callresult","unique_id":"1","size":71,` +
		`"payload":"{\"status\":\"Accepted\",\"currentTime\":\"2026-12-01T22:00:00Z\",\"interval\":60}","truncated":false},` +
		`{"time":"2026-12-01T22:00:03Z","direction":"in","type":"malformed","size":1500,"payload":"[2,\"x\",\"DataTransfer\",{\"data\":\"aaaa","truncated":true},` +
		`{"time":"2026-12-01T22:00:04Z","direction":"out","type":"call","action":"Reset","unique_id":"abc","size":36,` +
		`"payload":"{\"type\":\"Soft\"}","truncated":false}]}`
)

const wantList = `CID  PROTOCOL  PROFILE  REMOTE          CONNECTED             LAST SEEN  QUEUE  HELD  OUTSTANDING  IN    OUT
CP1  ocpp1.6   1        127.0.0.1:5555  5m3s                  4m58s      0      0     Reset/abc    4     4
CP2  ocpp1.6   2        10.0.0.7:40112  2026-11-28T09:30:00Z  29s        2      5     -            1208  1208
`

const wantShow = `cid:                CP1
protocol:           ocpp1.6
remote:             127.0.0.1:5555
username:           CP1
security_profile:   1
connected_at:       2026-12-01T22:00:00.123456789Z (5m3s ago)
last_seen:          2026-12-01T22:00:05Z (4m58s ago)
heartbeat_interval: 60s
queue_depth:        1
held:               0
outstanding:        Reset abc, sent 2026-12-01T22:00:04Z (4m59s ago)
frames_in:          call 3, callresult 1, callerror 0, malformed 1
frames_out:         call 1, callresult 3, callerror 0

recent frames (4, oldest first):
TIME          DIR  TYPE        ACTION            ID   SIZE  PAYLOAD
22:00:00.200  in   call        BootNotification  1    98    {"chargePointVendor":"ACME","chargePointModel":"Wallbox 22 …
22:00:00.201  out  callresult  -                 1    71    {"status":"Accepted","currentTime":"2026-12-01T22:00:00Z","…
22:00:03.000  in   malformed   -                 -    1500  [2,"x","DataTransfer",{"data":"aaaa…
22:00:04.000  out  call        Reset             abc  36    {"type":"Soft"}
`

// apiRequest is what the fake admin API received.
type apiRequest struct {
	method, path string // path escaped, as sent
	query        url.Values
	auth         string // "user:password", or "" without Basic credentials
}

// apiAnswer is what the fake admin API answers.
type apiAnswer struct {
	status      int // 200 when 0
	header      http.Header
	body        string // JSON unless contentType says otherwise
	contentType string
}

// startFakeAPI serves answer to every request on 127.0.0.1 and hands each request to the
// returned channel (a channel, so the test reads what the handler wrote race-free).
func startFakeAPI(t *testing.T, answer apiAnswer) (string, <-chan apiRequest) {
	t.Helper()
	got := make(chan apiRequest, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req := apiRequest{method: r.Method, path: r.URL.EscapedPath(), query: r.URL.Query()}
		if u, p, ok := r.BasicAuth(); ok {
			req.auth = u + ":" + p
		}
		got <- req
		ct := answer.contentType
		if ct == "" {
			ct = "application/json"
		}
		w.Header().Set("Content-Type", ct)
		w.Header().Set("Date", apiNow.Format(http.TimeFormat))
		for k, v := range answer.header {
			w.Header()[k] = v
		}
		status := answer.status
		if status == 0 {
			status = http.StatusOK
		}
		if status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Basic realm="chargemq"`)
		}
		w.WriteHeader(status)
		fmt.Fprint(w, answer.body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, got
}

// clientsRun runs `chargemq clients args...` in the environment env and returns stdout,
// stderr and the error. {api} in args and env values is replaced by api.
func clientsRun(t *testing.T, api string, env map[string]string, args ...string) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	full := []string{"chargemq", "clients"}
	for _, a := range args {
		full = append(full, strings.ReplaceAll(a, "{api}", api))
	}
	e := map[string]string{}
	for k, v := range env {
		e[k] = strings.ReplaceAll(v, "{api}", api)
	}
	p := &program{stdout: &stdout, stderr: &stderr, lookupEnv: envOf(e), serve: failServe(t), exit: failExit(t)}
	err := p.run(context.Background(), full)
	return stdout.String(), stderr.String(), err
}

func TestClientsCommands(t *testing.T) {
	indent := func(s string) string {
		var b bytes.Buffer
		if err := json.Indent(&b, []byte(s), "", "  "); err != nil {
			t.Fatal(err)
		}
		return b.String() + "\n"
	}
	notConnected := apiAnswer{status: 404, body: `{"error":"charge point CP9 is not connected"}`}
	kicked := apiAnswer{body: `{"kicked":"CP1"}`}
	tests := []struct {
		name    string
		args    []string // after "clients"; {api} is the fake server's URL
		env     map[string]string
		answer  apiAnswer
		want    *apiRequest // nil: no request may reach the server
		stdout  string      // exact
		stderr  string      // exact
		wantErr bool
	}{
		{name: "list table", args: []string{"list", "--api", "{api}"}, answer: apiAnswer{body: listBody},
			want:   &apiRequest{method: "GET", path: "/api/v1/clients", query: url.Values{}},
			stdout: wantList},
		{name: "list paged with a filter", args: []string{"list", "--q", "CP", "--limit", "1", "--offset", "1", "--api", "{api}"},
			answer: apiAnswer{body: `{"total":3,"offset":1,"limit":1,"clients":[` + clientCP1 + `]}`},
			want:   &apiRequest{method: "GET", path: "/api/v1/clients", query: url.Values{"q": {"CP"}, "limit": {"1"}, "offset": {"1"}}},
			stdout: "CID  PROTOCOL  PROFILE  REMOTE          CONNECTED  LAST SEEN  QUEUE  HELD  OUTSTANDING  IN  OUT\n" +
				"CP1  ocpp1.6   1        127.0.0.1:5555  5m3s       4m58s      0      0     Reset/abc    4   4\n" +
				"1 of 3 charge points, from offset 1\n"},
		{name: "list json passes the answer through", args: []string{"list", "--json", "--api", "{api}"}, answer: apiAnswer{body: listBody},
			want:   &apiRequest{method: "GET", path: "/api/v1/clients", query: url.Values{}},
			stdout: indent(listBody)},
		{name: "list none connected", args: []string{"list", "--api", "{api}"},
			answer: apiAnswer{body: `{"total":0,"offset":0,"limit":100,"clients":[]}`},
			want:   &apiRequest{method: "GET", path: "/api/v1/clients", query: url.Values{}},
			stdout: "no charge points connected\n"},
		{name: "list none matches", args: []string{"list", "--q", "zz", "--api", "{api}"},
			answer: apiAnswer{body: `{"total":0,"offset":0,"limit":100,"clients":[]}`},
			want:   &apiRequest{method: "GET", path: "/api/v1/clients", query: url.Values{"q": {"zz"}}},
			stdout: "no connected charge point matches \"zz\"\n"},

		{name: "show with frames", args: []string{"show", "CP1", "--api", "{api}"}, answer: apiAnswer{body: showBody},
			want:   &apiRequest{method: "GET", path: "/api/v1/clients/CP1", query: url.Values{}},
			stdout: wantShow},
		{name: "show json", args: []string{"show", "--json", "CP1", "--api", "{api}"}, answer: apiAnswer{body: showBody},
			want:   &apiRequest{method: "GET", path: "/api/v1/clients/CP1", query: url.Values{}},
			stdout: indent(showBody)},
		{name: "show escapes the cid", args: []string{"show", "CP 1/x?", "--json", "--api", "{api}"}, answer: apiAnswer{body: `{"cid":"CP 1/x?"}`},
			want:   &apiRequest{method: "GET", path: "/api/v1/clients/CP%201%2Fx%3F", query: url.Values{}},
			stdout: "{\n  \"cid\": \"CP 1/x?\"\n}\n"},
		{name: "show not connected", args: []string{"show", "CP9", "--api", "{api}"}, answer: notConnected,
			want:   &apiRequest{method: "GET", path: "/api/v1/clients/CP9", query: url.Values{}},
			stderr: "chargemq: 404 Not Found: charge point CP9 is not connected\n", wantErr: true},

		{name: "kick", args: []string{"kick", "CP1", "--api", "{api}"}, answer: kicked,
			want:   &apiRequest{method: "DELETE", path: "/api/v1/clients/CP1", query: url.Values{}},
			stdout: "kicked CP1\n"},
		{name: "kick with block", args: []string{"kick", "CP1", "--block", "60s", "--api", "{api}"},
			answer: apiAnswer{body: `{"kicked":"CP1","blocked_until":"2026-12-01T22:01:00Z"}`},
			want:   &apiRequest{method: "DELETE", path: "/api/v1/clients/CP1", query: url.Values{"block": {"60s"}}},
			stdout: "kicked CP1\nreconnects refused until 2026-12-01T22:01:00Z\n"},
		{name: "kick with block unconfirmed", args: []string{"kick", "CP1", "--block=2h", "--api", "{api}"}, answer: kicked,
			want:   &apiRequest{method: "DELETE", path: "/api/v1/clients/CP1", query: url.Values{"block": {"2h"}}},
			stdout: "kicked CP1\n", stderr: "chargemq: warning: the server did not confirm the block (no blocked_until in its answer)\n"},
		{name: "kick not connected", args: []string{"kick", "CP9", "--api", "{api}"}, answer: notConnected,
			want:   &apiRequest{method: "DELETE", path: "/api/v1/clients/CP9", query: url.Values{}},
			stderr: "chargemq: 404 Not Found: charge point CP9 is not connected\n", wantErr: true},
		{name: "kick bad duration from the server", args: []string{"kick", "CP1", "--block", "1000000h", "--api", "{api}"},
			answer: apiAnswer{status: 400, body: `{"error":"block: at most 24h"}`},
			want:   &apiRequest{method: "DELETE", path: "/api/v1/clients/CP1", query: url.Values{"block": {"1000000h"}}},
			stderr: "chargemq: 400 Bad Request: block: at most 24h\n", wantErr: true},
		{name: "kick bad block", args: []string{"kick", "CP1", "--block", "60", "--api", "{api}"},
			stderr: "chargemq: clients kick: --block \"60\": want a positive duration such as 60s, 15m or 2h\n", wantErr: true},
		{name: "kick zero block", args: []string{"kick", "CP1", "--block", "0s", "--api", "{api}"},
			stderr: "chargemq: clients kick: --block \"0s\": want a positive duration such as 60s, 15m or 2h\n", wantErr: true},
		{name: "kick negative block", args: []string{"kick", "--block=-5m", "CP1", "--api", "{api}"},
			stderr: "chargemq: clients kick: --block \"-5m\": want a positive duration such as 60s, 15m or 2h\n", wantErr: true},

		{name: "401 without credentials", args: []string{"list", "--api", "{api}"},
			answer: apiAnswer{status: 401, body: `{"error":"admin credentials required"}`},
			want:   &apiRequest{method: "GET", path: "/api/v1/clients", query: url.Values{}},
			stderr: "chargemq: 401 Unauthorized: admin credentials required (--user, CHARGEMQ_API_PASSWORD)\n", wantErr: true},
		{name: "401 with wrong credentials", args: []string{"kick", "CP1", "--api", "{api}", "--user", "root"},
			env:    map[string]string{"CHARGEMQ_API_PASSWORD": "wrong"},
			answer: apiAnswer{status: 401, body: `{"error":"wrong user or password"}`},
			want:   &apiRequest{method: "DELETE", path: "/api/v1/clients/CP1", query: url.Values{}, auth: "root:wrong"},
			stderr: "chargemq: 401 Unauthorized: wrong user or password (as \"root\"; check --user and CHARGEMQ_API_PASSWORD)\n", wantErr: true},
		{name: "403 remote without users file", args: []string{"show", "CP1", "--api", "{api}"},
			answer: apiAnswer{status: 403, body: `{"error":"without a users file (auth.users_file) the admin API answers only loopback clients"}`},
			want:   &apiRequest{method: "GET", path: "/api/v1/clients/CP1", query: url.Values{}},
			stderr: "chargemq: 403 Forbidden: without a users file (auth.users_file) the admin API answers only loopback clients\n", wantErr: true},
		{name: "429 during the login back-off", args: []string{"list", "--api", "{api}", "--user", "root", "--password", "x"},
			answer: apiAnswer{status: 429, header: http.Header{"Retry-After": {"3"}}, body: `{"error":"too many failed logins; retry later"}`},
			want:   &apiRequest{method: "GET", path: "/api/v1/clients", query: url.Values{}, auth: "root:x"},
			stderr: "chargemq: 429 Too Many Requests: too many failed logins; retry later (retry after 3s)\n", wantErr: true},
		{name: "error status without a message", args: []string{"list", "--api", "{api}"}, answer: apiAnswer{status: 500, body: `{}`},
			want:   &apiRequest{method: "GET", path: "/api/v1/clients", query: url.Values{}},
			stderr: "chargemq: 500 Internal Server Error: no error message in the answer\n", wantErr: true},
		{name: "answer not JSON", args: []string{"list", "--api", "{api}"},
			answer: apiAnswer{body: "<html><body>router login</body></html>", contentType: "text/html"},
			want:   &apiRequest{method: "GET", path: "/api/v1/clients", query: url.Values{}},
			stderr: "chargemq: GET {api}/api/v1/clients: the answer is not JSON (text/html: \"<html><body>router login</body></html>\"); " +
				"is --api the admin API of a chargemq?\n", wantErr: true},
		{name: "error status not JSON", args: []string{"show", "CP1", "--api", "{api}/"},
			answer: apiAnswer{status: 404, body: "404 page not found\n", contentType: "text/plain; charset=utf-8"},
			want:   &apiRequest{method: "GET", path: "/api/v1/clients/CP1", query: url.Values{}},
			stderr: "chargemq: GET {api}/api/v1/clients/CP1: 404 Not Found, the answer is not JSON (text/plain; charset=utf-8: \"404 page not found\"); " +
				"is --api the admin API of a chargemq?\n", wantErr: true},
		{name: "JSON of another shape", args: []string{"list", "--api", "{api}"}, answer: apiAnswer{body: `[1,2]`},
			want:   &apiRequest{method: "GET", path: "/api/v1/clients", query: url.Values{}},
			stderr: "chargemq: {api}/api/v1/clients: not the answer of a chargemq admin API: json: cannot unmarshal array into Go value of type main.clientList\n", wantErr: true},

		{name: "redirect not followed", args: []string{"kick", "CP1", "--api", "{api}", "--user", "root", "--password", "pw"},
			answer: apiAnswer{status: 301, header: http.Header{"Location": {"https://gw.example/api/v1/clients/CP1"}}, body: "<a>Moved</a>", contentType: "text/html"},
			want:   &apiRequest{method: "DELETE", path: "/api/v1/clients/CP1", query: url.Values{}, auth: "root:pw"},
			stderr: "chargemq: DELETE {api}/api/v1/clients/CP1: 301 Moved Permanently to \"https://gw.example/api/v1/clients/CP1\"; " +
				"give --api the URL that answers itself (redirects are not followed)\n", wantErr: true},
		{name: "kick answer of another server", args: []string{"kick", "CP1", "--api", "{api}"}, answer: apiAnswer{body: `{"ok":true}`},
			want:   &apiRequest{method: "DELETE", path: "/api/v1/clients/CP1", query: url.Values{}},
			stderr: "chargemq: {api}/api/v1/clients/CP1: not the answer of a chargemq admin API: no \"kicked\" in it\n", wantErr: true},
		{name: "list answer of another server", args: []string{"list", "--api", "{api}"}, answer: apiAnswer{body: `{"total":0}`},
			want:   &apiRequest{method: "GET", path: "/api/v1/clients", query: url.Values{}},
			stderr: "chargemq: {api}/api/v1/clients: not the answer of a chargemq admin API: no \"clients\" in it\n", wantErr: true},
		{name: "show fractional heartbeat, control characters quoted", args: []string{"show", "CP\a1", "--api", "{api}"},
			answer: apiAnswer{body: `{"cid":"CP\u00071","heartbeat_interval_seconds":0.5,"outstanding":null,"frames":[]}`},
			want:   &apiRequest{method: "GET", path: "/api/v1/clients/CP%071", query: url.Values{}},
			stdout: "cid:                \"CP\\a1\"\nprotocol:           -\nremote:             -\nusername:           -\n" +
				"security_profile:   0\nconnected_at:       -\nlast_seen:          -\nheartbeat_interval: 0.5s\nqueue_depth:        0\n" +
				"held:               0\noutstanding:        -\nframes_in:          call 0, callresult 0, callerror 0\n" +
				"frames_out:         call 0, callresult 0, callerror 0\n\nno recent frames\n"},
		{name: "credentials from flags", args: []string{"kick", "CP1", "--api", "{api}", "--user", "root", "--password", "s3cret"}, answer: kicked,
			want:   &apiRequest{method: "DELETE", path: "/api/v1/clients/CP1", query: url.Values{}, auth: "root:s3cret"},
			stdout: "kicked CP1\n"},
		{name: "everything from the environment", args: []string{"kick", "CP1"}, answer: kicked,
			env:    map[string]string{"CHARGEMQ_API": "{api}", "CHARGEMQ_API_USER": "root", "CHARGEMQ_API_PASSWORD": "from env"},
			want:   &apiRequest{method: "DELETE", path: "/api/v1/clients/CP1", query: url.Values{}, auth: "root:from env"},
			stdout: "kicked CP1\n"},
		{name: "flags win over the environment", args: []string{"list", "--json", "--api", "{api}", "--user", "alice", "--password", "flag"},
			env:    map[string]string{"CHARGEMQ_API": "http://127.0.0.1:1", "CHARGEMQ_API_USER": "root", "CHARGEMQ_API_PASSWORD": "env"},
			answer: apiAnswer{body: `{}`},
			want:   &apiRequest{method: "GET", path: "/api/v1/clients", query: url.Values{}, auth: "alice:flag"},
			stdout: "{}\n"},
		{name: "flags of the clients command", args: []string{"--api", "{api}", "--user=root", "show", "CP1", "--json"},
			env: map[string]string{"CHARGEMQ_API_PASSWORD": "pw"}, answer: apiAnswer{body: `{}`},
			want:   &apiRequest{method: "GET", path: "/api/v1/clients/CP1", query: url.Values{}, auth: "root:pw"},
			stdout: "{}\n"},
		{name: "subcommand flags win over the clients command's", args: []string{"--api", "http://127.0.0.1:1", "--user", "x", "list", "--json", "--api", "{api}", "--user", "root"},
			env: map[string]string{"CHARGEMQ_API_PASSWORD": "pw"}, answer: apiAnswer{body: `{}`},
			want:   &apiRequest{method: "GET", path: "/api/v1/clients", query: url.Values{}, auth: "root:pw"},
			stdout: "{}\n"},
		{name: "api with a path prefix", args: []string{"kick", "CP1", "--api", "{api}/chargemq/"}, answer: kicked,
			want:   &apiRequest{method: "DELETE", path: "/chargemq/api/v1/clients/CP1", query: url.Values{}},
			stdout: "kicked CP1\n"},

		{name: "user without password", args: []string{"list", "--api", "{api}", "--user", "root"},
			stderr: "chargemq: --user root: no password; set $CHARGEMQ_API_PASSWORD (or --password, which ps shows)\n", wantErr: true},
		{name: "password without user", args: []string{"list", "--api", "{api}"}, env: map[string]string{"CHARGEMQ_API_PASSWORD": "pw"},
			stderr: "chargemq: a password without a user: give --user (or $CHARGEMQ_API_USER)\n", wantErr: true},
		{name: "api without scheme", args: []string{"list", "--api", "127.0.0.1:18083"},
			stderr: "chargemq: --api \"127.0.0.1:18083\": want the admin API's base URL, such as http://127.0.0.1:18083\n", wantErr: true},
		{name: "api with credentials", args: []string{"list", "--api", "http://root:pw@127.0.0.1:18083"},
			stderr: "chargemq: --api: give the credentials as --user and $CHARGEMQ_API_PASSWORD, not in the URL\n", wantErr: true},
		{name: "list with an argument", args: []string{"list", "CP1", "--api", "{api}"},
			stderr: "chargemq: clients list: unexpected argument \"CP1\" (see chargemq clients list --help)\n", wantErr: true},
		{name: "list with a bad limit", args: []string{"list", "--limit", "0", "--api", "{api}"},
			stderr: "chargemq: clients list: --limit 0: want 1 or more\n", wantErr: true},
		{name: "show without cid", args: []string{"show", "--api", "{api}"},
			stderr: "chargemq: clients show: want one CID argument, got 0 (see chargemq clients show --help)\n", wantErr: true},
		{name: "kick two cids", args: []string{"kick", "CP1", "CP2", "--api", "{api}"},
			stderr: "chargemq: clients kick: want one CID argument, got 2 (see chargemq clients kick --help)\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api, got := startFakeAPI(t, tt.answer)
			stdout, stderr, err := clientsRun(t, api, tt.env, tt.args...)
			if (err != nil) != tt.wantErr {
				t.Errorf("err = %v, want an error: %v", err, tt.wantErr)
			}
			if want := strings.ReplaceAll(tt.stdout, "{api}", api); stdout != want {
				t.Errorf("stdout:\n%s\nwant:\n%s", stdout, want)
			}
			if want := strings.ReplaceAll(tt.stderr, "{api}", api); stderr != want {
				t.Errorf("stderr:\n%s\nwant:\n%s", stderr, want)
			}
			var reqs []apiRequest
			for len(got) > 0 {
				reqs = append(reqs, <-got)
			}
			switch {
			case tt.want == nil && len(reqs) > 0:
				t.Errorf("requests %+v; want none", reqs)
			case tt.want == nil:
			case len(reqs) != 1:
				t.Errorf("requests %+v; want one, %+v", reqs, *tt.want)
			case reqs[0].method != tt.want.method || reqs[0].path != tt.want.path || reqs[0].auth != tt.want.auth ||
				reqs[0].query.Encode() != tt.want.query.Encode():
				t.Errorf("request %+v; want %+v", reqs[0], *tt.want)
			}
		})
	}
}

// TestClientsConnectionRefused dials a port that was just listened on and closed.
func TestClientsConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	for _, args := range [][]string{{"list"}, {"show", "CP1"}, {"kick", "CP1", "--block", "1m"}} {
		t.Run(args[0], func(t *testing.T) {
			stdout, stderr, err := clientsRun(t, "", nil, append(args, "--api", "http://"+addr)...)
			want := "chargemq: no chargemq answers at http://" + addr + " (connection refused); is it running, and is --api right?\n"
			if err == nil || stderr != want || stdout != "" {
				t.Errorf("err = %v, stdout %q, stderr %q; want %q", err, stdout, stderr, want)
			}
		})
	}
}

// TestClientsThroughRun goes through run itself, as the process does (flags only, so the
// process environment does not matter).
func TestClientsThroughRun(t *testing.T) {
	api, got := startFakeAPI(t, apiAnswer{body: `{"kicked":"CP1","blocked_until":"2026-12-01T22:01:00Z"}`})
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"chargemq", "clients", "kick", "CP1", "--block", "60s",
		"--api", api, "--user", "root", "--password", "pw"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v (stderr %q)", err, stderr.String())
	}
	if want := "kicked CP1\nreconnects refused until 2026-12-01T22:01:00Z\n"; stdout.String() != want || stderr.Len() != 0 {
		t.Errorf("stdout %q, stderr %q; want %q", stdout.String(), stderr.String(), want)
	}
	req := <-got
	if req.method != http.MethodDelete || req.path != "/api/v1/clients/CP1" || req.query.Get("block") != "60s" || req.auth != "root:pw" {
		t.Errorf("request %+v", req)
	}
}

// TestClientsHelp checks the help names the flags, their environment variables and the ps
// warning, and that help asked after a CID does not run the command.
func TestClientsHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"kick", "CP1", "--help"}, {"help", "list"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			stdout, stderr, err := clientsRun(t, "", nil, args...)
			if err != nil {
				t.Fatalf("err = %v, stderr %q", err, stderr)
			}
			for _, w := range []string{"--api URL", "CHARGEMQ_API]", "CHARGEMQ_API_USER", "visible to every user in ps, prefer $CHARGEMQ_API_PASSWORD"} {
				if !strings.Contains(stdout, w) {
					t.Errorf("help lacks %q:\n%s", w, stdout)
				}
			}
		})
	}
}

func TestClientsArgs(t *testing.T) {
	t.Parallel()
	app := (&program{}).clientsApp()
	tests := []struct{ in, want []string }{
		{[]string{"list"}, []string{"list"}},
		{[]string{"show", "CP1", "--json"}, []string{"show", "--json", "--", "CP1"}},
		{[]string{"kick", "CP1", "--block", "60s", "--api", "http://h"}, []string{"kick", "--block", "60s", "--api", "http://h", "--", "CP1"}},
		{[]string{"--api", "http://h", "--user=root", "kick", "CP1", "--block=1m"},
			[]string{"--api", "http://h", "--user=root", "kick", "--block=1m", "--", "CP1"}},
		{[]string{"--api", "http://h"}, []string{"--api", "http://h"}},
		{[]string{"--api"}, []string{"--api"}},
		{[]string{"kick", "--", "-CP1"}, []string{"kick", "--", "-CP1"}},
		{[]string{"show", "CP1", "-h"}, []string{"show", "--help"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.in, " "), func(t *testing.T) {
			t.Parallel()
			if got := clientsArgs(tt.in, app); strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("clientsArgs(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestClientsAge(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		t    time.Time
		want string
	}{
		{"zero", time.Time{}, "-"},
		{"rounded down", apiNow.Add(-5*time.Minute - 3*time.Second - 400*time.Millisecond), "5m3s"},
		{"rounded up", apiNow.Add(-5*time.Minute - 2*time.Second - 600*time.Millisecond), "5m3s"},
		{"now", apiNow, "0s"},
		{"within the Date header's second", apiNow.Add(900 * time.Millisecond), "0s"},
		{"in the future", apiNow.Add(3 * time.Second), "2026-12-01T22:05:06Z"},
		{"just under a day", apiNow.Add(-24*time.Hour + time.Second), "23h59m59s"},
		{"a day", apiNow.Add(-24 * time.Hour), "2026-11-30T22:05:03Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := sinceText(tt.t, apiNow); got != tt.want {
				t.Errorf("age = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestClientsCutPayload(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		payload   string
		truncated bool
		want      string
	}{
		{"empty", "", false, "-"},
		{"short", `{"a":1}`, false, `{"a":1}`},
		{"compacted, spaces in strings kept", "{\n  \"a\": \"x  y\"\n}", false, `{"a":"x  y"}`},
		{"cut by the server", `[2,"1","Heartbeat",{`, true, `[2,"1","Heartbeat",{…`},
		{"cut here", strings.Repeat("é", 30), false, strings.Repeat("é", 19) + "…"},
		{"exactly the width", strings.Repeat("a", 20), false, strings.Repeat("a", 20)},
		{"not JSON, whitespace folded", "a\tb\r\nc", false, "a b c"},
		{"control characters quoted", "a\x1b[2Jb", false, `"a\x1b[2Jb"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := cutPayload(tt.payload, tt.truncated, 20); got != tt.want {
				t.Errorf("cutPayload(%q, %v) = %q, want %q", tt.payload, tt.truncated, got, tt.want)
			}
		})
	}
}

func TestClientsCell(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"CP1": "CP1", "CP 1": "CP 1", "a\tb": `"a\tb"`, "a\nb": `"a\nb"`, "\xff": `"\xff"`, "é": "é"} {
		if got := tableCell(in); got != want {
			t.Errorf("tableCell(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestClientsFrameCounts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in    frameCounts
		total int64
		str   string
	}{
		{nil, 0, "call 0, callresult 0, callerror 0"},
		{frameCounts{"call": 3, "callresult": 1, "callerror": 0}, 4, "call 3, callresult 1, callerror 0"},
		{frameCounts{"callerror": 2, "too_large": 1, "malformed": 4}, 7, "call 0, callresult 0, callerror 2, malformed 4, too_large 1"},
	}
	for _, tt := range tests {
		if got := tt.in.total(); got != tt.total {
			t.Errorf("%v.total() = %d, want %d", tt.in, got, tt.total)
		}
		if got := tt.in.String(); got != tt.str {
			t.Errorf("String() = %q, want %q", got, tt.str)
		}
	}
}

// fakeTimeoutError is a net.Error that timed out, as a dial or read past the deadline returns.
type fakeTimeoutError struct{}

func (fakeTimeoutError) Error() string   { return "i/o timeout" }
func (fakeTimeoutError) Timeout() bool   { return true }
func (fakeTimeoutError) Temporary() bool { return true }

func TestClientsTransportError(t *testing.T) {
	t.Parallel()
	a := &apiClient{base: "http://10.0.0.1:18083"}
	urlErr := func(err error) error {
		return &url.Error{Op: "Get", URL: "http://10.0.0.1:18083/api/v1/clients", Err: err}
	}
	const hint = "; is it running, and is --api right?"
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"refused", urlErr(&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}),
			"no chargemq answers at http://10.0.0.1:18083 (connection refused)" + hint},
		{"timeout", urlErr(&net.OpError{Op: "dial", Net: "tcp", Err: fakeTimeoutError{}}),
			"no chargemq answers at http://10.0.0.1:18083 (no answer within 10s)" + hint},
		{"unknown host", urlErr(&net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "chargmq.local"}}),
			"no chargemq answers at http://10.0.0.1:18083 (cannot resolve chargmq.local: no such host)" + hint},
		{"no route", urlErr(&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.EHOSTUNREACH)}),
			"no chargemq answers at http://10.0.0.1:18083 (connect: no route to host)" + hint},
		{"something else answered", urlErr(errors.New("tls: first record does not look like a TLS handshake")),
			"Get http://10.0.0.1:18083/api/v1/clients: tls: first record does not look like a TLS handshake"},
		{"cancelled", urlErr(context.Canceled), `Get "http://10.0.0.1:18083/api/v1/clients": context canceled`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := a.transportError(tt.err).Error(); got != tt.want {
				t.Errorf("transportError = %q\nwant %q", got, tt.want)
			}
		})
	}
}

// TestClientsAgainstBroker runs the commands against the real admin API of an in-process
// gateway (no users file: loopback requests are admitted) with one charge point connected.
func TestClientsAgainstBroker(t *testing.T) {
	o := broker.DefaultOptions()
	o.MQTTAddr, o.MQTTWSAddr, o.OCPPAddr, o.HTTPAddr = "127.0.0.1:0", "", "127.0.0.1:0", "127.0.0.1:0"
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
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://"+b.Addr(broker.ListenerOCPP).String()+"/ocpp/CP1",
		&websocket.DialOptions{Subprotocols: []string{"ocpp1.6"}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	// The gateway answers a call of an action OCPP does not define itself; the answer proves
	// the connection is registered (the reader starts after that).
	if err := ws.Write(ctx, websocket.MessageText, []byte(`[2,"u1","NoSuchAction",{}]`)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ws.Read(ctx); err != nil {
		t.Fatal(err)
	}
	api := "http://" + b.Addr(broker.ListenerHTTP).String()
	tests := []struct {
		args    []string
		want    string // regexp of stdout, or of stderr on error
		wantErr bool
	}{
		{args: []string{"list"},
			want: `^CID +PROTOCOL +PROFILE +REMOTE +CONNECTED +LAST SEEN +QUEUE +HELD +OUTSTANDING +IN +OUT\n` +
				`CP1 +ocpp1\.6 +1 +127\.0\.0\.1:\d+ +\d+s +\d+s +0 +0 +- +1 +1\n$`},
		{args: []string{"list", "--q", "CP9"}, want: `^no connected charge point matches "CP9"\n$`},
		{args: []string{"show", "CP1"},
			want: `(?s)^cid: +CP1\n.*heartbeat_interval: +\d+s\n.*frames_in: +call 1, callresult 0, callerror 0\n.*` +
				`recent frames \(2, oldest first\):\n.*\n[0-9:.]+ +in +call +NoSuchAction +u1 +26 +\{\}\n[0-9:.]+ +out +callerror +- +u1 `},
		{args: []string{"show", "CP9"}, want: `^chargemq: 404 Not Found: charge point CP9 is not connected\n$`, wantErr: true},
		{args: []string{"kick", "CP1", "--block", "1m"}, want: `^kicked CP1\nreconnects refused until \d{4}-\d\d-\d\dT[0-9:]+(Z|[+-]\d\d:\d\d)\n$`},
		{args: []string{"kick", "CP1", "--block", "48h"}, want: `^chargemq: 400 Bad Request: block must be `, wantErr: true},
	}
	for _, tt := range tests {
		stdout, stderr, err := clientsRun(t, api, nil, append(tt.args, "--api", api)...)
		out := stdout
		if tt.wantErr {
			out = stderr
		}
		if (err != nil) != tt.wantErr || !regexp.MustCompile(tt.want).MatchString(out) {
			t.Errorf("clients %s: err %v, stdout:\n%s\nstderr:\n%s\nwant %s", strings.Join(tt.args, " "), err, stdout, stderr, tt.want)
		}
	}
}
