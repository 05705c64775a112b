// Package broker owns the embedded mochi MQTT server, the OCPP listener and
// the bridge between them: it binds the listeners, installs the hooks and
// turns charge points into virtual MQTT clients.
package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/chargemq/chargemq/broker/topic"
	"github.com/chargemq/chargemq/hooks/access"
	"github.com/chargemq/chargemq/hooks/route"
	"github.com/chargemq/chargemq/ocpp"
)

// Listener names, as logged on the "listening" line.
const (
	ListenerMQTT   = "mqtt"
	ListenerMQTTWS = "mqtt-ws"
	ListenerOCPP   = "ocpp"
	ListenerHTTP   = "http"
)

// Options configures a Broker. Empty listener addresses disable that
// listener; port 0 picks a free port (see Addr).
type Options struct {
	MQTTAddr, MQTTWSAddr, OCPPAddr, HTTPAddr string

	// OCPP configures the charge point side; Handler and Logger are set by
	// the broker.
	OCPP ocpp.Options

	// Mountpoint prefixes every topic template (default "ocpp/").
	Mountpoint string
	// Topic templates relative to the mountpoint.
	UpstreamTopic, ReplyTopic, ErrorTopic, DownstreamTopic string
	// TopicOverrides maps an action to the template of its CALL topic.
	TopicOverrides map[string]string
	// PresenceTopic is the template of the retained presence messages.
	PresenceTopic string
	// UpstreamQoS is the QoS of the gateway's publishes.
	UpstreamQoS byte

	// Checking is the schema checking mode; CheckingOverrides change it for
	// charge points whose id matches, first match wins.
	Checking          CheckingMode
	CheckingOverrides []CheckingOverride
	// SchemaIDPrefix names the schema ids (default urn:OCPP:1.6:2019:12:);
	// schemas in SchemaDir replace the embedded ones with the same id.
	SchemaIDPrefix string
	SchemaDir      string

	Logger *slog.Logger
}

// DefaultOptions returns the defaults of WIRE.md.
func DefaultOptions() Options {
	return Options{
		MQTTAddr: ":1883", MQTTWSAddr: ":8083", OCPPAddr: ":33033", HTTPAddr: ":18083",
		Mountpoint:      "ocpp/",
		UpstreamTopic:   "cp/${cid}",
		ReplyTopic:      "cp/${cid}/Reply",
		ErrorTopic:      "cp/${cid}/Reply",
		DownstreamTopic: "cs/${cid}",
		PresenceTopic:   "presence/${cid}",
		UpstreamQoS:     2,
		Checking:        CheckAll,
	}
}

// maxQueuedPerClient bounds each MQTT client's outbound queue; a
// subscriber further behind loses messages. mochi's default is 8192;
// 1024 is Mosquitto's order of magnitude (max_queued_messages 1000).
// Charge points do not pay it: their virtual clients are pooled (bridge).
const maxQueuedPerClient = 1024

// Broker is a running chargemq: the MQTT broker, the OCPP server and the
// HTTP endpoints.
type Broker struct {
	opts   Options
	log    *slog.Logger
	mqtt   *mqtt.Server
	ocpp   *ocpp.Server
	bridge *bridge
	// validators are the schema sets per protocol.
	validators map[ocpp.Protocol]ocpp.Validator

	addrs   map[string]net.Addr
	servers []*http.Server
	// ocppHTTP serves the OCPP listener; shut down first so that no
	// handshake is cut off half-way.
	ocppHTTP *http.Server
	ready    atomic.Bool
}

// New validates opts and builds a Broker; Start binds and serves.
func New(opts Options) (*Broker, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	t, err := parseTopics(opts)
	if err != nil {
		return nil, err
	}
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumClientWritesPending = maxQueuedPerClient
	mlog := slog.New(mochiLogHandler{log.Handler()}).With("component", "mqtt")
	srv := mqtt.New(&mqtt.Options{Capabilities: caps, Logger: mlog})

	b := &Broker{opts: opts, log: log, mqtt: srv, addrs: make(map[string]net.Addr)}
	b.bridge = newBridge(srv, t, opts.UpstreamQoS, log)
	o := opts.OCPP
	o.Handler = b.bridge
	o.Logger = log
	if o.Validators, o.Checking, err = validation(opts); err != nil {
		return nil, err
	}
	b.validators = o.Validators
	b.ocpp = ocpp.NewServer(o)
	b.bridge.ocpp = b.ocpp

	acl, err := access.New(access.Options{
		Mountpoint:      opts.Mountpoint,
		IsDownstream:    func(name string) bool { _, ok := t.down.Match(name); return ok },
		GatewayListener: gatewayListener,
		OnDenied:        func(string, string) { b.bridge.denied.Add(1) },
	})
	if err != nil {
		return nil, err
	}
	b.bridge.mayRead = func(cl *mqtt.Client, name string) bool { return acl.OnACLCheck(cl, name, false) }
	rt, err := route.New(route.Options{
		Match:           t.down.Match,
		Deliver:         b.bridge.Deliver,
		GatewayListener: gatewayListener,
	})
	if err != nil {
		return nil, err
	}
	for _, h := range []mqtt.Hook{acl, rt} {
		if err := srv.AddHook(h, nil); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// Validate checks what New would refuse in opts without building a
// broker: the topic templates, the checking modes and the schema set
// (including json_schema_dir). check-config uses it, so a file it passes
// is one serve starts with.
func Validate(opts Options) error {
	if _, err := parseTopics(opts); err != nil {
		return err
	}
	_, _, err := validation(opts)
	return err
}

// parseTopics parses the templates and refuses a configuration in which the
// gateway's own topics could be taken for commands.
func parseTopics(o Options) (topics, error) {
	t := topics{mountpoint: o.Mountpoint}
	var err error
	parse := func(key, tmpl string) topic.Template {
		if err != nil {
			return topic.Template{}
		}
		var tt topic.Template
		tt, err = topic.Parse(o.Mountpoint, tmpl)
		if err != nil {
			err = fmt.Errorf("%s: %w", key, err)
		}
		return tt
	}
	t.call = parse("ocpp.upstream.topic", o.UpstreamTopic)
	t.reply = parse("ocpp.upstream.reply_topic", o.ReplyTopic)
	t.errors = parse("ocpp.upstream.error_topic", o.ErrorTopic)
	t.presence = parse("ocpp.presence_topic", o.PresenceTopic)
	t.overrides = make(map[string]topic.Template, len(o.TopicOverrides))
	for action, tmpl := range o.TopicOverrides {
		t.overrides[action] = parse("ocpp.upstream.topic_override_mapping."+action, tmpl)
	}
	if err != nil {
		return t, err
	}
	t.down, err = topic.ParseDownstream(o.Mountpoint, o.DownstreamTopic)
	if err != nil {
		return t, fmt.Errorf("ocpp.dnstream.topic: %w", err)
	}
	up := []topic.Template{t.call, t.reply, t.errors, t.presence}
	for _, o := range t.overrides {
		up = append(up, o)
	}
	for _, u := range up {
		if topic.FiltersOverlap(u.Filter(), t.down.Filter()) {
			return t, fmt.Errorf("ocpp.dnstream.topic: %q overlaps upstream topic %q", t.down.String(), u.String())
		}
	}
	return t, nil
}

// Start binds every configured listener, logs each bound address as
// "listening listener=… addr=…", and serves until Shutdown.
func (b *Broker) Start() error {
	if err := b.mqtt.Serve(); err != nil {
		return err
	}
	bind := func(name, addr string) (net.Listener, error) {
		if addr == "" {
			return nil, nil
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("listener %s: %w", name, err)
		}
		b.addrs[name] = ln.Addr()
		b.log.Info("listening", "listener", name, "addr", ln.Addr().String())
		return ln, nil
	}
	fail := func(err error) error {
		b.closeAll()
		return err
	}
	if ln, err := bind(ListenerMQTT, b.opts.MQTTAddr); err != nil {
		return fail(err)
	} else if ln != nil {
		b.serveMQTT(listeners.NewNet(ListenerMQTT, ln))
	}
	if ln, err := bind(ListenerMQTTWS, b.opts.MQTTWSAddr); err != nil {
		return fail(err)
	} else if ln != nil {
		b.serveMQTT(listeners.NewNet(ListenerMQTTWS, newWSListener(ln, b.log)))
	}
	if ln, err := bind(ListenerOCPP, b.opts.OCPPAddr); err != nil {
		return fail(err)
	} else if ln != nil {
		b.ocppHTTP = b.serveHTTP(ListenerOCPP, ln, b.ocpp)
	}
	if ln, err := bind(ListenerHTTP, b.opts.HTTPAddr); err != nil {
		return fail(err)
	} else if ln != nil {
		b.serveHTTP(ListenerHTTP, ln, b.adminHandler())
	}
	b.ready.Store(true)
	return nil
}

func (b *Broker) serveMQTT(l *listeners.Net) {
	_ = b.mqtt.AddListener(l) // ids are unique: one per listener name
	b.mqtt.Listeners.Serve(l.ID(), b.mqtt.EstablishConnection)
}

func (b *Broker) serveHTTP(name string, ln net.Listener, h http.Handler) *http.Server {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(b.log.Handler(), slog.LevelDebug),
	}
	b.servers = append(b.servers, srv)
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			b.log.Error("listener stopped", "listener", name, "error", err)
		}
	}()
	return srv
}

// adminHandler serves the health endpoints.
func (b *Broker) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !b.ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	mux.HandleFunc("GET /api/v1/stats", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(b.Stats())
	})
	return mux
}

// Addr returns the bound address of a listener (ListenerMQTT, …), or nil
// when it is disabled or not started.
func (b *Broker) Addr(listener string) net.Addr { return b.addrs[listener] }

// OCPP returns the OCPP server, for listing sessions.
func (b *Broker) OCPP() *ocpp.Server { return b.ocpp }

// MQTT returns the embedded mochi server, for embedding products that add
// hooks or inline clients.
func (b *Broker) MQTT() *mqtt.Server { return b.mqtt }

// Shutdown stops accepting, closes every charge point with 1001 while the
// MQTT side still runs (so what they leave behind is published), then
// stops the MQTT broker and the HTTP listeners.
func (b *Broker) Shutdown(ctx context.Context) error {
	b.ready.Store(false)
	for _, s := range b.servers {
		s.SetKeepAlivesEnabled(false)
	}
	// Stop accepting charge points and let handshakes in flight finish
	// (net/http forgets a connection once it is upgraded), then close every
	// charge point with 1001 while the MQTT side still runs.
	if b.ocppHTTP != nil {
		_ = b.ocppHTTP.Shutdown(ctx)
	}
	err := b.ocpp.Shutdown(ctx)
	b.closeAll()
	return err
}

func (b *Broker) closeAll() {
	for _, s := range b.servers {
		s.Close()
	}
	// mochi's Close disconnects each listener's clients through
	// Clients.GetByListener, which takes the clients' read lock twice and
	// deadlocks when a client disconnects in between (mochi v2.7.9). Close
	// and remove our listeners first, disconnecting their clients from one
	// copied list, so Close finds none left.
	for _, id := range []string{ListenerMQTT, ListenerMQTTWS} {
		if _, ok := b.mqtt.Listeners.Get(id); ok {
			b.mqtt.Listeners.Close(id, b.disconnectListener)
			b.mqtt.Listeners.Delete(id)
		}
	}
	b.mqtt.Close()
}

// disconnectListener disconnects the MQTT clients of one listener for a
// shutdown.
func (b *Broker) disconnectListener(id string) {
	for _, cl := range b.mqtt.Clients.GetAll() {
		if cl.Net.Listener == id && !cl.Closed() {
			_ = b.mqtt.DisconnectClient(cl, packets.ErrServerShuttingDown)
		}
	}
}

// Stats is what the gateway has counted: mochi's $SYS counts only network
// clients, so the gateway counts charge points and their traffic itself.
type Stats struct {
	OCPP ocpp.Stats `json:"ocpp"`
	// GatewayErrors counts gateway errors published, by reason.
	GatewayErrors map[string]uint64 `json:"gateway_errors"`
	// Published counts messages the gateway published; PublishFailed those
	// mochi refused.
	Published     uint64 `json:"published"`
	PublishFailed uint64 `json:"publish_failed"`
	// Denied counts MQTT publishes refused by the ACL (spoofing attempts).
	Denied uint64 `json:"denied"`
	// ResponseTopicsIgnored counts MQTT 5 Response Topics not honoured.
	ResponseTopicsIgnored uint64 `json:"response_topics_ignored"`
}

// Stats returns a snapshot of the gateway's counters.
func (b *Broker) Stats() Stats {
	return Stats{
		OCPP:          b.ocpp.Stats(),
		GatewayErrors: b.bridge.gatewayErrors.snapshot(),
		Published:     b.bridge.published.Load(),
		PublishFailed: b.bridge.publishFailed.Load(),
		Denied:        b.bridge.denied.Load(),

		ResponseTopicsIgnored: b.bridge.responseIgnored.Load(),
	}
}
