package sim

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(*Options)
		want   string // substring of the error; "" for valid
	}{
		{"defaults", func(*Options) {}, ""},
		{"idle", func(o *Options) { o.CallRate = 0 }, ""},
		{"padded", func(o *Options) { o.PayloadBytes = 4096 }, ""},
		{"respond with derived MQTT URL", func(o *Options) { o.Respond = true }, ""},
		{"wss", func(o *Options) { o.URL = "wss://gw.example/ocpp" }, ""},
		{"http URL", func(o *Options) { o.URL = "http://localhost:33033/ocpp" }, "url: "},
		{"no host", func(o *Options) { o.URL = "ws:///ocpp" }, "url: "},
		{"count 0", func(o *Options) { o.Count = 0 }, "count: 0"},
		{"count huge", func(o *Options) { o.Count = 2_000_000 }, "count: "},
		{"prefix with slash", func(o *Options) { o.IDPrefix = "a/b" }, "id-prefix: "},
		{"prefix with wildcard", func(o *Options) { o.IDPrefix = "cp+" }, "id-prefix: "},
		{"negative rate", func(o *Options) { o.CallRate = -1 }, "call-rate: "},
		{"NaN rate", func(o *Options) { o.ConnectRate = math.NaN() }, "connect-rate: "},
		{"infinite rate", func(o *Options) { o.CommandRate = math.Inf(1) }, "command-rate: "},
		{"no duration", func(o *Options) { o.Duration = 0 }, "duration: "},
		{"unknown action", func(o *Options) { o.Action = "Reset" }, "action: "},
		{"payload too small", func(o *Options) { o.PayloadBytes = 10 }, "payload-bytes: 10"},
		{"payload too big", func(o *Options) { o.PayloadBytes = 64 << 20 }, "payload-bytes: "},
		{"bad MQTT scheme", func(o *Options) { o.Respond, o.MQTTURL = true, "ssl://x:8883" }, "mqtt-url: "},
		{"MQTT URL unused without respond", func(o *Options) { o.MQTTURL = "ssl://x:8883" }, ""},
		{"mqtts", func(o *Options) { o.Respond, o.MQTTURL = true, "mqtts://x:8883" }, ""},
		{"commands need MQTT", func(o *Options) { o.CommandRate, o.MQTTURL = 5, "ws://x" }, "mqtt-url: "},
		{"negative timeout", func(o *Options) { o.Timeout = -time.Second }, "timeout: "},
		{"sub-second heartbeat", func(o *Options) { o.HeartbeatInterval = 500 * time.Millisecond }, "heartbeat-interval: "},
	}
	wss := func(o *Options) { o.URL = "wss://gw.example/ocpp" }
	mqtts := func(o *Options) { o.Respond, o.MQTTURL = true, "mqtts://gw.example" }
	both := func(fs ...func(*Options)) func(*Options) {
		return func(o *Options) {
			for _, f := range fs {
				f(o)
			}
		}
	}
	tls := []struct {
		name   string
		mutate func(*Options)
		want   string
	}{
		{"profile 3, a certificate per id", both(wss, func(o *Options) { o.TLSCert, o.TLSKey = "c/{cid}.crt", "c/{cid}.key" }), ""},
		{"profile 3, one certificate", both(wss, func(o *Options) { o.TLSCert, o.TLSKey = "all.crt", "all.key" }), ""},
		{"wss with every TLS option", both(wss, mqtts, func(o *Options) {
			o.TLSCA, o.TLSCert, o.TLSKey, o.TLSServerName, o.TLSInsecureSkipVerify = "ca.pem", "c.crt", "c.key", "gw", true
			o.MQTTTLSCert, o.MQTTTLSKey = "m.crt", "m.key"
		}), ""},
		{"CA for the broker only", both(mqtts, func(o *Options) { o.TLSCA = "ca.pem" }), ""},
		{"certificate without key", both(wss, func(o *Options) { o.TLSCert = "c.crt" }), `tls-cert: "c.crt": needs --tls-key too`},
		{"key without certificate", both(wss, func(o *Options) { o.TLSKey = "c.key" }), `tls-key: "c.key": needs --tls-cert too`},
		{"certificate for ws://", func(o *Options) { o.TLSCert, o.TLSKey = "c.crt", "c.key" }, "tls-cert: only with a wss:// --url"},
		{"key for ws://", func(o *Options) { o.TLSCert, o.TLSKey = "c.crt", "c.key" }, "tls-key: only with a wss:// --url"},
		{"server name for ws://", func(o *Options) { o.TLSServerName = "gw" }, "tls-server-name: only with a wss:// --url"},
		{"CA with nothing over TLS", func(o *Options) { o.TLSCA = "ca.pem" }, `tls-ca: "ca.pem": no connection of this run uses TLS`},
		{"CA for an unused mqtts", func(o *Options) { o.TLSCA, o.MQTTURL = "ca.pem", "mqtts://x" }, "tls-ca: "},
		{"skip verify with nothing over TLS", func(o *Options) { o.TLSInsecureSkipVerify = true }, "tls-insecure-skip-verify: no connection"},
		{"MQTT certificate without key", both(mqtts, func(o *Options) { o.MQTTTLSCert = "m.crt" }), "mqtt-tls-cert: \"m.crt\": needs --mqtt-tls-key too"},
		{"MQTT key without certificate", both(mqtts, func(o *Options) { o.MQTTTLSKey = "m.key" }), "mqtt-tls-key: "},
		{"MQTT certificate on mqtt://", func(o *Options) { o.Respond, o.MQTTTLSCert, o.MQTTTLSKey = true, "m.crt", "m.key" }, "mqtt-tls-cert: only with an mqtts://"},
		{"MQTT certificate without MQTT", func(o *Options) { o.MQTTURL, o.MQTTTLSCert, o.MQTTTLSKey = "mqtts://x", "m.crt", "m.key" }, "mqtt-tls-key: only with"},
	}
	tests = append(tests, tls...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := DefaultOptions()
			tt.mutate(&o)
			err := o.withDefaults().Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestValidateJoinsErrors(t *testing.T) {
	t.Parallel()
	o := DefaultOptions()
	o.Count, o.Duration = 0, 0
	err := o.Validate()
	if err == nil || !strings.Contains(err.Error(), "count: ") || !strings.Contains(err.Error(), "duration: ") {
		t.Fatalf("error %v, want both count and duration named", err)
	}
}

func TestWithDefaults(t *testing.T) {
	t.Parallel()
	o := Options{URL: "ws://10.1.2.3:9000/ocpp"}.withDefaults()
	if o.MQTTURL != "mqtt://10.1.2.3:1883" || o.Timeout != 10*time.Second || o.HeartbeatInterval != time.Minute || o.Action != ActionHeartbeat {
		t.Fatalf("withDefaults = %+v", o)
	}
	for url, want := range map[string]string{"mqtt://broker": "broker:1883", "mqtts://broker": "broker:8883", "mqtts://broker:1234": "broker:1234"} {
		if got := (Options{MQTTURL: url}).mqttAddr(); got != want {
			t.Errorf("mqttAddr of %s = %q, want %q", url, got, want)
		}
	}
	if got := (Options{URL: "ws://[::1]:33033/ocpp"}).withDefaults().MQTTURL; got != "mqtt://[::1]:1883" {
		t.Errorf("MQTT URL from an IPv6 URL = %q", got)
	}
}
