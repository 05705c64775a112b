package main

import (
	"io"
	"log/slog"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/chargemq/chargemq/broker"
	"github.com/chargemq/chargemq/broker/certs"
	"github.com/chargemq/chargemq/ocpp"
)

// TestBrokerOptionsFull maps testdata/full.yaml (every key set) and checks
// each key lands in its broker option, then that the broker accepts the
// result (templates, checking modes, globs and the vendor schema directory).
func TestBrokerOptionsFull(t *testing.T) {
	t.Parallel()
	cfg, err := loadConfig(configSources{File: filepath.Join("testdata", "full.yaml")})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	got := brokerOptions(cfg, log)
	want := broker.Options{
		MQTTAddr: "127.0.0.1:11883", MQTTWSAddr: "", OCPPAddr: ":0", HTTPAddr: "127.0.0.1:18084",
		OCPPTLSAddr: ":0", OCPPTLSBasicAddr: ":0", MQTTTLSAddr: ":0", MQTTWSSAddr: ":0", HTTPTLSAddr: ":0",
		TLS: certs.Options{
			Certificates: []certs.Pair{
				{Cert: "testdata/tls/server-rsa.crt", Key: "testdata/tls/server-rsa.key"},
				{Cert: "testdata/tls/server-ec.crt", Key: "testdata/tls/server-ec.key"},
			},
			ClientCA: "testdata/tls/ca.pem",
		},
		ClientCertIdentity:     "serial",
		ClientCertOrganization: "Depot Operator Ltd",
		HTTPAllowRemote:        true,
		PprofAddr:              "127.0.0.1:0",
		LogFrames:              true,
		OCPP: ocpp.Options{
			Path:                "/ocpp16/",
			MaxFrameSize:        131072,
			FailIfNoSubprotocol: true,
			WriteTimeout:        5 * time.Second,
			CallTimeout:         90 * time.Second,
			MaxQueue:            0,
			MaxPending:          32,
			OfflineTTL:          2 * time.Minute,
			MaxOfflineCIDs:      500,
			MaxOfflineBytes:     1 << 20,
			HeartbeatInterval:   5 * time.Minute,
			HeartbeatBackoff:    2,
			IdleTimeout:         10 * time.Second,
			PingInterval:        20 * time.Second,
			MaxConnections:      5000,
			MaxHandshakes:       200,
			MaxConnectionsPerIP: 64,
			FrameHistory:        4,
			FrameHistoryBytes:   1 << 20,
		},
		MQTT: broker.MQTTOptions{
			MaxPacketSize:     256 << 10,
			ConnectTimeout:    5 * time.Second,
			MaxSessionExpiry:  30 * time.Minute,
			MaxQueuedMessages: 500,
			MaxClients:        50,
		},
		ShutdownTimeout:      20 * time.Second,
		FDReserve:            200,
		UsersFile:            "testdata/users.yaml",
		UsernameMustMatchCID: false,
		Mountpoint:           "depot1/",
		UpstreamTopic:        "up/${cid}",
		ReplyTopic:           "up/${cid}/reply",
		ErrorTopic:           "up/${cid}/error",
		DownstreamTopic:      "down/${cid}",
		TopicOverrides:       map[string]string{"BootNotification": "up/${cid}/boot", "Heartbeat": "up/${cid}/hb"},
		PresenceTopic:        "up/${cid}/presence",
		UpstreamQoS:          1,
		Checking:             broker.CheckUpstreamOnly,
		CheckingOverrides: []broker.CheckingOverride{
			{CID: "LEGACY-*", Mode: broker.CheckDisable},
			{CID: "ACME-[0-9]*", Mode: broker.CheckDnstreamOnly},
		},
		SchemaIDPrefix: "urn:vendor:ocpp16:",
		SchemaDir:      "testdata/schemas",
		Logger:         log,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("brokerOptions =\n%+v\nwant\n%+v", got, want)
	}
	if _, err := broker.New(got); err != nil {
		t.Errorf("broker.New(full.yaml): %v", err)
	}
}

// TestBrokerOptionsDefaults: the binary's defaults are the broker's own
// (broker.DefaultOptions, the one place defaults live), so running with no
// file and embedding the broker package give the same gateway.
func TestBrokerOptionsDefaults(t *testing.T) {
	t.Parallel()
	got := brokerOptions(DefaultConfig(), nil)
	want := broker.DefaultOptions()
	// The file's empty collections are the broker's nil ones.
	if len(got.TopicOverrides) != 0 || len(got.CheckingOverrides) != 0 {
		t.Fatalf("default overrides set: %+v", got)
	}
	got.TopicOverrides, got.CheckingOverrides = nil, nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("binary defaults =\n%+v\nbroker.DefaultOptions =\n%+v", got, want)
	}
	if _, err := broker.New(got); err != nil {
		t.Errorf("broker.New(defaults): %v", err)
	}
}
