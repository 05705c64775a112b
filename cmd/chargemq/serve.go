package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/chargemq/chargemq/broker"
	"github.com/chargemq/chargemq/ocpp"
)

// shutdownGrace bounds the graceful part of a shutdown: charge points are
// closed with 1001 and get this long to finish their close handshake.
const shutdownGrace = 10 * time.Second

// serve runs the broker with cfg until ctx is cancelled, then shuts it down
// gracefully.
func serve(ctx context.Context, cfg Config, log *slog.Logger) error {
	b, err := broker.New(brokerOptions(cfg, log))
	if err != nil {
		return err
	}
	if err := b.Start(); err != nil {
		return err
	}
	log.Info("chargemq started")
	<-ctx.Done()
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	return b.Shutdown(sctx)
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
		},
		Mountpoint:      o.Mountpoint,
		UpstreamTopic:   o.Upstream.Topic,
		ReplyTopic:      o.Upstream.ReplyTopic,
		ErrorTopic:      o.Upstream.ErrorTopic,
		DownstreamTopic: o.Dnstream.Topic,
		TopicOverrides:  o.Upstream.TopicOverrideMapping,
		PresenceTopic:   o.PresenceTopic,
		UpstreamQoS:     byte(o.Upstream.QoS),

		Checking:          broker.CheckingMode(o.MessageFormatChecking),
		CheckingOverrides: overrides,
		SchemaIDPrefix:    o.JSONSchemaIDPrefix,
		SchemaDir:         o.JSONSchemaDir,

		Logger: log,
	}
}
