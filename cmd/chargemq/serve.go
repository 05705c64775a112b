package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/chargemq/chargemq/broker"
	"github.com/chargemq/chargemq/broker/certs"
	"github.com/chargemq/chargemq/ocpp"
)

// defaultGCPercent is the binary's GOGC unless the environment sets one.
const defaultGCPercent = 50

// serve runs the broker with cfg until ctx is cancelled, then shuts it
// down within shutdown_timeout: gracefully, then by force. A shutdown that
// had to force something is logged by the broker and still ends serve
// without an error (exit status 0): the process has stopped as asked.
func serve(ctx context.Context, cfg Config, log *slog.Logger) error {
	if os.Getenv("GOGC") == "" {
		// A depot box holds thousands of idle connections: a heap that
		// is mostly long-lived. Go's default lets the heap grow to twice
		// what is live before collecting; half again is enough, and saves
		// a quarter of the memory per charge point (docs/BENCHMARKS.md)
		// for a little more GC work. GOGC set in the environment wins.
		debug.SetGCPercent(defaultGCPercent)
	}
	// SIGHUP re-reads the users file (it is also re-read when it changes)
	// and the TLS certificates and client CA. It is caught before the
	// broker starts, so a SIGHUP sent once /readyz answers never takes
	// the default action (ending the process); one that arrives during
	// the start is applied right after it.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	b, err := broker.New(brokerOptions(cfg, log))
	if err != nil {
		return err
	}
	if err := b.Start(); err != nil {
		return err
	}
	log.Info("chargemq started")
	for done := false; !done; {
		select {
		case <-hup:
			log.Info("SIGHUP: reloading the users file and the certificates")
			_ = b.ReloadUsers()
			_ = b.ReloadTLS()
		case <-ctx.Done():
			done = true
		}
	}
	log.Info("shutting down", "timeout", cfg.ShutdownTimeout)
	if err := b.Shutdown(context.Background()); err != nil {
		log.Warn("shutdown incomplete", "error", err)
	}
	return nil
}

// brokerOptions maps the configuration file's shape onto the broker's.
func brokerOptions(cfg Config, log *slog.Logger) broker.Options {
	o := cfg.OCPP
	overrides := make([]broker.CheckingOverride, len(o.CheckingOverrides))
	for i, r := range o.CheckingOverrides {
		overrides[i] = broker.CheckingOverride{CID: r.CID, Mode: broker.CheckingMode(r.Mode)}
	}
	return broker.Options{
		MQTTAddr:   cfg.Listeners.MQTT,
		MQTTWSAddr: cfg.Listeners.MQTTWS,
		OCPPAddr:   cfg.Listeners.OCPP,
		HTTPAddr:   cfg.Listeners.HTTP,

		OCPPTLSAddr:      cfg.Listeners.OCPPTLS,
		OCPPTLSBasicAddr: cfg.Listeners.OCPPTLSBasic,
		MQTTTLSAddr:      cfg.Listeners.MQTTTLS,
		MQTTWSSAddr:      cfg.Listeners.MQTTWSS,
		HTTPTLSAddr:      cfg.Listeners.HTTPTLS,
		TLS:              tlsOptions(cfg.TLS),

		ClientCertIdentity:     o.ClientCertIdentity,
		ClientCertOrganization: o.ClientCertOrganization,
		HTTPAllowRemote:        cfg.HTTP.AllowRemote,
		PprofAddr:              cfg.Listeners.Pprof,
		LogFrames:              cfg.Log.Frames,
		OCPP: ocpp.Options{
			Path:                o.Path,
			MaxFrameSize:        int64(o.MaxFrameSize),
			FailIfNoSubprotocol: o.FailIfNoSubprotocol,
			WriteTimeout:        o.WriteTimeout,
			CallTimeout:         o.Dnstream.CallTimeout,
			MaxQueue:            o.Dnstream.MaxMqueueLen,
			MaxPending:          o.Upstream.MaxPending,
			OfflineTTL:          o.Dnstream.OfflineTTL,
			MaxOfflineCIDs:      o.Dnstream.MaxOfflineCIDs,
			MaxOfflineBytes:     int64(o.Dnstream.MaxOfflineBytes),
			HeartbeatInterval:   o.DefaultHeartbeatInterval,
			HeartbeatBackoff:    o.HeartbeatCheckingTimesBackoff,
			IdleTimeout:         o.IdleTimeout,
			PingInterval:        o.WSPingInterval,
			MaxConnections:      o.MaxConnections,
			MaxHandshakes:       o.MaxHandshakes,
			MaxConnectionsPerIP: o.MaxConnectionsPerIP,
			FrameHistory:        historyOption(o.FrameHistory),
			FrameHistoryBytes:   int64(o.FrameHistoryBytes),
		},
		MQTT: broker.MQTTOptions{
			MaxPacketSize:     cfg.MQTT.MaxPacketSize,
			ConnectTimeout:    cfg.MQTT.ConnectTimeout,
			MaxSessionExpiry:  cfg.MQTT.MaxSessionExpiry,
			MaxQueuedMessages: cfg.MQTT.MaxQueuedMessages,
			MaxClients:        cfg.MQTT.MaxClients,
		},
		ShutdownTimeout:      cfg.ShutdownTimeout,
		FDReserve:            cfg.FDReserve,
		UsersFile:            cfg.Auth.UsersFile,
		UsernameMustMatchCID: o.UsernameMustMatchCID,
		Mountpoint:           o.Mountpoint,
		UpstreamTopic:        o.Upstream.Topic,
		ReplyTopic:           o.Upstream.ReplyTopic,
		ErrorTopic:           o.Upstream.ErrorTopic,
		DownstreamTopic:      o.Dnstream.Topic,
		TopicOverrides:       o.Upstream.TopicOverrideMapping,
		PresenceTopic:        o.PresenceTopic,
		UpstreamQoS:          byte(o.Upstream.QoS),

		Checking:          broker.CheckingMode(o.MessageFormatChecking),
		CheckingOverrides: overrides,
		SchemaIDPrefix:    o.JSONSchemaIDPrefix,
		SchemaDir:         o.JSONSchemaDir,

		Logger: log,
	}
}

// tlsOptions maps the tls section onto the broker's.
func tlsOptions(t TLSConfig) certs.Options {
	o := certs.Options{ClientCA: t.ClientCA}
	for _, c := range t.Certificates {
		o.Certificates = append(o.Certificates, certs.Pair{Cert: c.Cert, Key: c.Key})
	}
	return o
}

// historyOption maps ocpp.frame_history onto ocpp.Options, where 0 means
// the default and a negative number none.
func historyOption(n int) int {
	if n == 0 {
		return -1
	}
	return n
}
