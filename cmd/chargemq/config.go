package main

import (
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/chargemq/chargemq/broker"
)

// Config is everything the process can be told, as one value. It is filled in
// layers (see loadConfig: defaults < YAML file < environment < flags) and then
// checked once by Validate, so serve never sees a half-valid setting. The YAML
// tags are the user-facing key names documented in docs/configuration.md.
type Config struct {
	Listeners ListenersConfig `yaml:"listeners"`
	Log       LogConfig       `yaml:"log"`
	// ShutdownTimeout bounds the whole shutdown: graceful first, then what
	// is left is closed by force.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// FDReserve is how many descriptors the OCPP and MQTT listeners leave
	// for the admin API, health checks and the process itself.
	FDReserve int        `yaml:"fd_reserve"`
	Auth      AuthConfig `yaml:"auth"`
	TLS       TLSConfig  `yaml:"tls"`
	HTTP      HTTPConfig `yaml:"http"`
	MQTT      MQTTConfig `yaml:"mqtt"`
	OCPP      OCPPConfig `yaml:"ocpp"`
}

// AuthConfig says who may connect.
type AuthConfig struct {
	// UsersFile is the users file (`chargemq users`); empty admits everyone.
	UsersFile string `yaml:"users_file"`
}

// HTTPConfig says who may use the admin API and the page.
type HTTPConfig struct {
	// AllowRemote serves /api/v1 and the page to non-loopback clients
	// when no users file is configured.
	AllowRemote bool `yaml:"allow_remote"`
}

// TLSConfig holds what every TLS listener serves.
type TLSConfig struct {
	// Certificates are the server certificates with their keys; an RSA
	// and an ECDSA one together serve every OCPP cipher suite.
	Certificates []CertificateConfig `yaml:"certificates"`
	// ClientCA is the CA of the client certificates: with it the ocpp_tls
	// listener requires one (security profile 3).
	ClientCA string `yaml:"client_ca"`
}

// CertificateConfig is one certificate chain file and its key file (PEM).
type CertificateConfig struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// MQTTConfig bounds what MQTT clients may make the broker hold.
type MQTTConfig struct {
	// MaxPacketSize is the largest MQTT packet accepted, in bytes.
	MaxPacketSize int `yaml:"max_packet_size"`
	// ConnectTimeout is how long a new connection may take to send CONNECT.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// MaxSessionExpiry caps how long a disconnected session is kept.
	MaxSessionExpiry time.Duration `yaml:"max_session_expiry"`
	// MaxQueuedMessages bounds the messages queued for one client.
	MaxQueuedMessages int `yaml:"max_queued_messages"`
	// MaxClients bounds the MQTT clients connected at once.
	MaxClients int `yaml:"max_clients"`
}

// ListenersConfig holds the listen addresses ("host:port"). An empty string
// disables that listener, and port 0 lets the kernel pick one (serve logs the
// bound address), which is what tests and side-by-side instances want.
type ListenersConfig struct {
	MQTT   string `yaml:"mqtt"`
	MQTTWS string `yaml:"mqtt_ws"`
	OCPP   string `yaml:"ocpp"`
	HTTP   string `yaml:"http"`
	// The TLS listeners, off by default (docs/security.md).
	OCPPTLS      string `yaml:"ocpp_tls"`
	OCPPTLSBasic string `yaml:"ocpp_tls_basic"`
	MQTTTLS      string `yaml:"mqtt_tls"`
	MQTTWSS      string `yaml:"mqtt_wss"`
	HTTPTLS      string `yaml:"http_tls"`
	// Pprof serves Go's profiling endpoints; loopback only, off by default.
	Pprof string `yaml:"pprof"`
}

// LogConfig chooses the slog handler made in run: Level is one of debug, info,
// warn, error and Format is text (for people) or json (for log shippers).
type LogConfig struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
	// Frames logs every OCPP frame at debug level.
	Frames bool `yaml:"frames"`
}

// OCPPConfig configures the OCPP-J WebSocket gateway. Names and defaults follow
// the EMQX OCPP gateway so that an EMQX user's settings carry over.
type OCPPConfig struct {
	// Path is the URL prefix in front of the charge point id.
	Path string `yaml:"path"`
	// MaxFrameSize bounds one WebSocket frame, both ways, in bytes.
	MaxFrameSize int `yaml:"max_frame_size"`
	// FailIfNoSubprotocol refuses clients that offer no subprotocol instead
	// of assuming ocpp1.6.
	FailIfNoSubprotocol bool `yaml:"fail_if_no_subprotocol"`
	// Mountpoint is prefixed to every topic template.
	Mountpoint string `yaml:"mountpoint"`
	// WriteTimeout is how long a charge point may leave its socket unread
	// before it is closed as a slow consumer.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// DefaultHeartbeatInterval × (1 + HeartbeatCheckingTimesBackoff) of
	// silence from a charge point (no frame, no ping or pong) closes it. The
	// interval then follows what the central system tells the charge point
	// (BootNotification, ChangeConfiguration of HeartbeatInterval).
	DefaultHeartbeatInterval      time.Duration `yaml:"default_heartbeat_interval"`
	HeartbeatCheckingTimesBackoff int           `yaml:"heartbeat_checking_times_backoff"`
	// IdleTimeout is the deadline for the first OCPP frame after the
	// WebSocket upgrade; it is not rolling.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// WSPingInterval makes the server send WebSocket pings; 0 sends none.
	WSPingInterval time.Duration `yaml:"ws_ping_interval"`
	// MaxConnections bounds the charge points connected at once.
	MaxConnections int `yaml:"max_connections"`
	// MaxHandshakes bounds the WebSocket upgrades in progress at once.
	MaxHandshakes int `yaml:"max_handshakes"`
	// MaxConnectionsPerIP bounds the connections from one address; 0 is
	// no bound.
	MaxConnectionsPerIP int `yaml:"max_connections_per_ip"`
	// UsernameMustMatchCID binds a charge point's user to its id.
	UsernameMustMatchCID bool `yaml:"username_must_match_cid"`
	// ClientCertIdentity binds a profile 3 client certificate to the
	// charge point: cn, serial or none.
	ClientCertIdentity string `yaml:"client_cert_identity"`
	// ClientCertOrganization, when set, must be an Organization of the
	// client certificate's subject.
	ClientCertOrganization string `yaml:"client_cert_organization"`
	// FrameHistory is how many of each charge point's last frames the
	// admin API keeps; FrameHistoryBytes bounds them all together.
	FrameHistory      int `yaml:"frame_history"`
	FrameHistoryBytes int `yaml:"frame_history_bytes"`
	// PresenceTopic is the template of the retained presence messages.
	PresenceTopic string `yaml:"presence_topic"`
	// MessageFormatChecking is the schema checking mode: all, upstream_only,
	// dnstream_only or disable.
	MessageFormatChecking string `yaml:"message_format_checking"`
	// CheckingOverrides change the mode for charge points whose id matches
	// a glob; the first match wins.
	CheckingOverrides []CheckingOverride `yaml:"checking_overrides"`
	// JSONSchemaIDPrefix is the prefix of schema ids; files in JSONSchemaDir
	// replace the embedded schemas with the same id.
	JSONSchemaIDPrefix string         `yaml:"json_schema_id_prefix"`
	JSONSchemaDir      string         `yaml:"json_schema_dir"`
	Upstream           UpstreamConfig `yaml:"upstream"`
	Dnstream           DnstreamConfig `yaml:"dnstream"`
}

// CheckingOverride is one item of ocpp.checking_overrides: charge points
// whose id matches CID (a path.Match glob) are checked as Mode says.
type CheckingOverride struct {
	CID  string `yaml:"cid"`
	Mode string `yaml:"mode"`
}

// UpstreamConfig configures what the gateway publishes on behalf of charge
// points. Topic templates are kept as strings here; their placeholders are
// checked by the topic package when the broker is built.
type UpstreamConfig struct {
	Topic      string `yaml:"topic"`
	ReplyTopic string `yaml:"reply_topic"`
	ErrorTopic string `yaml:"error_topic"`
	// TopicOverrideMapping maps an OCPP action to the template used for its
	// CALLs instead of Topic.
	TopicOverrideMapping map[string]string `yaml:"topic_override_mapping"`
	QoS                  int               `yaml:"qos"`
	// MaxPending is how many unanswered charge point calls are remembered
	// per charge point to match their answers.
	MaxPending int `yaml:"max_pending"`
}

// DnstreamConfig configures commands sent from MQTT to charge points ("dnstream"
// is EMQX's spelling, kept so configuration keys match).
type DnstreamConfig struct {
	Topic string `yaml:"topic"`
	// MaxMqueueLen is how many CALLs may wait behind the outstanding one.
	MaxMqueueLen int `yaml:"max_mqueue_len"`
	// CallTimeout is how long the outstanding CALL waits for its answer.
	CallTimeout time.Duration `yaml:"call_timeout"`
	// OfflineTTL is how long commands for an offline charge point are held
	// for it; 0 fails them as offline at once.
	OfflineTTL time.Duration `yaml:"offline_ttl"`
	// MaxOfflineCIDs bounds how many charge points may have commands held.
	MaxOfflineCIDs int `yaml:"max_offline_cids"`
	// MaxOfflineBytes bounds the payload bytes held for all charge points.
	MaxOfflineBytes int `yaml:"max_offline_bytes"`
}

// DefaultConfig returns the settings used when nothing is configured. They
// run a complete broker on the EMQX ports, so `chargemq` alone is useful.
// They are broker.DefaultOptions, the one place defaults live, in the
// file's shape; only the logger's settings are the binary's own.
func DefaultConfig() Config {
	d := broker.DefaultOptions()
	o := d.OCPP
	return Config{
		Listeners: ListenersConfig{
			MQTT:   d.MQTTAddr,
			MQTTWS: d.MQTTWSAddr,
			OCPP:   d.OCPPAddr,
			HTTP:   d.HTTPAddr,

			OCPPTLS:      d.OCPPTLSAddr,
			OCPPTLSBasic: d.OCPPTLSBasicAddr,
			MQTTTLS:      d.MQTTTLSAddr,
			MQTTWSS:      d.MQTTWSSAddr,
			HTTPTLS:      d.HTTPTLSAddr,
			Pprof:        d.PprofAddr,
		},
		HTTP:            HTTPConfig{AllowRemote: d.HTTPAllowRemote},
		TLS:             TLSConfig{Certificates: []CertificateConfig{}, ClientCA: d.TLS.ClientCA},
		Log:             LogConfig{Level: "info", Format: "text", Frames: d.LogFrames},
		ShutdownTimeout: d.ShutdownTimeout,
		FDReserve:       d.FDReserve,
		Auth:            AuthConfig{UsersFile: d.UsersFile},
		MQTT: MQTTConfig{
			MaxPacketSize:     d.MQTT.MaxPacketSize,
			ConnectTimeout:    d.MQTT.ConnectTimeout,
			MaxSessionExpiry:  d.MQTT.MaxSessionExpiry,
			MaxQueuedMessages: d.MQTT.MaxQueuedMessages,
			MaxClients:        d.MQTT.MaxClients,
		},
		OCPP: OCPPConfig{
			Path:                o.Path,
			MaxFrameSize:        int(o.MaxFrameSize),
			FailIfNoSubprotocol: o.FailIfNoSubprotocol,
			Mountpoint:          d.Mountpoint,
			WriteTimeout:        o.WriteTimeout,

			DefaultHeartbeatInterval:      o.HeartbeatInterval,
			HeartbeatCheckingTimesBackoff: o.HeartbeatBackoff,
			IdleTimeout:                   o.IdleTimeout,
			WSPingInterval:                o.PingInterval,
			MaxConnections:                o.MaxConnections,
			MaxHandshakes:                 o.MaxHandshakes,
			MaxConnectionsPerIP:           o.MaxConnectionsPerIP,
			UsernameMustMatchCID:          d.UsernameMustMatchCID,
			ClientCertIdentity:            d.ClientCertIdentity,
			ClientCertOrganization:        d.ClientCertOrganization,
			FrameHistory:                  o.FrameHistory,
			FrameHistoryBytes:             int(o.FrameHistoryBytes),
			PresenceTopic:                 d.PresenceTopic,
			MessageFormatChecking:         string(d.Checking),
			CheckingOverrides:             []CheckingOverride{},
			JSONSchemaIDPrefix:            d.SchemaIDPrefix,
			JSONSchemaDir:                 d.SchemaDir,
			Upstream: UpstreamConfig{
				Topic:                d.UpstreamTopic,
				ReplyTopic:           d.ReplyTopic,
				ErrorTopic:           d.ErrorTopic,
				TopicOverrideMapping: map[string]string{},
				QoS:                  int(d.UpstreamQoS),
				MaxPending:           o.MaxPending,
			},
			Dnstream: DnstreamConfig{
				Topic:           d.DownstreamTopic,
				MaxMqueueLen:    o.MaxQueue,
				CallTimeout:     o.CallTimeout,
				OfflineTTL:      o.OfflineTTL,
				MaxOfflineCIDs:  o.MaxOfflineCIDs,
				MaxOfflineBytes: int(o.MaxOfflineBytes),
			},
		},
	}
}

// FieldError is a configuration problem tied to one key. Path is the YAML
// path (e.g. "ocpp.max_frame_size") so the user can find the key whichever
// layer (file, environment or flag) set it.
type FieldError struct {
	Path string
	Msg  string
}

// Error implements error as "path: message".
func (e *FieldError) Error() string { return e.Path + ": " + e.Msg }

// Validate reports every invalid setting at once (joined with errors.Join),
// each as a *FieldError naming its YAML path, so one edit-run cycle fixes a
// whole config file rather than one key per restart.
func (c *Config) Validate() error {
	var errs []error
	bad := func(path, format string, args ...any) {
		errs = append(errs, &FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
	}

	listeners := []struct {
		path, addr string
	}{
		{"listeners.mqtt", c.Listeners.MQTT},
		{"listeners.mqtt_ws", c.Listeners.MQTTWS},
		{"listeners.ocpp", c.Listeners.OCPP},
		{"listeners.http", c.Listeners.HTTP},
		{"listeners.ocpp_tls", c.Listeners.OCPPTLS},
		{"listeners.ocpp_tls_basic", c.Listeners.OCPPTLSBasic},
		{"listeners.mqtt_tls", c.Listeners.MQTTTLS},
		{"listeners.mqtt_wss", c.Listeners.MQTTWSS},
		{"listeners.http_tls", c.Listeners.HTTPTLS},
	}
	seen := map[string]string{}
	for _, l := range listeners {
		if l.addr == "" {
			continue
		}
		if err := checkListenAddr(l.addr); err != nil {
			bad(l.path, "%v", err)
			continue
		}
		// Two listeners on the same fixed port would fail at bind time with
		// a less helpful message; port 0 is always free to repeat.
		if _, port, _ := net.SplitHostPort(l.addr); port != "0" {
			if other, ok := seen[l.addr]; ok {
				bad(l.path, "address %q is already used by %s", l.addr, other)
			}
			seen[l.addr] = l.path
		}
	}

	if _, ok := parseLogLevel(c.Log.Level); !ok {
		bad("log.level", "must be one of debug, info, warn, error (got %q)", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", "must be text or json (got %q)", c.Log.Format)
	}

	if c.ShutdownTimeout <= 0 {
		bad("shutdown_timeout", "must be > 0 (got %s)", c.ShutdownTimeout)
	}
	if c.FDReserve <= 0 {
		bad("fd_reserve", "must be > 0 (got %d)", c.FDReserve)
	}
	if f := c.Auth.UsersFile; f != "" {
		if fi, err := os.Stat(f); err != nil {
			bad("auth.users_file", "%v", err)
		} else if fi.IsDir() {
			bad("auth.users_file", "%q is a directory", f)
		}
	}
	tlsListeners := []string{}
	for _, l := range listeners[4:] {
		if l.addr != "" {
			tlsListeners = append(tlsListeners, l.path)
		}
	}
	for i, pair := range c.TLS.Certificates {
		if pair.Cert == "" {
			bad(fmt.Sprintf("tls.certificates[%d].cert", i), "missing (each --tls-key needs a --tls-cert)")
		}
		if pair.Key == "" {
			bad(fmt.Sprintf("tls.certificates[%d].key", i), "missing (each --tls-cert needs a --tls-key)")
		}
	}
	if len(tlsListeners) > 0 && len(c.TLS.Certificates) == 0 {
		bad("tls.certificates", "%s needs a certificate (--tls-cert and --tls-key)", strings.Join(tlsListeners, ", "))
	}
	if c.Listeners.OCPPTLSBasic != "" && c.TLS.ClientCA == "" {
		bad("listeners.ocpp_tls_basic", "serves profile 2 next to a profile 3 port, so it needs tls.client_ca "+
			"(without a client CA, listeners.ocpp_tls serves profile 2 itself)")
	}
	if a := c.Listeners.Pprof; a != "" {
		if err := checkListenAddr(a); err != nil {
			bad("listeners.pprof", "%v", err)
		} else if host, _, _ := net.SplitHostPort(a); host != "localhost" && !isLoopbackIP(host) {
			bad("listeners.pprof", "must be a loopback address such as 127.0.0.1:6060 (got %q): the profiling endpoints expose the process's memory", a)
		}
	}
	if c.OCPP.FrameHistory < 0 {
		bad("ocpp.frame_history", "must be >= 0 (got %d; 0 keeps none)", c.OCPP.FrameHistory)
	}
	if c.OCPP.FrameHistoryBytes <= 0 {
		bad("ocpp.frame_history_bytes", "must be > 0 (got %d)", c.OCPP.FrameHistoryBytes)
	}
	switch c.OCPP.ClientCertIdentity {
	case broker.IdentityCN, broker.IdentitySerial, broker.IdentityNone:
	default:
		bad("ocpp.client_cert_identity", "must be cn, serial or none (got %q)", c.OCPP.ClientCertIdentity)
	}

	m := &c.MQTT
	if m.MaxPacketSize < 16 || m.MaxPacketSize > 268435455 {
		// 268,435,455 is the largest remaining length MQTT can encode.
		bad("mqtt.max_packet_size", "must be from 16 to 268435455 (got %d)", m.MaxPacketSize)
	}
	if m.ConnectTimeout <= 0 {
		bad("mqtt.connect_timeout", "must be > 0 (got %s)", m.ConnectTimeout)
	}
	if m.MaxSessionExpiry < time.Second || m.MaxSessionExpiry > math.MaxUint32*time.Second {
		bad("mqtt.max_session_expiry", "must be from 1s to %s (got %s)", math.MaxUint32*time.Second, m.MaxSessionExpiry)
	}
	if m.MaxQueuedMessages <= 0 || m.MaxQueuedMessages > math.MaxUint16 {
		bad("mqtt.max_queued_messages", "must be from 1 to 65535 (got %d)", m.MaxQueuedMessages)
	}
	if m.MaxClients <= 0 {
		bad("mqtt.max_clients", "must be > 0 (got %d)", m.MaxClients)
	}

	o := &c.OCPP
	switch {
	case !strings.HasPrefix(o.Path, "/") || !strings.HasSuffix(o.Path, "/"):
		bad("ocpp.path", "must start and end with \"/\" (got %q)", o.Path)
	case strings.ContainsAny(o.Path, "?#"):
		bad("ocpp.path", "must not contain \"?\" or \"#\" (got %q)", o.Path)
	}
	if o.MaxFrameSize <= 0 {
		bad("ocpp.max_frame_size", "must be > 0 (got %d)", o.MaxFrameSize)
	}
	if strings.ContainsAny(o.Mountpoint, "+#\x00") {
		bad("ocpp.mountpoint", "must not contain MQTT wildcards or NUL (got %q)", o.Mountpoint)
	}
	if o.WriteTimeout <= 0 {
		bad("ocpp.write_timeout", "must be > 0 (got %s)", o.WriteTimeout)
	}
	if o.DefaultHeartbeatInterval <= 0 {
		bad("ocpp.default_heartbeat_interval", "must be > 0 (got %s)", o.DefaultHeartbeatInterval)
	}
	switch b := o.HeartbeatCheckingTimesBackoff; {
	case b < 0:
		bad("ocpp.heartbeat_checking_times_backoff", "must be >= 0 (got %d)", b)
	case o.DefaultHeartbeatInterval > 0 && int64(b) >= math.MaxInt64/int64(o.DefaultHeartbeatInterval):
		// The liveness window, interval × (1 + backoff), must be a duration.
		bad("ocpp.heartbeat_checking_times_backoff", "too large: %s × (1 + %d) overflows a duration", o.DefaultHeartbeatInterval, b)
	}
	if o.IdleTimeout <= 0 {
		bad("ocpp.idle_timeout", "must be > 0 (got %s)", o.IdleTimeout)
	}
	if o.WSPingInterval < 0 {
		bad("ocpp.ws_ping_interval", "must be >= 0 (got %s)", o.WSPingInterval)
	}
	if o.MaxConnections <= 0 {
		bad("ocpp.max_connections", "must be > 0 (got %d)", o.MaxConnections)
	}
	if o.MaxHandshakes <= 0 {
		bad("ocpp.max_handshakes", "must be > 0 (got %d)", o.MaxHandshakes)
	}
	if o.MaxConnectionsPerIP < 0 {
		bad("ocpp.max_connections_per_ip", "must be >= 0 (got %d)", o.MaxConnectionsPerIP)
	}
	if !isCheckingMode(o.MessageFormatChecking) {
		bad("ocpp.message_format_checking", "must be one of %s (got %q)", checkingModeList(), o.MessageFormatChecking)
	}
	for i, r := range o.CheckingOverrides {
		p := fmt.Sprintf("ocpp.checking_overrides[%d]", i)
		if r.CID == "" {
			bad(p+".cid", "must not be empty (a glob such as \"ACME-*\")")
		} else if _, err := path.Match(r.CID, ""); err != nil {
			bad(p+".cid", "bad glob %q: %v", r.CID, err)
		}
		if !isCheckingMode(r.Mode) {
			bad(p+".mode", "must be one of %s (got %q)", checkingModeList(), r.Mode)
		}
	}
	if o.JSONSchemaIDPrefix == "" {
		bad("ocpp.json_schema_id_prefix", "must not be empty")
	}
	if dir := o.JSONSchemaDir; dir != "" {
		if fi, err := os.Stat(dir); err != nil {
			bad("ocpp.json_schema_dir", "%v", err)
		} else if !fi.IsDir() {
			bad("ocpp.json_schema_dir", "%q is not a directory", dir)
		}
	}

	u := &o.Upstream
	for _, t := range []struct{ path, tmpl string }{
		{"ocpp.upstream.topic", u.Topic},
		{"ocpp.upstream.reply_topic", u.ReplyTopic},
		{"ocpp.upstream.error_topic", u.ErrorTopic},
		{"ocpp.dnstream.topic", o.Dnstream.Topic},
		{"ocpp.presence_topic", o.PresenceTopic},
	} {
		if t.tmpl == "" {
			bad(t.path, "must not be empty")
		}
	}
	actions := make([]string, 0, len(u.TopicOverrideMapping))
	for a := range u.TopicOverrideMapping {
		actions = append(actions, a)
	}
	sort.Strings(actions) // stable error order
	for _, a := range actions {
		if a == "" {
			bad("ocpp.upstream.topic_override_mapping", "action must not be empty")
		} else if u.TopicOverrideMapping[a] == "" {
			bad("ocpp.upstream.topic_override_mapping."+a, "must not be empty")
		}
	}
	if u.QoS < 0 || u.QoS > 2 {
		bad("ocpp.upstream.qos", "must be 0, 1 or 2 (got %d)", u.QoS)
	}
	if u.MaxPending <= 0 {
		bad("ocpp.upstream.max_pending", "must be > 0 (got %d)", u.MaxPending)
	}

	d := &o.Dnstream
	if d.MaxMqueueLen < 0 {
		bad("ocpp.dnstream.max_mqueue_len", "must be >= 0 (got %d)", d.MaxMqueueLen)
	}
	if d.CallTimeout <= 0 {
		bad("ocpp.dnstream.call_timeout", "must be > 0 (got %s)", d.CallTimeout)
	}
	if d.OfflineTTL < 0 {
		bad("ocpp.dnstream.offline_ttl", "must be >= 0 (got %s)", d.OfflineTTL)
	}
	if d.MaxOfflineCIDs <= 0 {
		bad("ocpp.dnstream.max_offline_cids", "must be > 0 (got %d)", d.MaxOfflineCIDs)
	}
	if d.MaxOfflineBytes <= 0 {
		bad("ocpp.dnstream.max_offline_bytes", "must be > 0 (got %d)", d.MaxOfflineBytes)
	}
	return errors.Join(errs...)
}

// checkingModes are the values of ocpp.message_format_checking and of a
// checking_overrides mode, as the broker names them.
var checkingModes = []broker.CheckingMode{broker.CheckAll, broker.CheckUpstreamOnly, broker.CheckDnstreamOnly, broker.CheckDisable}

// isCheckingMode reports whether s is one of checkingModes.
func isCheckingMode(s string) bool {
	_, ok := broker.CheckingMode(s).Checking()
	return ok
}

// checkingModeList is checkingModes for error messages.
func checkingModeList() string {
	names := make([]string, len(checkingModes))
	for i, m := range checkingModes {
		names[i] = string(m)
	}
	return strings.Join(names, ", ")
}

// checkListenAddr accepts what net.Listen("tcp", addr) accepts with a numeric
// port, so a typo is reported at startup rather than as a bind error later.
func checkListenAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("must be host:port, e.g. \":1883\" (got %q)", addr)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("port must be a number from 0 to 65535 (got %q)", port)
	}
	return nil
}

// isLoopbackIP reports whether host is a loopback IP address.
func isLoopbackIP(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
