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
		{"bad MQTT scheme", func(o *Options) { o.Respond, o.MQTTURL = true, "mqtts://x:8883" }, "mqtt-url: "},
		{"MQTT URL unused without respond", func(o *Options) { o.MQTTURL = "mqtts://x:8883" }, ""},
		{"commands need MQTT", func(o *Options) { o.CommandRate, o.MQTTURL = 5, "ws://x" }, "mqtt-url: "},
		{"negative timeout", func(o *Options) { o.Timeout = -time.Second }, "timeout: "},
		{"sub-second heartbeat", func(o *Options) { o.HeartbeatInterval = 500 * time.Millisecond }, "heartbeat-interval: "},
	}
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
	if got := (Options{MQTTURL: "mqtt://broker"}).mqttAddr(); got != "broker:1883" {
		t.Errorf("mqttAddr without port = %q", got)
	}
	if got := (Options{URL: "ws://[::1]:33033/ocpp"}).withDefaults().MQTTURL; got != "mqtt://[::1]:1883" {
		t.Errorf("MQTT URL from an IPv6 URL = %q", got)
	}
}
