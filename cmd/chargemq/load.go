package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// envPrefix starts every environment variable the process reads.
const envPrefix = "CHARGEMQ_"

// envConfigFile names the config file when --config is not given, so a
// container can be configured by environment alone.
const envConfigFile = envPrefix + "CONFIG"

// configSources is what loadConfig layers over DefaultConfig, lowest
// precedence first. It is plain data so tests can build it without a CLI or
// a process environment (and so run in parallel).
type configSources struct {
	// File is a YAML config file; "" means none.
	File string
	// LookupEnv reads the environment (os.LookupEnv in production); nil
	// means an empty environment.
	LookupEnv func(string) (string, bool)
	// Flags holds the values of the config flags given on the command line,
	// by flag name without dashes; flags not given are absent.
	Flags map[string]string
}

// setting is one scalar config key with every way to set it besides YAML.
// The table (settings) is the single source for flags, environment variable
// names and the docs test, so they cannot drift apart.
type setting struct {
	// path is the YAML path, e.g. "ocpp.max_frame_size".
	path string
	// flag is the CLI flag name without dashes, or "" if the key has none.
	flag string
	// usage is the flag's help text.
	usage string
	// field returns a pointer to the key's field in c: *string, *int, *bool
	// or *time.Duration.
	field func(c *Config) any
}

// env is the key's environment variable: derived from the flag name when the
// key has a flag (so --mqtt-addr reads CHARGEMQ_MQTT_ADDR, as docs/configuration.md
// promises), else from the YAML path (ocpp.max_frame_size reads
// CHARGEMQ_OCPP_MAX_FRAME_SIZE).
func (s setting) env() string {
	name := s.flag
	if name == "" {
		name = s.path
	}
	return envPrefix + strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(name))
}

// set parses text as the key's type and stores it in c. It is shared by the
// environment and flag layers so both accept exactly the same spellings.
func (s setting) set(c *Config, text string) error {
	switch p := s.field(c).(type) {
	case *string:
		*p = text
	case *int:
		n, err := strconv.Atoi(strings.TrimSpace(text))
		if err != nil {
			return fmt.Errorf("want an integer, got %q", text)
		}
		*p = n
	case *bool:
		b, err := strconv.ParseBool(strings.TrimSpace(text))
		if err != nil {
			return fmt.Errorf("want true or false, got %q", text)
		}
		*p = b
	case *time.Duration:
		d, err := time.ParseDuration(strings.TrimSpace(text))
		if err != nil {
			return fmt.Errorf("want a duration such as \"10s\" or \"1m30s\", got %q", text)
		}
		*p = d
	case certList:
		p.set(text)
	default:
		panic(fmt.Sprintf("setting %s: unsupported field type %T", s.path, p))
	}
	return nil
}

// get formats the key's value in c the way set parses it.
func (s setting) get(c *Config) string {
	switch p := s.field(c).(type) {
	case *string:
		return *p
	case *int:
		return strconv.Itoa(*p)
	case *bool:
		return strconv.FormatBool(*p)
	case *time.Duration:
		return p.String()
	case certList:
		return p.get()
	default:
		panic(fmt.Sprintf("setting %s: unsupported field type %T", s.path, p))
	}
}

// certList is one column (the cert files, or the key files) of
// tls.certificates, for the repeatable --tls-cert and --tls-key flags and
// their comma-separated environment variables: values pair with the other
// column by position. Setting a column replaces that whole column, and
// pairs left with neither file are dropped, so a flag pair replaces what
// the file listed, and a column one value short leaves a pair half empty
// for Validate to name.
type certList struct {
	list *[]CertificateConfig
	key  bool
}

func (l certList) set(text string) {
	var values []string
	for _, v := range strings.Split(text, ",") {
		if v = strings.TrimSpace(v); v != "" {
			values = append(values, v)
		}
	}
	pairs := make([]CertificateConfig, max(len(values), len(*l.list)))
	copy(pairs, *l.list)
	for i := range pairs {
		v := ""
		if i < len(values) {
			v = values[i]
		}
		if l.key {
			pairs[i].Key = v
		} else {
			pairs[i].Cert = v
		}
	}
	for len(pairs) > 0 && pairs[len(pairs)-1] == (CertificateConfig{}) {
		pairs = pairs[:len(pairs)-1]
	}
	*l.list = pairs
}

func (l certList) get() string {
	values := make([]string, len(*l.list))
	for i, p := range *l.list {
		values[i] = p.Cert
		if l.key {
			values[i] = p.Key
		}
	}
	return strings.Join(values, ",")
}

// settings lists every scalar key. ocpp.upstream.topic_override_mapping (a
// map) and ocpp.checking_overrides (a list) can only be set in the YAML file.
func settings() []setting {
	return []setting{
		{path: "listeners.mqtt", flag: "mqtt-addr", usage: "MQTT over TCP listen address (\"\" disables)",
			field: func(c *Config) any { return &c.Listeners.MQTT }},
		{path: "listeners.mqtt_ws", flag: "mqtt-ws-addr", usage: "MQTT over WebSocket listen address, path /mqtt (\"\" disables)",
			field: func(c *Config) any { return &c.Listeners.MQTTWS }},
		{path: "listeners.ocpp", flag: "ocpp-addr", usage: "OCPP-J WebSocket listen address (\"\" disables)",
			field: func(c *Config) any { return &c.Listeners.OCPP }},
		{path: "listeners.http", flag: "http-addr", usage: "admin HTTP API listen address (\"\" disables)",
			field: func(c *Config) any { return &c.Listeners.HTTP }},
		{path: "listeners.ocpp_tls", flag: "ocpp-tls-addr", usage: "OCPP-J over wss listen address: security profile 3 with --tls-client-ca, else 2 (\"\" disables)",
			field: func(c *Config) any { return &c.Listeners.OCPPTLS }},
		{path: "listeners.ocpp_tls_basic", flag: "ocpp-tls-basic-addr", usage: "a second wss port for profile 2 charge points next to a profile 3 one (\"\" disables)",
			field: func(c *Config) any { return &c.Listeners.OCPPTLSBasic }},
		{path: "listeners.mqtt_tls", flag: "mqtt-tls-addr", usage: "MQTT over TLS (mqtts) listen address (\"\" disables)",
			field: func(c *Config) any { return &c.Listeners.MQTTTLS }},
		{path: "listeners.mqtt_wss", flag: "mqtt-wss-addr", usage: "MQTT over wss listen address, path /mqtt (\"\" disables)",
			field: func(c *Config) any { return &c.Listeners.MQTTWSS }},
		{path: "listeners.http_tls", flag: "http-tls-addr", usage: "admin HTTP API over https listen address (\"\" disables)",
			field: func(c *Config) any { return &c.Listeners.HTTPTLS }},
		{path: "tls.certificates[].cert", flag: "tls-cert", usage: "server certificate chain (PEM) of the TLS listeners; repeat for an RSA and an ECDSA one, paired with --tls-key by position",
			field: func(c *Config) any { return certList{&c.TLS.Certificates, false} }},
		{path: "tls.certificates[].key", flag: "tls-key", usage: "private key (PEM) of the --tls-cert at the same position",
			field: func(c *Config) any { return certList{&c.TLS.Certificates, true} }},
		{path: "tls.client_ca", flag: "tls-client-ca", usage: "CA (PEM) of charge point and MQTT client certificates; makes --ocpp-tls-addr require one (profile 3)",
			field: func(c *Config) any { return &c.TLS.ClientCA }},
		{path: "listeners.pprof", flag: "pprof-addr", usage: "Go's profiling endpoints (/debug/pprof/) on this loopback address (\"\" disables)",
			field: func(c *Config) any { return &c.Listeners.Pprof }},
		{path: "http.allow_remote", usage: "serve the admin API to non-loopback clients without a users file",
			field: func(c *Config) any { return &c.HTTP.AllowRemote }},
		{path: "log.frames", flag: "log-frames", usage: "log every OCPP frame at debug level (direction, cid, type, action, size, payload cut)",
			field: func(c *Config) any { return &c.Log.Frames }},
		{path: "log.level", flag: "log-level", usage: "log level: debug, info, warn or error",
			field: func(c *Config) any { return &c.Log.Level }},
		{path: "log.format", flag: "log-format", usage: "log format: text or json",
			field: func(c *Config) any { return &c.Log.Format }},
		{path: "shutdown_timeout", field: func(c *Config) any { return &c.ShutdownTimeout }},
		{path: "fd_reserve", field: func(c *Config) any { return &c.FDReserve }},
		{path: "auth.users_file", flag: "users-file", usage: "users file (chargemq users); without one every charge point and MQTT client is admitted",
			field: func(c *Config) any { return &c.Auth.UsersFile }},
		{path: "mqtt.max_packet_size", field: func(c *Config) any { return &c.MQTT.MaxPacketSize }},
		{path: "mqtt.connect_timeout", field: func(c *Config) any { return &c.MQTT.ConnectTimeout }},
		{path: "mqtt.max_session_expiry", field: func(c *Config) any { return &c.MQTT.MaxSessionExpiry }},
		{path: "mqtt.max_queued_messages", field: func(c *Config) any { return &c.MQTT.MaxQueuedMessages }},
		{path: "mqtt.max_clients", field: func(c *Config) any { return &c.MQTT.MaxClients }},
		{path: "ocpp.path", field: func(c *Config) any { return &c.OCPP.Path }},
		{path: "ocpp.max_frame_size", field: func(c *Config) any { return &c.OCPP.MaxFrameSize }},
		{path: "ocpp.fail_if_no_subprotocol", field: func(c *Config) any { return &c.OCPP.FailIfNoSubprotocol }},
		{path: "ocpp.mountpoint", field: func(c *Config) any { return &c.OCPP.Mountpoint }},
		{path: "ocpp.write_timeout", field: func(c *Config) any { return &c.OCPP.WriteTimeout }},
		{path: "ocpp.default_heartbeat_interval", field: func(c *Config) any { return &c.OCPP.DefaultHeartbeatInterval }},
		{path: "ocpp.heartbeat_checking_times_backoff", field: func(c *Config) any { return &c.OCPP.HeartbeatCheckingTimesBackoff }},
		{path: "ocpp.idle_timeout", field: func(c *Config) any { return &c.OCPP.IdleTimeout }},
		{path: "ocpp.ws_ping_interval", field: func(c *Config) any { return &c.OCPP.WSPingInterval }},
		{path: "ocpp.max_connections", field: func(c *Config) any { return &c.OCPP.MaxConnections }},
		{path: "ocpp.max_handshakes", field: func(c *Config) any { return &c.OCPP.MaxHandshakes }},
		{path: "ocpp.max_connections_per_ip", field: func(c *Config) any { return &c.OCPP.MaxConnectionsPerIP }},
		{path: "ocpp.username_must_match_cid", field: func(c *Config) any { return &c.OCPP.UsernameMustMatchCID }},
		{path: "ocpp.client_cert_identity", field: func(c *Config) any { return &c.OCPP.ClientCertIdentity }},
		{path: "ocpp.client_cert_organization", field: func(c *Config) any { return &c.OCPP.ClientCertOrganization }},
		{path: "ocpp.frame_history", field: func(c *Config) any { return &c.OCPP.FrameHistory }},
		{path: "ocpp.frame_history_bytes", field: func(c *Config) any { return &c.OCPP.FrameHistoryBytes }},
		{path: "ocpp.presence_topic", field: func(c *Config) any { return &c.OCPP.PresenceTopic }},
		{path: "ocpp.message_format_checking", field: func(c *Config) any { return &c.OCPP.MessageFormatChecking }},
		{path: "ocpp.json_schema_id_prefix", field: func(c *Config) any { return &c.OCPP.JSONSchemaIDPrefix }},
		{path: "ocpp.json_schema_dir", field: func(c *Config) any { return &c.OCPP.JSONSchemaDir }},
		{path: "ocpp.upstream.topic", field: func(c *Config) any { return &c.OCPP.Upstream.Topic }},
		{path: "ocpp.upstream.reply_topic", field: func(c *Config) any { return &c.OCPP.Upstream.ReplyTopic }},
		{path: "ocpp.upstream.error_topic", field: func(c *Config) any { return &c.OCPP.Upstream.ErrorTopic }},
		{path: "ocpp.upstream.qos", field: func(c *Config) any { return &c.OCPP.Upstream.QoS }},
		{path: "ocpp.upstream.max_pending", field: func(c *Config) any { return &c.OCPP.Upstream.MaxPending }},
		{path: "ocpp.dnstream.topic", field: func(c *Config) any { return &c.OCPP.Dnstream.Topic }},
		{path: "ocpp.dnstream.max_mqueue_len", field: func(c *Config) any { return &c.OCPP.Dnstream.MaxMqueueLen }},
		{path: "ocpp.dnstream.call_timeout", field: func(c *Config) any { return &c.OCPP.Dnstream.CallTimeout }},
		{path: "ocpp.dnstream.offline_ttl", field: func(c *Config) any { return &c.OCPP.Dnstream.OfflineTTL }},
		{path: "ocpp.dnstream.max_offline_cids", field: func(c *Config) any { return &c.OCPP.Dnstream.MaxOfflineCIDs }},
		{path: "ocpp.dnstream.max_offline_bytes", field: func(c *Config) any { return &c.OCPP.Dnstream.MaxOfflineBytes }},
	}
}

// loadConfig builds the effective configuration: DefaultConfig, then the
// YAML file, then the environment, then flags, each layer overriding only the
// keys it sets; the result is validated once at the end, so a value that is
// wrong in the file but fixed by a flag is fine. Every error names the key by
// its YAML path.
func loadConfig(src configSources) (Config, error) {
	cfg := DefaultConfig()
	if src.File != "" {
		data, err := os.ReadFile(src.File)
		if err != nil {
			return Config{}, fmt.Errorf("config file: %w", err)
		}
		if err := decodeYAML(data, &cfg); err != nil {
			return Config{}, fmt.Errorf("config file %s: %w", src.File, err)
		}
	}
	if cfg.OCPP.Upstream.TopicOverrideMapping == nil {
		cfg.OCPP.Upstream.TopicOverrideMapping = map[string]string{} // "key: ~" in YAML
	}
	if cfg.OCPP.CheckingOverrides == nil {
		cfg.OCPP.CheckingOverrides = []CheckingOverride{} // likewise
	}

	var errs []error
	if src.LookupEnv != nil {
		for _, s := range settings() {
			if v, ok := src.LookupEnv(s.env()); ok {
				if err := s.set(&cfg, v); err != nil {
					errs = append(errs, &FieldError{Path: s.path, Msg: fmt.Sprintf("from $%s: %v", s.env(), err)})
				}
			}
		}
	}
	for _, s := range settings() {
		if s.flag == "" {
			continue
		}
		if v, ok := src.Flags[s.flag]; ok {
			if err := s.set(&cfg, v); err != nil {
				errs = append(errs, &FieldError{Path: s.path, Msg: fmt.Sprintf("from --%s: %v", s.flag, err)})
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, err
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// decodeYAML overlays one YAML document on cfg. The document is first walked
// against Config's shape (checkNode) to report unknown keys and bad values
// by their full path, which yaml.v3's own errors do not give; then it is
// decoded with KnownFields(true), which stays the authority on what is
// accepted. An empty document changes nothing.
func decodeYAML(data []byte, cfg *Config) error {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return errors.New("more than one YAML document; want one")
	}
	doc := &root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		doc = doc.Content[0]
	}
	if err := checkNode("", doc, reflect.TypeOf(*cfg)); err != nil {
		return err
	}

	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	return strict.Decode(cfg)
}

// isDuration reports whether t is time.Duration, which checkNode treats as a
// scalar with its own error message rather than as an int.
func isDuration(t reflect.Type) bool { return t == reflect.TypeOf(time.Duration(0)) }

// checkNode reports the first key of n that Config of type t does not have,
// or whose value does not fit its field, as a *FieldError with the YAML path
// and line. A null section is allowed (all its keys commented out); a null
// scalar is not, because yaml.v3 would silently keep the default for it.
func checkNode(path string, n *yaml.Node, t reflect.Type) error {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	at := func(msg string, args ...any) error {
		p := path
		if p == "" {
			p = "(top level)"
		}
		return &FieldError{Path: p, Msg: fmt.Sprintf(msg, args...) + fmt.Sprintf(" (line %d)", n.Line)}
	}
	isNull := n.Kind == yaml.ScalarNode && n.Tag == "!!null"
	join := func(key string) string {
		if path == "" {
			return key
		}
		return path + "." + key
	}

	switch {
	case t.Kind() == reflect.Struct && !isDuration(t):
		if isNull {
			return nil
		}
		if n.Kind != yaml.MappingNode {
			return at("want a mapping of keys (%s)", strings.Join(yamlKeys(t), ", "))
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			f, ok := fieldByYAMLName(t, k.Value)
			if !ok {
				return &FieldError{Path: join(k.Value), Msg: fmt.Sprintf("unknown key (line %d); known keys here: %s",
					k.Line, strings.Join(yamlKeys(t), ", "))}
			}
			if err := checkNode(join(k.Value), v, f.Type); err != nil {
				return err
			}
		}
		return nil
	case t.Kind() == reflect.Map:
		if isNull {
			return nil
		}
		if n.Kind != yaml.MappingNode {
			return at("want a mapping of action: topic template")
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if err := checkNode(join(k.Value), v, t.Elem()); err != nil {
				return err
			}
		}
		return nil
	case t.Kind() == reflect.Slice:
		if isNull {
			return nil
		}
		if n.Kind != yaml.SequenceNode {
			return at("want a list (one \"- \" item per line, or [])")
		}
		for i, v := range n.Content {
			if err := checkNode(fmt.Sprintf("%s[%d]", path, i), v, t.Elem()); err != nil {
				return err
			}
		}
		return nil
	}

	if n.Kind != yaml.ScalarNode {
		return at("want a single value, not a list or mapping")
	}
	if isNull {
		if t.Kind() == reflect.String {
			return at("no value; write \"\" for an empty string")
		}
		return at("no value")
	}
	if err := n.Decode(reflect.New(t).Interface()); err != nil {
		switch {
		case isDuration(t):
			return at("want a duration such as \"10s\" or \"1m30s\", got %q", n.Value)
		case t.Kind() == reflect.Int:
			return at("want an integer, got %q", n.Value)
		case t.Kind() == reflect.Bool:
			return at("want true or false, got %q", n.Value)
		default:
			return at("invalid value %q", n.Value)
		}
	}
	return nil
}

// fieldByYAMLName finds the field of struct type t whose yaml tag is name.
func fieldByYAMLName(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if yamlName(f) == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// yamlKeys lists the YAML key names of struct type t, for error messages.
func yamlKeys(t reflect.Type) []string {
	keys := make([]string, 0, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		if name := yamlName(t.Field(i)); name != "" {
			keys = append(keys, name)
		}
	}
	return keys
}

// yamlName is the key name in a field's yaml tag ("" for untagged fields,
// which Config does not have).
func yamlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return name
}

// marshalConfig renders cfg as the YAML a user could write back into a config
// file (durations as "10s", two-space indent).
func marshalConfig(cfg Config) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(cfg); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
