package sim

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"strings"
	"time"
)

// Options configures a run. The zero value of Timeout, HeartbeatInterval, Action and MQTTURL
// means their default; everything else is taken as given, so start from DefaultOptions.
type Options struct {
	// URL is the gateway's OCPP endpoint without the charge point id
	// (ws://HOST:33033/ocpp); charge point ids are appended as one more path segment.
	URL string
	// Count is how many charge points connect.
	Count int
	// IDPrefix starts every charge point id; the rest is a 1-based number padded to the width
	// of Count (sim-0001 … sim-1000). The responder and the command publisher only ever touch
	// charge points of this run.
	IDPrefix string
	// ConnectRate is how many charge points start connecting per second (0: all at once).
	ConnectRate float64
	// Duration is how long the steady phase lasts: it starts when every charge point has
	// been dialled, so a run takes about Count/ConnectRate + Duration, plus the time answers
	// in flight get at the end (at most Timeout).
	Duration time.Duration
	// CallRate is the total rate of Action calls per second over all charge points, spread
	// evenly; 0 holds idle connections that send only BootNotification and heartbeats.
	CallRate float64
	// Action is what the charge points send at CallRate: Heartbeat, StatusNotification,
	// MeterValues, BootNotification or DataTransfer.
	Action string
	// PayloadBytes, when above zero, replaces Action with DataTransfer calls whose payload is
	// exactly this many bytes (at least minDataTransferSize).
	PayloadBytes int
	// Respond starts a responder on MQTT that answers every CALL of this run's charge points
	// with a valid CALLRESULT, so calls complete CP→MQTT→CP; the charge points then keep one
	// call outstanding at a time, as OCPP-J asks. Without it nothing in the simulator answers:
	// calls are sent on schedule without waiting, and only answers some other MQTT client
	// sends are matched.
	Respond bool
	// MQTTURL is the broker the responder and the command publisher connect to:
	// mqtt://HOST:1883 (or tcp://) in the clear, mqtts://HOST:8883 over TLS; empty means
	// mqtt:// on the host of URL, port 1883. The port defaults to 1883 and 8883.
	MQTTURL string
	// CommandRate is the total rate per second of commands (Reset) published on MQTT for the
	// charge points to answer, round-robin over those online (0: none).
	CommandRate float64
	// Timeout bounds a call's wait for its answer, both ways, and each dial and write
	// (default 10s).
	Timeout time.Duration
	// Username and Password are the charge points' HTTP Basic credentials (OCPP security
	// profile 1); "{cid}" in either is replaced by the charge point's id, so one template
	// serves a depot whose keys were provisioned by id. An empty Username with a Password
	// means the id itself, as profile 1 expects. Both empty: no credentials.
	Username, Password string
	// MQTTUsername and MQTTPassword log the responder and the command publisher in.
	MQTTUsername, MQTTPassword string

	// TLSCA is a PEM file of the CA certificates that verify the servers a wss:// URL or an
	// mqtts:// MQTTURL connects to; empty means the system's roots.
	TLSCA string
	// TLSCert and TLSKey are the charge points' client certificate and key, PEM files
	// (OCPP security profile 3, wss:// only; both or neither). "{cid}" in either path is
	// replaced by the charge point's id (certs/{cid}.crt), for a depot whose certificates
	// were provisioned per id; without it one certificate serves every charge point. Each
	// distinct file is read once per run: a file that depends on the id and cannot be read
	// or parsed fails that charge point's dial (counted in the Report, the path in its
	// Warnings), one that does not fails Run before any charge point dials. Connections are
	// TLS 1.2 or later.
	TLSCert, TLSKey string
	// TLSServerName, when set, is the name the gateway's certificate is verified against and
	// sent as SNI, instead of the host of URL (a gateway dialled by address).
	TLSServerName string
	// TLSInsecureSkipVerify accepts any server certificate, on the gateway and the broker
	// alike: for a lab whose certificates are throwaway, never against anything real, since
	// anyone on the path can then read and change the traffic (the Report warns).
	TLSInsecureSkipVerify bool
	// MQTTTLSCert and MQTTTLSKey are the client certificate and key (PEM files, both or
	// neither) of the responder and the command publisher on an mqtts:// MQTTURL.
	MQTTTLSCert, MQTTTLSKey string
	// HeartbeatInterval is the interval the responder's BootNotification answer gives, at
	// which charge points heartbeat when they have sent nothing else (whole seconds; default
	// 60s).
	HeartbeatInterval time.Duration
}

// DefaultOptions returns the defaults of `chargemq sim`: ten charge points on a local gateway,
// a Heartbeat a second each, for 30 s.
func DefaultOptions() Options {
	return Options{
		URL:               "ws://localhost:33033/ocpp",
		Count:             10,
		IDPrefix:          "sim-",
		ConnectRate:       100,
		Duration:          30 * time.Second,
		CallRate:          10,
		Action:            ActionHeartbeat,
		Timeout:           10 * time.Second,
		HeartbeatInterval: 60 * time.Second,
	}
}

// maxCount and maxPayloadBytes bound what Validate accepts: far beyond one process's reach,
// they only catch a typo before it allocates.
const (
	maxCount        = 1_000_000
	maxPayloadBytes = 16 << 20
)

// withDefaults fills the fields whose zero value means a default.
func (o Options) withDefaults() Options {
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
	if o.HeartbeatInterval == 0 {
		o.HeartbeatInterval = 60 * time.Second
	}
	if o.Action == "" {
		o.Action = ActionHeartbeat
	}
	if o.MQTTURL == "" {
		host := "localhost"
		if u, err := url.Parse(o.URL); err == nil && u.Hostname() != "" {
			host = u.Hostname()
		}
		o.MQTTURL = "mqtt://" + net.JoinHostPort(host, "1883")
	}
	return o
}

// Validate returns every problem with o, one per line, each naming the option as the
// command's flag does; nil when o can run. Run calls it after applying the defaults.
func (o Options) Validate() error {
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{name}, args...)...))
	}
	if u, err := url.Parse(o.URL); err != nil {
		bad("url", "%v", err)
	} else if u.Scheme != "ws" && u.Scheme != "wss" {
		bad("url", "%q: scheme must be ws or wss", o.URL)
	} else if u.Host == "" {
		bad("url", "%q: no host", o.URL)
	}
	if o.Count < 1 || o.Count > maxCount {
		bad("count", "%d: must be 1 to %d", o.Count, maxCount)
	}
	if strings.ContainsAny(o.IDPrefix, "/+#\x00") {
		bad("id-prefix", "%q: must not contain /, +, # or NUL (the gateway refuses such ids)", o.IDPrefix)
	}
	rate := func(name string, v float64) {
		if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			bad(name, "%v: must be a rate of 0 or more per second", v)
		}
	}
	rate("connect-rate", o.ConnectRate)
	rate("call-rate", o.CallRate)
	rate("command-rate", o.CommandRate)
	if o.Duration <= 0 {
		bad("duration", "%v: must be above zero", o.Duration)
	}
	switch o.Action {
	case ActionHeartbeat, ActionStatusNotification, ActionMeterValues, ActionBootNotification, ActionDataTransfer:
	default:
		bad("action", "%q: must be Heartbeat, StatusNotification, MeterValues, BootNotification or DataTransfer", o.Action)
	}
	if smallest := minDataTransferSize(); o.PayloadBytes != 0 && (o.PayloadBytes < smallest || o.PayloadBytes > maxPayloadBytes) {
		bad("payload-bytes", "%d: must be 0 or %d to %d", o.PayloadBytes, smallest, maxPayloadBytes)
	}
	useMQTT := o.Respond || o.CommandRate > 0
	if useMQTT {
		if u, err := url.Parse(o.MQTTURL); err != nil {
			bad("mqtt-url", "%v", err)
		} else if u.Scheme != "mqtt" && u.Scheme != "tcp" && u.Scheme != "mqtts" {
			bad("mqtt-url", "%q: scheme must be mqtt, tcp or mqtts", o.MQTTURL)
		} else if u.Hostname() == "" {
			bad("mqtt-url", "%q: no host", o.MQTTURL)
		}
	}
	o.validateTLS(bad, useMQTT)
	if o.Timeout <= 0 {
		bad("timeout", "%v: must be above zero", o.Timeout)
	}
	if o.HeartbeatInterval < time.Second {
		bad("heartbeat-interval", "%v: must be at least 1s (OCPP gives it in whole seconds)", o.HeartbeatInterval)
	}
	return errors.Join(errs...)
}

// validateTLS adds the problems of the TLS options to Validate's: a file given without its
// pair, and options that no TLS connection of the run would use (a certificate for a ws://
// URL), which would otherwise be ignored in silence.
func (o Options) validateTLS(bad func(name, format string, args ...any), useMQTT bool) {
	ocppTLS := o.ocppTLS()
	mqttTLS := useMQTT && o.mqttTLS()
	pair := func(certName, cert, keyName, key string) {
		switch {
		case cert != "" && key == "":
			bad(certName, "%q: needs --%s too", cert, keyName)
		case cert == "" && key != "":
			bad(keyName, "%q: needs --%s too", key, certName)
		}
	}
	pair("tls-cert", o.TLSCert, "tls-key", o.TLSKey)
	pair("mqtt-tls-cert", o.MQTTTLSCert, "mqtt-tls-key", o.MQTTTLSKey)
	if !ocppTLS {
		for _, f := range []struct{ name, value string }{
			{"tls-cert", o.TLSCert}, {"tls-key", o.TLSKey}, {"tls-server-name", o.TLSServerName},
		} {
			if f.value != "" {
				bad(f.name, "only with a wss:// --url, not %q", o.URL)
			}
		}
	}
	if !mqttTLS {
		for _, f := range []struct{ name, value string }{{"mqtt-tls-cert", o.MQTTTLSCert}, {"mqtt-tls-key", o.MQTTTLSKey}} {
			if f.value != "" {
				bad(f.name, "only with an mqtts:// --mqtt-url and --respond or --command-rate")
			}
		}
	}
	if !ocppTLS && !mqttTLS {
		const unused = "no connection of this run uses TLS (a wss:// --url, or an mqtts:// --mqtt-url with --respond or --command-rate)"
		if o.TLSCA != "" {
			bad("tls-ca", "%q: "+unused, o.TLSCA)
		}
		if o.TLSInsecureSkipVerify {
			bad("tls-insecure-skip-verify", unused)
		}
	}
}

// ocppTLS reports whether the charge points dial over TLS (a wss:// URL).
func (o Options) ocppTLS() bool {
	u, err := url.Parse(o.URL)
	return err == nil && u.Scheme == "wss"
}

// mqttTLS reports whether MQTTURL is over TLS (mqtts://).
func (o Options) mqttTLS() bool {
	u, err := url.Parse(o.MQTTURL)
	return err == nil && u.Scheme == "mqtts"
}

// mqttAddr returns host:port of MQTTURL (port 1883, or 8883 for mqtts, when it gives none).
func (o Options) mqttAddr() string {
	u, err := url.Parse(o.MQTTURL)
	if err != nil {
		return ""
	}
	port := u.Port()
	if port == "" {
		port = "1883"
		if u.Scheme == "mqtts" {
			port = "8883"
		}
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// scheduledAction is what charge points send at CallRate.
func (o Options) scheduledAction() string {
	if o.PayloadBytes > 0 {
		return ActionDataTransfer
	}
	return o.Action
}
