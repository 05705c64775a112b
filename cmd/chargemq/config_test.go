package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// envOf turns a map into a LookupEnv, so tests never touch the process
// environment and can run in parallel.
func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

// writeConfig writes a YAML config into a temporary file and returns its path.
func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "chargemq.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaultConfigIsValid(t *testing.T) {
	t.Parallel()
	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v", err)
	}
}

func TestLoadPrecedence(t *testing.T) {
	t.Parallel()
	const file = `
listeners:
  mqtt: ":2883"
  ocpp: ":3000"
log:
  level: warn
ocpp:
  max_frame_size: 1000
  write_timeout: 3s
`
	tests := []struct {
		name  string
		file  string // "" = no file
		env   map[string]string
		flags map[string]string
		want  func(*Config) // applied to DefaultConfig()
	}{
		{
			name: "defaults only",
			want: func(*Config) {},
		},
		{
			name: "file over defaults",
			file: file,
			want: func(c *Config) {
				c.Listeners.MQTT, c.Listeners.OCPP, c.Log.Level = ":2883", ":3000", "warn"
				c.OCPP.MaxFrameSize, c.OCPP.WriteTimeout = 1000, 3*time.Second
			},
		},
		{
			name: "env over file",
			file: file,
			env: map[string]string{
				"CHARGEMQ_MQTT_ADDR":           ":4883",
				"CHARGEMQ_LOG_LEVEL":           "error",
				"CHARGEMQ_OCPP_MAX_FRAME_SIZE": "2000",
				"CHARGEMQ_OCPP_WRITE_TIMEOUT":  "7s",
				"CHARGEMQ_UNRELATED":           "ignored",
			},
			want: func(c *Config) {
				c.Listeners.MQTT, c.Listeners.OCPP, c.Log.Level = ":4883", ":3000", "error"
				c.OCPP.MaxFrameSize, c.OCPP.WriteTimeout = 2000, 7*time.Second
			},
		},
		{
			name:  "flags over env over file",
			file:  file,
			env:   map[string]string{"CHARGEMQ_MQTT_ADDR": ":4883", "CHARGEMQ_LOG_LEVEL": "error"},
			flags: map[string]string{"mqtt-addr": ":5883", "log-format": "json"},
			want: func(c *Config) {
				c.Listeners.MQTT, c.Listeners.OCPP, c.Log.Level, c.Log.Format = ":5883", ":3000", "error", "json"
				c.OCPP.MaxFrameSize, c.OCPP.WriteTimeout = 1000, 3*time.Second
			},
		},
		{
			name:  "empty env and flag values disable listeners",
			env:   map[string]string{"CHARGEMQ_HTTP_ADDR": ""},
			flags: map[string]string{"mqtt-ws-addr": ""},
			want:  func(c *Config) { c.Listeners.HTTP, c.Listeners.MQTTWS = "", "" },
		},
		{
			name: "env for every scalar kind",
			env: map[string]string{
				"CHARGEMQ_OCPP_FAIL_IF_NO_SUBPROTOCOL": "true",
				"CHARGEMQ_OCPP_UPSTREAM_QOS":           "0",
				"CHARGEMQ_OCPP_DNSTREAM_CALL_TIMEOUT":  "1m",
				"CHARGEMQ_OCPP_UPSTREAM_TOPIC":         "x/${cid}",
			},
			want: func(c *Config) {
				c.OCPP.FailIfNoSubprotocol, c.OCPP.Upstream.QoS = true, 0
				c.OCPP.Dnstream.CallTimeout, c.OCPP.Upstream.Topic = time.Minute, "x/${cid}"
			},
		},
		{
			name:  "a bad file value fixed by a flag is fine",
			file:  "log:\n  level: loud\n",
			flags: map[string]string{"log-level": "debug"},
			want:  func(c *Config) { c.Log.Level = "debug" },
		},
		{
			name: "file sets the override map and keeps other upstream defaults",
			file: "ocpp:\n  upstream:\n    topic_override_mapping:\n      Heartbeat: hb/${cid}\n",
			want: func(c *Config) { c.OCPP.Upstream.TopicOverrideMapping = map[string]string{"Heartbeat": "hb/${cid}"} },
		},
		{
			name: "env over file for a new key",
			file: "ocpp:\n  dnstream:\n    offline_ttl: 1m\n    max_offline_cids: 7\n",
			env:  map[string]string{"CHARGEMQ_OCPP_DNSTREAM_OFFLINE_TTL": "5m"},
			want: func(c *Config) { c.OCPP.Dnstream.OfflineTTL, c.OCPP.Dnstream.MaxOfflineCIDs = 5*time.Minute, 7 },
		},
		{
			name: "env for every offline, liveness and checking key",
			env: map[string]string{
				"CHARGEMQ_OCPP_DNSTREAM_OFFLINE_TTL":             "30s",
				"CHARGEMQ_OCPP_DNSTREAM_MAX_OFFLINE_CIDS":        "10",
				"CHARGEMQ_OCPP_DNSTREAM_MAX_OFFLINE_BYTES":       "4096",
				"CHARGEMQ_OCPP_DEFAULT_HEARTBEAT_INTERVAL":       "2m",
				"CHARGEMQ_OCPP_HEARTBEAT_CHECKING_TIMES_BACKOFF": "0",
				"CHARGEMQ_OCPP_IDLE_TIMEOUT":                     "5s",
				"CHARGEMQ_OCPP_WS_PING_INTERVAL":                 "15s",
				"CHARGEMQ_OCPP_PRESENCE_TOPIC":                   "online/${cid}",
				"CHARGEMQ_OCPP_MESSAGE_FORMAT_CHECKING":          "disable",
				"CHARGEMQ_OCPP_JSON_SCHEMA_ID_PREFIX":            "urn:x:",
				"CHARGEMQ_OCPP_JSON_SCHEMA_DIR":                  "testdata/schemas",
			},
			want: func(c *Config) {
				d := &c.OCPP.Dnstream
				d.OfflineTTL, d.MaxOfflineCIDs, d.MaxOfflineBytes = 30*time.Second, 10, 4096
				c.OCPP.DefaultHeartbeatInterval, c.OCPP.HeartbeatCheckingTimesBackoff = 2*time.Minute, 0
				c.OCPP.IdleTimeout, c.OCPP.WSPingInterval = 5*time.Second, 15*time.Second
				c.OCPP.PresenceTopic, c.OCPP.MessageFormatChecking = "online/${cid}", "disable"
				c.OCPP.JSONSchemaIDPrefix, c.OCPP.JSONSchemaDir = "urn:x:", "testdata/schemas"
			},
		},
		{
			name: "file sets checking overrides in order",
			file: "ocpp:\n  checking_overrides:\n    - cid: \"OLD-*\"\n      mode: disable\n    - {cid: \"*\", mode: upstream_only}\n",
			want: func(c *Config) {
				c.OCPP.CheckingOverrides = []CheckingOverride{{CID: "OLD-*", Mode: "disable"}, {CID: "*", Mode: "upstream_only"}}
			},
		},
		{
			name: "zero offline_ttl and ws_ping_interval are allowed",
			file: "ocpp:\n  ws_ping_interval: 0s\n  dnstream:\n    offline_ttl: 0s\n",
			want: func(*Config) {},
		},
		{
			name: "empty checking overrides keep the default",
			file: "ocpp:\n  checking_overrides:\n",
			want: func(*Config) {},
		},
		{
			name: "empty sections and empty file keep defaults",
			file: "# nothing yet\nocpp:\n  upstream:\n    topic_override_mapping:\n",
			want: func(*Config) {},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src := configSources{LookupEnv: envOf(tt.env), Flags: tt.flags}
			if tt.file != "" {
				src.File = writeConfig(t, tt.file)
			}
			got, err := loadConfig(src)
			if err != nil {
				t.Fatalf("loadConfig: %v", err)
			}
			want := DefaultConfig()
			tt.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("loadConfig =\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		file  string
		env   map[string]string
		flags map[string]string
		want  []string // substrings of the error
	}{
		{"unknown top-level key", "listner:\n  mqtt: x\n", nil, nil, []string{"listner: unknown key", "line 1"}},
		{"unknown nested key", "ocpp:\n  upstream:\n    max_pendng: 3\n", nil, nil,
			[]string{"ocpp.upstream.max_pendng: unknown key", "line 3", "max_pending"}},
		{"bad duration", "ocpp:\n  write_timeout: 10 seconds\n", nil, nil,
			[]string{"ocpp.write_timeout", "duration", `"10 seconds"`}},
		{"bare integer duration", "ocpp:\n  dnstream:\n    call_timeout: 30\n", nil, nil,
			[]string{"ocpp.dnstream.call_timeout", "duration"}},
		{"negative duration", "ocpp:\n  write_timeout: -1s\n", nil, nil, []string{"ocpp.write_timeout: must be > 0"}},
		{"zero call timeout", "ocpp:\n  dnstream:\n    call_timeout: 0s\n", nil, nil, []string{"ocpp.dnstream.call_timeout: must be > 0"}},
		{"qos 3", "ocpp:\n  upstream:\n    qos: 3\n", nil, nil, []string{"ocpp.upstream.qos: must be 0, 1 or 2"}},
		{"qos not a number", "ocpp:\n  upstream:\n    qos: high\n", nil, nil, []string{"ocpp.upstream.qos", "integer"}},
		{"bool not a bool", "ocpp:\n  fail_if_no_subprotocol: maybe\n", nil, nil, []string{"ocpp.fail_if_no_subprotocol", "true or false"}},
		{"path without trailing slash", "ocpp:\n  path: /ocpp\n", nil, nil, []string{"ocpp.path: must start and end with"}},
		{"path without leading slash", "ocpp:\n  path: ocpp/\n", nil, nil, []string{"ocpp.path"}},
		{"frame size zero", "ocpp:\n  max_frame_size: 0\n", nil, nil, []string{"ocpp.max_frame_size: must be > 0"}},
		{"negative mqueue", "ocpp:\n  dnstream:\n    max_mqueue_len: -1\n", nil, nil, []string{"ocpp.dnstream.max_mqueue_len: must be >= 0"}},
		{"max pending zero", "ocpp:\n  upstream:\n    max_pending: 0\n", nil, nil, []string{"ocpp.upstream.max_pending: must be > 0"}},
		{"wildcard mountpoint", "ocpp:\n  mountpoint: ocpp/+/\n", nil, nil, []string{"ocpp.mountpoint"}},
		{"empty topic", "ocpp:\n  upstream:\n    topic: \"\"\n", nil, nil, []string{"ocpp.upstream.topic: must not be empty"}},
		{"empty override", "ocpp:\n  upstream:\n    topic_override_mapping:\n      Heartbeat: \"\"\n", nil, nil,
			[]string{"ocpp.upstream.topic_override_mapping.Heartbeat: must not be empty"}},
		{"override not a string map", "ocpp:\n  upstream:\n    topic_override_mapping: [a, b]\n", nil, nil,
			[]string{"ocpp.upstream.topic_override_mapping", "mapping"}},
		{"section not a mapping", "ocpp: 3\n", nil, nil, []string{"ocpp: want a mapping"}},
		{"null scalar", "listeners:\n  mqtt:\n", nil, nil, []string{"listeners.mqtt: no value", `""`}},
		{"list for a scalar", "log:\n  level: [debug]\n", nil, nil, []string{"log.level: want a single value"}},
		{"bad listener address", "listeners:\n  mqtt: \"1883\"\n", nil, nil, []string{"listeners.mqtt: must be host:port"}},
		{"bad listener port", "listeners:\n  http: \":99999\"\n", nil, nil, []string{"listeners.http: port"}},
		{"same address twice", "listeners:\n  mqtt: \":7000\"\n  http: \":7000\"\n", nil, nil,
			[]string{"listeners.http: address \":7000\" is already used by listeners.mqtt"}},
		{"bad log level", "log:\n  level: loud\n", nil, nil, []string{"log.level: must be one of"}},
		{"bad log format", "log:\n  format: xml\n", nil, nil, []string{"log.format: must be text or json"}},
		{"two documents", "log:\n  level: info\n---\nlog:\n  level: warn\n", nil, nil, []string{"more than one YAML document"}},
		{"not YAML", "ocpp: [\n", nil, nil, []string{"config file"}},
		{"several errors at once", "ocpp:\n  max_frame_size: 0\n  upstream:\n    qos: 3\n", nil, nil,
			[]string{"ocpp.max_frame_size", "ocpp.upstream.qos"}},
		{"negative offline ttl", "ocpp:\n  dnstream:\n    offline_ttl: -1s\n", nil, nil, []string{"ocpp.dnstream.offline_ttl: must be >= 0"}},
		{"zero offline cids", "ocpp:\n  dnstream:\n    max_offline_cids: 0\n", nil, nil, []string{"ocpp.dnstream.max_offline_cids: must be > 0"}},
		{"zero offline bytes", "ocpp:\n  dnstream:\n    max_offline_bytes: 0\n", nil, nil, []string{"ocpp.dnstream.max_offline_bytes: must be > 0"}},
		{"zero heartbeat interval", "ocpp:\n  default_heartbeat_interval: 0s\n", nil, nil,
			[]string{"ocpp.default_heartbeat_interval: must be > 0"}},
		{"negative heartbeat backoff", "ocpp:\n  heartbeat_checking_times_backoff: -1\n", nil, nil,
			[]string{"ocpp.heartbeat_checking_times_backoff: must be >= 0"}},
		{"overflowing heartbeat backoff", "ocpp:\n  heartbeat_checking_times_backoff: 1000000000000\n", nil, nil,
			[]string{"ocpp.heartbeat_checking_times_backoff: too large"}},
		{"zero idle timeout", "ocpp:\n  idle_timeout: 0s\n", nil, nil, []string{"ocpp.idle_timeout: must be > 0"}},
		{"negative ping interval", "ocpp:\n  ws_ping_interval: -5s\n", nil, nil, []string{"ocpp.ws_ping_interval: must be >= 0"}},
		{"empty presence topic", "ocpp:\n  presence_topic: \"\"\n", nil, nil, []string{"ocpp.presence_topic: must not be empty"}},
		{"bad checking mode", "ocpp:\n  message_format_checking: strict\n", nil, nil,
			[]string{"ocpp.message_format_checking: must be one of all, upstream_only, dnstream_only, disable", `"strict"`}},
		{"empty schema id prefix", "ocpp:\n  json_schema_id_prefix: \"\"\n", nil, nil, []string{"ocpp.json_schema_id_prefix: must not be empty"}},
		{"missing schema dir", "ocpp:\n  json_schema_dir: testdata/nope\n", nil, nil, []string{"ocpp.json_schema_dir", "testdata/nope"}},
		{"schema dir is a file", "ocpp:\n  json_schema_dir: testdata/full.yaml\n", nil, nil,
			[]string{"ocpp.json_schema_dir: \"testdata/full.yaml\" is not a directory"}},
		{"bad override mode", "ocpp:\n  checking_overrides:\n    - {cid: A, mode: all}\n    - {cid: B, mode: all}\n    - {cid: C, mode: loose}\n", nil, nil,
			[]string{"ocpp.checking_overrides[2].mode: must be one of", `"loose"`}},
		{"bad override glob", "ocpp:\n  checking_overrides:\n    - {cid: \"CP-[\", mode: all}\n", nil, nil,
			[]string{"ocpp.checking_overrides[0].cid: bad glob"}},
		{"override without cid", "ocpp:\n  checking_overrides:\n    - mode: disable\n", nil, nil,
			[]string{"ocpp.checking_overrides[0].cid: must not be empty"}},
		{"unknown key in an override", "ocpp:\n  checking_overrides:\n    - cid: A\n      mode: all\n    - cid: B\n      mdoe: all\n", nil, nil,
			[]string{"ocpp.checking_overrides[1].mdoe: unknown key", "line 6", "cid, mode"}},
		{"override not a list", "ocpp:\n  checking_overrides:\n    cid: A\n", nil, nil,
			[]string{"ocpp.checking_overrides: want a list"}},
		{"override item not a mapping", "ocpp:\n  checking_overrides: [A]\n", nil, nil,
			[]string{"ocpp.checking_overrides[0]: want a mapping of keys (cid, mode)"}},
		{"bad env int", "", map[string]string{"CHARGEMQ_OCPP_MAX_FRAME_SIZE": "big"}, nil,
			[]string{"ocpp.max_frame_size: from $CHARGEMQ_OCPP_MAX_FRAME_SIZE", "integer"}},
		{"bad env duration", "", map[string]string{"CHARGEMQ_OCPP_WRITE_TIMEOUT": "10"}, nil,
			[]string{"ocpp.write_timeout: from $CHARGEMQ_OCPP_WRITE_TIMEOUT"}},
		{"bad env value caught by Validate", "", map[string]string{"CHARGEMQ_OCPP_UPSTREAM_QOS": "3"}, nil,
			[]string{"ocpp.upstream.qos"}},
		{"bad flag value", "", nil, map[string]string{"log-level": "loud"}, []string{"log.level"}},
		{"bad env for a new key", "", map[string]string{"CHARGEMQ_OCPP_DNSTREAM_MAX_OFFLINE_BYTES": "64MiB"}, nil,
			[]string{"ocpp.dnstream.max_offline_bytes: from $CHARGEMQ_OCPP_DNSTREAM_MAX_OFFLINE_BYTES", "integer"}},
		{"bad env checking mode", "", map[string]string{"CHARGEMQ_OCPP_MESSAGE_FORMAT_CHECKING": "none"}, nil,
			[]string{"ocpp.message_format_checking: must be one of"}},
		{"tls listener without a certificate", "listeners:\n  ocpp_tls: \":0\"\n  mqtt_tls: \":0\"\n", nil, nil,
			[]string{"tls.certificates: listeners.ocpp_tls, listeners.mqtt_tls needs a certificate"}},
		{"certificate without key", "", nil, map[string]string{"tls-cert": "a.crt,b.crt", "tls-key": "a.key"},
			[]string{"tls.certificates[1].key: missing"}},
		{"key without certificate", "tls:\n  certificates:\n    - key: a.key\n", nil, nil,
			[]string{"tls.certificates[0].cert: missing"}},
		{"profile 2 port without client ca", "listeners:\n  ocpp_tls_basic: \":0\"\ntls:\n  certificates: [{cert: a, key: b}]\n", nil, nil,
			[]string{"listeners.ocpp_tls_basic: serves profile 2 next to a profile 3 port, so it needs tls.client_ca"}},
		{"bad cert identity", "ocpp:\n  client_cert_identity: subject\n", nil, nil,
			[]string{`ocpp.client_cert_identity: must be cn, serial or none (got "subject")`}},
		{"bad tls listener address", "", map[string]string{"CHARGEMQ_MQTT_WSS_ADDR": "8084"}, nil,
			[]string{"listeners.mqtt_wss: must be host:port"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src := configSources{LookupEnv: envOf(tt.env), Flags: tt.flags}
			if tt.file != "" {
				src.File = writeConfig(t, tt.file)
			}
			_, err := loadConfig(src)
			if err == nil {
				t.Fatalf("loadConfig succeeded; want an error containing %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	t.Parallel()
	_, err := loadConfig(configSources{File: filepath.Join(t.TempDir(), "nope.yaml")})
	if err == nil || !os.IsNotExist(unwrapAll(err)) {
		t.Fatalf("err = %v, want a not-exist error", err)
	}
}

// unwrapAll follows a single-error Unwrap chain to its end.
func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok || u.Unwrap() == nil {
			return err
		}
		err = u.Unwrap()
	}
}

// TestSettingsCoverConfig keeps the settings table (env and flags) in step
// with Config: every scalar field has exactly one setting, at its YAML path.
func TestSettingsCoverConfig(t *testing.T) {
	t.Parallel()
	var leaves []string
	var walk func(prefix string, rt reflect.Type)
	walk = func(prefix string, rt reflect.Type) {
		for i := 0; i < rt.NumField(); i++ {
			f := rt.Field(i)
			p := prefix + yamlName(f)
			switch {
			case f.Type.Kind() == reflect.Struct:
				walk(p+".", f.Type)
			case f.Type.Kind() == reflect.Map, f.Type.Kind() == reflect.Slice:
				// file only
			default:
				leaves = append(leaves, p)
			}
		}
	}
	walk("", reflect.TypeOf(Config{}))

	paths, envs, flags := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, s := range settings() {
		if paths[s.path] || envs[s.env()] || (s.flag != "" && flags[s.flag]) {
			t.Errorf("setting %s: duplicate path, env or flag", s.path)
		}
		paths[s.path], envs[s.env()], flags[s.flag] = true, true, true
		// The field pointer must point into the struct at that YAML path:
		// set a value via the setting and find it by path.
		var c Config
		if got := s.get(&c); got != zeroText(s.field(&c)) {
			t.Errorf("setting %s: get on zero Config = %q", s.path, got)
		}
	}
	for _, l := range leaves {
		if !paths[l] {
			t.Errorf("Config key %s has no setting (no env variable)", l)
		}
		delete(paths, l)
	}
	for p := range paths {
		// A column of a list of pairs (tls.certificates[].cert) is set
		// through the list, which the walk does not descend into.
		if list, _, ok := strings.Cut(p, "[]."); ok && yamlPathExists(list) {
			continue
		}
		t.Errorf("setting %s is not a Config key", p)
	}
}

// yamlPathExists reports whether path ("tls.certificates") names a field
// of Config.
func yamlPathExists(path string) bool {
	t := reflect.TypeOf(Config{})
	for _, name := range strings.Split(path, ".") {
		f, ok := fieldByYAMLName(t, name)
		if !ok {
			return false
		}
		t = f.Type
	}
	return true
}

// zeroText is how get formats a zero value of the field's type.
func zeroText(p any) string {
	switch p.(type) {
	case *int:
		return "0"
	case *bool:
		return "false"
	case *time.Duration:
		return "0s"
	}
	return ""
}

// TestSettingsPointAtTheirPath sets each key through its setting and checks
// that YAML rendering shows it at the setting's path, so a field func pointing
// at the wrong field is caught.
func TestSettingsPointAtTheirPath(t *testing.T) {
	t.Parallel()
	for _, s := range settings() {
		c := DefaultConfig()
		before, err := marshalConfig(c)
		if err != nil {
			t.Fatal(err)
		}
		val := map[string]string{"*string": "marker", "main.certList": "marker", "*int": "4242", "*time.Duration": "4242s"}[reflect.TypeOf(s.field(&c)).String()]
		if b, ok := s.field(&c).(*bool); ok {
			val = strconv.FormatBool(!*b) // a change whatever the default
		}
		if err := s.set(&c, val); err != nil {
			t.Fatalf("%s: set: %v", s.path, err)
		}
		after, err := marshalConfig(c)
		if err != nil {
			t.Fatal(err)
		}
		key := s.path[strings.LastIndex(s.path, ".")+1:]
		if _, ok := s.field(&c).(certList); ok {
			if !strings.Contains(string(after), key+": marker\n") {
				t.Errorf("%s: setting it did not show %s: marker in\n%s", s.path, key, after)
			}
			continue
		}
		changed := diffLines(string(before), string(after))
		if len(changed) != 1 || !strings.HasPrefix(strings.TrimSpace(changed[0]), key+": ") {
			t.Errorf("%s: setting it changed YAML lines %q, want one line for key %q", s.path, changed, key)
		}
	}
}

// diffLines returns the lines of b that differ from a at the same index.
func diffLines(a, b string) []string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out []string
	for i := range bl {
		if i >= len(al) || al[i] != bl[i] {
			out = append(out, bl[i])
		}
	}
	return out
}

// TestDocsDescribeEveryKey keeps docs/configuration.md complete.
func TestDocsDescribeEveryKey(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "configuration.md"))
	if err != nil {
		t.Fatal(err)
	}
	words := []string{"`ocpp.upstream.topic_override_mapping`", "`ocpp.checking_overrides`", envConfigFile, "--config"}
	for _, s := range settings() {
		words = append(words, "`"+s.path+"`", s.env())
		if s.flag != "" {
			words = append(words, "--"+s.flag)
		}
	}
	for _, w := range words {
		if !strings.Contains(string(doc), w) {
			t.Errorf("docs/configuration.md does not mention %s", w)
		}
	}
}

// TestFullSampleRoundTrips loads testdata/full.yaml (every key, none at its
// default) and checks that check-config's rendering loads back to the same.
func TestFullSampleRoundTrips(t *testing.T) {
	t.Parallel()
	cfg, err := loadConfig(configSources{File: filepath.Join("testdata", "full.yaml")})
	if err != nil {
		t.Fatal(err)
	}
	def := DefaultConfig()
	for _, s := range settings() {
		if s.get(&cfg) == s.get(&def) {
			t.Errorf("testdata/full.yaml leaves %s at its default", s.path)
		}
	}
	if len(cfg.OCPP.Upstream.TopicOverrideMapping) == 0 || len(cfg.OCPP.CheckingOverrides) == 0 {
		t.Errorf("testdata/full.yaml leaves a YAML-only key empty")
	}
	out, err := marshalConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	again, err := loadConfig(configSources{File: writeConfig(t, string(out))})
	if err != nil {
		t.Fatalf("reloading check-config output: %v\n%s", err, out)
	}
	if !reflect.DeepEqual(cfg, again) {
		t.Errorf("round trip changed the config:\n%+v\n%+v", cfg, again)
	}
}

// TestDocsDefaultsMatchCode holds docs/configuration.md to the code: the
// default column of the Keys table and the "complete file with the
// defaults" example must be DefaultConfig's values (which are
// broker.DefaultOptions').
func TestDocsDefaultsMatchCode(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join("..", "..", "docs", "configuration.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	def := DefaultConfig()

	// The table: | `key` | type | `default` … | flag | meaning |
	rows := map[string]string{}
	for _, line := range strings.Split(doc, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 6 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			continue
		}
		key := strings.Trim(strings.TrimSpace(cells[1]), "`")
		d := strings.TrimSpace(cells[3])
		if i := strings.Index(d, "`"); i >= 0 {
			if j := strings.Index(d[i+1:], "`"); j >= 0 {
				rows[key] = d[i+1 : i+1+j]
			}
		}
	}
	for _, s := range settings() {
		documented, ok := rows[s.path]
		if !ok {
			t.Errorf("docs/configuration.md: no row for %s in the Keys table", s.path)
			continue
		}
		if documented == `""` {
			documented = ""
		}
		var doc Config
		if err := s.set(&doc, documented); err != nil {
			t.Errorf("%s: documented default %q: %v", s.path, documented, err)
			continue
		}
		if got, want := s.get(&doc), s.get(&def); got != want {
			t.Errorf("%s: documented default %q, code has %q", s.path, documented, want)
		}
	}

	// The complete example file.
	const marker = "A complete file with the defaults"
	i := strings.Index(doc, marker)
	if i < 0 {
		t.Fatalf("docs/configuration.md has no %q example", marker)
	}
	block := doc[i:]
	start := strings.Index(block, "```yaml\n")
	end := strings.Index(block[start+8:], "```")
	if start < 0 || end < 0 {
		t.Fatal("no yaml block after the marker")
	}
	f := filepath.Join(t.TempDir(), "defaults.yaml")
	if err := os.WriteFile(f, []byte(block[start+8:start+8+end]), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := loadConfig(configSources{File: f})
	if err != nil {
		t.Fatalf("the documented defaults file does not load: %v", err)
	}
	if !reflect.DeepEqual(got, def) {
		t.Errorf("documented defaults file =\n%+v\ncode =\n%+v", got, def)
	}
	for _, s := range settings() {
		if strings.Contains(s.path, "[]") {
			continue // a list, shown empty
		}
		if !strings.Contains(block[:start+8+end], "\n"+strings.Repeat("  ", strings.Count(s.path, "."))+s.path[strings.LastIndex(s.path, ".")+1:]+":") {
			t.Errorf("documented defaults file lacks %s", s.path)
		}
	}
}

// TestTLSCertificateSources: --tls-cert and --tls-key repeat and pair by
// position, their variables are comma-separated, and either replaces the
// file's list.
func TestTLSCertificateSources(t *testing.T) {
	t.Parallel()
	file := writeConfig(t, "tls:\n  certificates:\n    - {cert: file.crt, key: file.key}\n    - {cert: file2.crt, key: file2.key}\n")
	pairs := func(kv ...string) []CertificateConfig {
		out := []CertificateConfig{}
		for i := 0; i < len(kv); i += 2 {
			out = append(out, CertificateConfig{Cert: kv[i], Key: kv[i+1]})
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		env   map[string]string
		flags map[string]string
		want  []CertificateConfig
	}{
		{"file", nil, nil, pairs("file.crt", "file.key", "file2.crt", "file2.key")},
		{"env", map[string]string{"CHARGEMQ_TLS_CERT": "rsa.crt, ec.crt", "CHARGEMQ_TLS_KEY": "rsa.key,ec.key"}, nil,
			pairs("rsa.crt", "rsa.key", "ec.crt", "ec.key")},
		{"flags over env", map[string]string{"CHARGEMQ_TLS_CERT": "env.crt", "CHARGEMQ_TLS_KEY": "env.key"},
			map[string]string{"tls-cert": "flag.crt", "tls-key": "flag.key"}, pairs("flag.crt", "flag.key")},
	} {
		cfg, err := loadConfig(configSources{File: file, LookupEnv: envOf(tc.env), Flags: tc.flags})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !reflect.DeepEqual(cfg.TLS.Certificates, tc.want) {
			t.Errorf("%s: certificates %+v, want %+v", tc.name, cfg.TLS.Certificates, tc.want)
		}
	}
}

// TestTLSCertFlagRepeats: the real command line repeats --tls-cert and
// --tls-key, and check-config shows the two pairs it loaded.
func TestTLSCertFlagRepeats(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	dir := filepath.Join("testdata", "tls")
	err := run(context.Background(), []string{"chargemq",
		"--tls-cert", filepath.Join(dir, "server-rsa.crt"), "--tls-key", filepath.Join(dir, "server-rsa.key"),
		"--tls-cert", filepath.Join(dir, "server-ec.crt"), "--tls-key", filepath.Join(dir, "server-ec.key"),
		"--mqtt-tls-addr", ":0", "check-config", filepath.Join("testdata", "minimal.yaml")}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("check-config: %v\n%s", err, stderr.String())
	}
	for _, want := range []string{"cert: testdata/tls/server-rsa.crt\n      key: testdata/tls/server-rsa.key",
		"cert: testdata/tls/server-ec.crt\n      key: testdata/tls/server-ec.key"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("check-config output lacks %q:\n%s", want, stdout.String())
		}
	}
}
