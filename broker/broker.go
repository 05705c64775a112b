// Package broker owns the embedded mochi MQTT server, the OCPP listener and
// the bridge between them: it binds the listeners, installs the hooks and
// turns charge points into virtual MQTT clients.
package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/chargemq/chargemq/broker/certs"
	"github.com/chargemq/chargemq/broker/topic"
	"github.com/chargemq/chargemq/broker/web"
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
	// TLS listeners (docs/security.md), next to the plain ones and off by
	// default: OCPPTLSAddr is wss for charge points, security profile 3
	// (a client certificate of TLS.ClientCA required) when a client CA is
	// set, profile 2 (TLS and Basic credentials) otherwise;
	// OCPPTLSBasicAddr serves profile 2 on a second port next to a
	// profile 3 one; MQTTTLSAddr is mqtts, MQTTWSSAddr MQTT over wss, and
	// HTTPTLSAddr the admin API over https.
	OCPPTLSAddr, OCPPTLSBasicAddr, MQTTTLSAddr, MQTTWSSAddr, HTTPTLSAddr string
	// TLS holds the certificates every TLS listener serves (an RSA and an
	// ECDSA one may be given together) and the client CA.
	TLS certs.Options
	// ClientCertIdentity binds a profile 3 certificate to the charge
	// point: IdentityCN (the default: Subject CN equals the id),
	// IdentitySerial (the CN equals the chargePointSerialNumber of its
	// BootNotification) or IdentityNone.
	ClientCertIdentity string
	// ClientCertOrganization, when set, must be one of the certificate's
	// Subject Organization values (OCPP A00.FR.404: the operator's name).
	ClientCertOrganization string

	// OCPP configures the charge point side; Handler and Logger are set by
	// the broker.
	OCPP ocpp.Options
	// MQTT bounds what MQTT clients may hold.
	MQTT MQTTOptions
	// ShutdownTimeout bounds Shutdown as a whole: graceful first, then
	// whatever is left is closed by force (default 10s).
	ShutdownTimeout time.Duration
	// UsersFile is the users file (broker/users): with one, charge points
	// must present a chargepoint user's credentials (OCPP security profile
	// 1) and MQTT clients an mqtt or admin user's, held to its ACL. Empty:
	// everyone is admitted, and a warning says so at start.
	UsersFile string
	// UsernameMustMatchCID binds a charge point's user to its id (OCPP 1.6
	// security whitepaper A00.FR.204; default true). False allows one user
	// for many charge points, as the EMQX set-up does.
	UsernameMustMatchCID bool
	// HTTPAllowRemote lets clients other than loopback use the admin API
	// and the page when no users file is configured (with one, an admin
	// user's credentials are required from everyone).
	HTTPAllowRemote bool
	// PprofAddr serves Go's profiling endpoints (net/http/pprof) on a
	// listener of their own; it must be a loopback address. Empty: off.
	PprofAddr string
	// LogFrames logs every OCPP frame at debug level: direction, cid,
	// type, action, UniqueId, size and the payload, cut.
	LogFrames bool
	// FDReserve is how many file descriptors of the process's limit are
	// kept out of reach of the OCPP and MQTT listeners, so that /healthz,
	// the admin API and the process itself still work when a flood of
	// connections has taken the rest (default 100).
	FDReserve int

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

// MQTTOptions bound what MQTT clients may make the broker hold. Zero
// values take the defaults of DefaultOptions.
type MQTTOptions struct {
	// MaxPacketSize is the largest MQTT packet accepted, in bytes (default
	// 1 MiB, as EMQX); a larger one closes the connection, with DISCONNECT
	// 0x95 (Packet too large) for MQTT 5.
	MaxPacketSize int
	// ConnectTimeout is how long a new connection may take to send CONNECT
	// (default 10s), and bounds the HTTP upgrade of MQTT over WebSocket.
	ConnectTimeout time.Duration
	// MaxSessionExpiry caps how long a disconnected session, with its
	// subscriptions and queued messages, is kept (default 2h, as EMQX).
	MaxSessionExpiry time.Duration
	// MaxQueuedMessages bounds the messages queued for one client: those
	// waiting to be written to a connected client and the QoS 1/2 messages
	// kept for a disconnected session (default 1,000; at most 65,535).
	MaxQueuedMessages int
	// MaxClients bounds the MQTT clients connected at once (default 1,000);
	// beyond it CONNACK "server busy" (0x89; 3.1.1: 0x03 server
	// unavailable). Charge points do not count.
	MaxClients int
}

// DefaultOptions returns the gateway's defaults: the one place they live,
// used by the binary (its configuration starts from them) and by products
// that embed the broker; docs/configuration.md lists the same (a test
// holds them equal).
func DefaultOptions() Options {
	return Options{
		MQTTAddr: ":1883", MQTTWSAddr: ":8083", OCPPAddr: ":33033", HTTPAddr: ":18083",
		OCPP: ocpp.DefaultOptions(),
		MQTT: MQTTOptions{
			MaxPacketSize:     1 << 20,
			ConnectTimeout:    10 * time.Second,
			MaxSessionExpiry:  2 * time.Hour,
			MaxQueuedMessages: 1000,
			MaxClients:        1000,
		},
		ShutdownTimeout:      10 * time.Second,
		FDReserve:            100,
		ClientCertIdentity:   IdentityCN,
		UsernameMustMatchCID: true,
		Mountpoint:           "ocpp/",
		UpstreamTopic:        "cp/${cid}",
		ReplyTopic:           "cp/${cid}/Reply",
		ErrorTopic:           "cp/${cid}/Reply",
		DownstreamTopic:      "cs/${cid}",
		PresenceTopic:        "presence/${cid}",
		UpstreamQoS:          2,
		Checking:             CheckAll,
		SchemaIDPrefix:       "urn:OCPP:1.6:2019:12:",
	}
}

// withDefaults fills the zero fields whose zero has no meaning of its own
// from DefaultOptions.
func (o Options) withDefaults() Options {
	def := DefaultOptions()
	m := &o.MQTT
	if m.MaxPacketSize <= 0 {
		m.MaxPacketSize = def.MQTT.MaxPacketSize
	}
	if m.ConnectTimeout <= 0 {
		m.ConnectTimeout = def.MQTT.ConnectTimeout
	}
	if m.MaxSessionExpiry <= 0 {
		m.MaxSessionExpiry = def.MQTT.MaxSessionExpiry
	}
	if m.MaxQueuedMessages <= 0 {
		m.MaxQueuedMessages = def.MQTT.MaxQueuedMessages
	}
	m.MaxQueuedMessages = min(m.MaxQueuedMessages, math.MaxUint16)
	if m.MaxClients <= 0 {
		m.MaxClients = def.MQTT.MaxClients
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = def.ShutdownTimeout
	}
	if o.FDReserve <= 0 {
		o.FDReserve = def.FDReserve
	}
	if o.SchemaIDPrefix == "" {
		o.SchemaIDPrefix = def.SchemaIDPrefix
	}
	if o.ClientCertIdentity == "" {
		o.ClientCertIdentity = def.ClientCertIdentity
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// noForcedExpiry is mochi's MaximumMessageExpiryInterval, in seconds: so
// long that nothing is ever removed for its age alone (not 0, which mochi
// reads as "expire QoS 2 acknowledgements at once").
const noForcedExpiry = 100 * 365 * 24 * 60 * 60

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

	addrs map[string]net.Addr
	// mqttListeners are closed first at shutdown; loops counts their
	// accept loops and the HTTP servers' Serve goroutines.
	mqttListeners []net.Listener
	mqttConns     mqttConns
	loops         sync.WaitGroup
	// ocppHTTP serve the OCPP listeners, adminHTTP the admin API; the
	// admin API keeps answering (readyz 503) until the very end.
	ocppHTTP, adminHTTP []*http.Server
	budget              *fdBudget
	counts              listenerCounts
	ready               atomic.Bool
	// auth is nil without a users file; acl is the access hook.
	auth *auth
	acl  *access.Hook
	// certs is nil without TLS listeners.
	certs *certs.Store
	// stopWatchers ends the users-file and certificate-expiry watchers.
	stopWatchers context.CancelFunc
	// events is the admin API's event stream; metrics serves /metrics.
	events  *eventHub
	metrics *metrics
	// shutdownOnce makes a second Shutdown (a deferred one after an
	// explicit one) return the first's result instead of closing twice.
	shutdownOnce sync.Once
	shutdownErr  error
}

// capabilities are the bounds mochi is given. Charge points do not pay for
// them: their virtual clients are pooled (bridge). mochi's defaults (8,192
// queued, unlimited packets and sessions) let one client hold the box's
// memory.
func capabilities(o MQTTOptions) *mqtt.Capabilities {
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumClientWritesPending = int32(o.MaxQueuedMessages)
	caps.MaximumInflight = uint16(o.MaxQueuedMessages)
	caps.MaximumPacketSize = uint32(o.MaxPacketSize)
	caps.MaximumSessionExpiryInterval = uint32(o.MaxSessionExpiry / time.Second)
	caps.MaximumClients = int64(o.MaxClients)
	// mochi deletes every retained message older than this (default one
	// day), whatever its own expiry says: a charge point online for more
	// than a day would lose its retained presence. A message's own
	// Message Expiry Interval still applies.
	caps.MaximumMessageExpiryInterval = noForcedExpiry
	return caps
}

// New validates opts and builds a Broker; Start binds and serves.
func New(opts Options) (*Broker, error) {
	opts = opts.withDefaults()
	log := opts.Logger
	t, err := parseTopics(opts)
	if err != nil {
		return nil, err
	}
	mlog := slog.New(newMochiLogHandler(log.Handler())).With("component", "mqtt")
	srv := mqtt.New(&mqtt.Options{Capabilities: capabilities(opts.MQTT), Logger: mlog})

	b := &Broker{opts: opts, log: log, mqtt: srv, addrs: make(map[string]net.Addr)}
	if b.certs, err = checkTLS(opts, true); err != nil {
		return nil, err
	}
	limit := openFileLimit() - int64(opts.FDReserve)
	if openFileLimit() == 0 {
		limit = math.MaxInt64
	}
	b.budget = &fdBudget{limit: max(limit, 1)}
	if err := checkPprofAddr(opts.PprofAddr); err != nil {
		return nil, err
	}
	b.events = newEventHub()
	b.bridge = newBridge(srv, t, opts.UpstreamQoS, log)
	b.bridge.events = b.events
	o := opts.OCPP
	o.Handler = b.bridge
	o.Logger = log
	o.OnFrame = b.onFrame
	if o.Validators, o.Checking, err = validation(opts); err != nil {
		return nil, err
	}
	b.validators = o.Validators
	set := o.Validators[ocpp.OCPP16].(schemaValidator).set
	for _, f := range set.Fallbacks() {
		log.Warn("schema uses a keyword the compiled validator does not implement; gojsonschema checks it (slower)",
			"schema", f.Schema, "file", f.File, "keyword", f.Keyword, "at", f.Pointer)
	}
	b.metrics = newMetrics(b.Stats, b.mqttClientsConnected, func(a string) bool { _, ok := set.Sender(a); return ok }, set.Actions())
	b.bridge.roundTrip = b.metrics.roundTrip
	ao := access.Options{
		Mountpoint:      opts.Mountpoint,
		IsDownstream:    func(name string) bool { _, ok := t.down.Match(name); return ok },
		GatewayListener: gatewayListener,
		OnDenied:        func(string, string) { b.bridge.denied.Add(1) },
	}
	if opts.UsersFile != "" {
		if b.auth, err = newAuth(opts.UsersFile, opts.UsernameMustMatchCID); err != nil {
			return nil, err
		}
		ao.Authenticate = b.auth.mqttClient
		ao.MayPublish = mayPublish
		ao.MaySubscribe = maySubscribe
		ao.OnAuthFailed = func(cl *mqtt.Client, res access.AuthResult) {
			r := refusedMQTTUnauthorized
			if res.RetryAfter > 0 {
				r = refusedMQTTBackoff
			}
			if n := b.counts.refused(r); n <= logFirst || n%logEvery == 0 {
				b.log.Info("mqtt client refused", "reason", res.Reason, "client", cl.ID, "username", string(cl.Properties.Username),
					"remote", cl.Net.Remote, "refused_so_far", n)
			}
		}
	}
	if b.auth != nil || b.certs != nil && b.certs.HasClientCA() {
		o.Authenticate = b.chargePointAuth
	}
	b.ocpp = ocpp.NewServer(o)
	b.bridge.ocpp = b.ocpp

	acl, err := access.New(ao)
	if err != nil {
		return nil, err
	}
	b.acl = acl
	b.bridge.mayRead = func(cl *mqtt.Client, name string) bool { return acl.OnACLCheck(cl, name, false) }
	rt, err := route.New(route.Options{
		Match:           t.down.Match,
		Deliver:         b.bridge.Deliver,
		GatewayListener: gatewayListener,
		Disconnected:    b.bridge.forget,
	})
	if err != nil {
		return nil, err
	}
	for _, h := range []mqtt.Hook{acl, rt, &dropLog{bridge: b.bridge}} {
		if err := srv.AddHook(h, nil); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// Validate checks what New would refuse in opts without building a
// broker: the topic templates, the checking modes, the schema set
// (including json_schema_dir) and the users file. check-config uses it, so a file it passes
// is one serve starts with.
func Validate(opts Options) error {
	if _, err := parseTopics(opts); err != nil {
		return err
	}
	if _, _, err := validation(opts); err != nil {
		return err
	}
	if opts.UsersFile != "" {
		if _, _, err := loadUsers(opts.UsersFile); err != nil {
			return err
		}
	}
	_, err := checkTLS(opts, true)
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
	ctx, cancel := context.WithCancel(context.Background())
	b.stopWatchers = cancel
	watch := func(f func(context.Context)) {
		b.loops.Add(1)
		go func() {
			defer b.loops.Done()
			f(ctx)
		}()
	}
	if b.auth == nil {
		b.log.Warn(warnNoUsers())
	} else {
		b.log.Info("users file loaded", "path", b.auth.path, "users", b.auth.db.Load().Len())
		watch(b.watchUsers)
	}
	if b.certs != nil {
		for _, c := range b.certs.Summary() {
			b.log.Info("certificate loaded", "file", c.File, "subject", c.Subject, "key", c.KeyType, "not_after", c.NotAfter)
		}
		if b.certs.HasClientCA() && b.opts.OCPPTLSAddr != "" {
			b.log.Info("client certificates required on the ocpp-tls listener (security profile 3)",
				"client_ca", b.opts.TLS.ClientCA, "identity", b.opts.ClientCertIdentity, "organization", b.opts.ClientCertOrganization)
		}
		b.warnExpiring(time.Now())
		watch(b.watchExpiry)
	}
	var bound []net.Listener
	bind := func(name, addr string, budgeted bool) (net.Listener, error) {
		if addr == "" {
			return nil, nil
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			for _, l := range bound {
				l.Close()
			}
			b.mqtt.Close()
			return nil, fmt.Errorf("listener %s: %w", name, err)
		}
		bound = append(bound, ln)
		b.addrs[name] = ln.Addr()
		b.log.Info("listening", "listener", name, "addr", ln.Addr().String())
		if !budgeted {
			return ln, nil
		}
		var lim *limitListener
		lim = newLimitListener(ln, b.budget, func() {
			if n := b.counts.refused(refusedFDReserve); n <= 10 || n%1000 == 0 {
				b.log.Warn("connection refused: descriptors left are reserved (fd_reserve)", "listener", name, "refused_so_far", n)
			}
		}, func(err error, delay time.Duration) {
			b.log.Warn("accept failed; retrying", "listener", name, "error", err, "retry_in", delay)
		})
		return lim, nil
	}
	// kind says how a listener is served: MQTT over TCP, MQTT over
	// WebSocket, OCPP or the admin API.
	type kind int
	const (
		mqttTCP kind = iota
		mqttWS
		ocppWS
		admin
		profiling
	)
	type spec struct {
		name, addr string
		kind       kind
		tls        bool
	}
	var served []func()
	for _, l := range []spec{
		{ListenerMQTT, b.opts.MQTTAddr, mqttTCP, false},
		{ListenerMQTTWS, b.opts.MQTTWSAddr, mqttWS, false},
		{ListenerOCPP, b.opts.OCPPAddr, ocppWS, false},
		{ListenerHTTP, b.opts.HTTPAddr, admin, false},
		{ListenerMQTTTLS, b.opts.MQTTTLSAddr, mqttTCP, true},
		{ListenerMQTTWSS, b.opts.MQTTWSSAddr, mqttWS, true},
		{ListenerOCPPTLS, b.opts.OCPPTLSAddr, ocppWS, true},
		{ListenerOCPPTLSBasic, b.opts.OCPPTLSBasicAddr, ocppWS, true},
		{ListenerHTTPTLS, b.opts.HTTPTLSAddr, admin, true},
		{ListenerPprof, b.opts.PprofAddr, profiling, false},
	} {
		// The admin API is outside the descriptor budget: it must answer
		// when a flood has taken the rest.
		ln, err := bind(l.name, l.addr, l.kind != admin && l.kind != profiling)
		if err != nil {
			return err
		}
		if ln == nil {
			continue
		}
		if l.tls {
			cfg, err := b.tlsConfig(l.name)
			if err != nil {
				for _, l := range bound {
					l.Close()
				}
				b.mqtt.Close()
				return fmt.Errorf("listener %s: %w", l.name, err)
			}
			ln = tls.NewListener(ln, cfg)
		}
		// Serving starts once every listener is bound, so a bind error
		// leaves nothing running.
		name := l.name
		switch l.kind {
		case mqttTCP:
			served = append(served, func() {
				b.mqttListeners = append(b.mqttListeners, ln)
				b.serveMQTT(name, ln)
			})
		case mqttWS:
			served = append(served, func() {
				ws := newWSListener(ln, b.opts.MQTT.ConnectTimeout, b.opts.MQTT.MaxPacketSize, b.log, b.httpErrorLog(name))
				b.mqttListeners = append(b.mqttListeners, ws)
				b.serveMQTT(name, ws)
			})
		case ocppWS:
			served = append(served, func() { b.ocppHTTP = append(b.ocppHTTP, b.serveHTTP(name, ln, b.ocpp)) })
		case admin:
			served = append(served, func() { b.adminHTTP = append(b.adminHTTP, b.serveHTTP(name, ln, b.adminHandler())) })
		case profiling:
			served = append(served, func() { b.adminHTTP = append(b.adminHTTP, b.serveHTTP(name, ln, pprofHandler())) })
		}
	}
	for _, serve := range served {
		serve()
	}
	b.ready.Store(true)
	return nil
}

// serveHTTP serves h on ln. Every server has a header timeout, so a
// client that opens a connection and sends half a request is dropped.
func (b *Broker) serveHTTP(name string, ln net.Listener, h http.Handler) *http.Server {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          b.httpErrorLog(name),
	}
	b.loops.Add(1)
	go func() {
		defer b.loops.Done()
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
	mux.Handle("GET /metrics", b.metrics.handler())
	mux.Handle("/api/v1/", b.apiHandler())
	mux.Handle("/", b.adminOnly(web.Handler()))
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

// forceMargin is the part of the shutdown timeout kept for closing by
// force what the graceful part left: at most a second, at least a tenth.
func forceMargin(timeout time.Duration) time.Duration {
	return min(time.Second, timeout/10)
}

// Shutdown stops the broker within Options.ShutdownTimeout (or ctx, if it
// ends first), whatever the peers do. Gracefully first: /readyz turns
// 503; every listener stops accepting; OCPP handshakes in flight finish;
// charge points are closed with 1001 while the MQTT side still runs, so
// their offline presence and the offline errors of their commands are
// published; then MQTT clients are disconnected (v5: 0x8B server shutting
// down). What is left when the graceful part runs out (a charge point
// that never answers the close handshake, an MQTT client that never sent
// CONNECT) is closed by force, and logged as such. mochi is closed last,
// once nothing can reach it. It returns an error only when even the
// forced part could not finish. Calling it again returns the same result.
func (b *Broker) Shutdown(ctx context.Context) error {
	b.shutdownOnce.Do(func() { b.shutdownErr = b.shutdown(ctx) })
	return b.shutdownErr
}

// shutdown is Shutdown's one run; a second Shutdown returns its result.
func (b *Broker) shutdown(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, b.opts.ShutdownTimeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	graceful, cancelGraceful := context.WithDeadline(ctx, deadline.Add(-forceMargin(time.Until(deadline))))
	defer cancelGraceful()
	b.ready.Store(false)

	if b.stopWatchers != nil {
		b.stopWatchers()
	}
	// Stop accepting everywhere but on the admin API. The MQTT accept
	// loops end before anything waits on mochi (its ClientsWg).
	for _, ln := range b.mqttListeners {
		ln.Close()
	}
	for _, srv := range b.ocppHTTP {
		_ = srv.Shutdown(graceful) // waits for handshakes not yet upgraded
		srv.Close()
	}
	var forced []any
	if err := b.ocpp.Shutdown(graceful); err != nil {
		n, err := b.ocpp.Close(ctx)
		forced = append(forced, "charge_points", n)
		if err != nil {
			b.log.Error("shutdown: charge point connections still open after forced close", "error", err)
		}
	}

	// MQTT clients: a DISCONNECT to those mochi knows, then every socket
	// still open (clients that never sent CONNECT) is closed.
	for _, cl := range b.mqtt.Clients.GetAll() {
		if !cl.Closed() && !cl.Net.Inline {
			_ = b.mqtt.DisconnectClient(cl, packets.ErrServerShuttingDown)
		}
	}
	if n := b.mqttConns.close(); n > 0 {
		b.log.Debug("shutdown: closed mqtt connections", "count", n)
	}
	mqttDone := b.mqttConns.wait(ctx.Done())
	if mqttDone {
		b.mqtt.Close() // nothing is left to race with its wait for clients
	} else {
		forced = append(forced, "mqtt", "connections did not end")
		b.log.Error("shutdown: mqtt connections did not end; mochi left open")
	}

	b.events.close() // event streams would keep the admin servers waiting
	for _, srv := range b.adminHTTP {
		_ = srv.Shutdown(graceful)
		srv.Close()
	}
	loopsDone := make(chan struct{})
	go func() { b.loops.Wait(); close(loopsDone) }()
	select {
	case <-loopsDone:
	case <-ctx.Done():
		forced = append(forced, "listeners", "accept loops did not end")
	}
	if len(forced) > 0 {
		b.log.Warn("shutdown: forced what did not end gracefully", forced...)
	}
	if !mqttDone || ctx.Err() != nil {
		return fmt.Errorf("broker: shutdown did not finish within %s", b.opts.ShutdownTimeout)
	}
	return nil
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
	// Refused counts connections refused before they became a charge point
	// or an MQTT client: fd_reserve (the descriptors left are reserved),
	// mqtt_max_clients, mqtt_connect_timeout (no CONNECT in time),
	// mqtt_unauthorized (bad credentials), mqtt_auth_backoff (refused
	// during a failed-login back-off), and the admin API's refusals:
	// admin_unauthorized (401), admin_auth_backoff (429) and admin_remote
	// (403: a remote client without a users file); tls_handshake counts
	// failed TLS handshakes on every TLS listener (an expired or foreign
	// client certificate, a client that offers nothing we accept).
	Refused map[string]uint64 `json:"refused"`
	// MQTTPacketTooLarge counts MQTT connections closed for a packet over
	// mqtt.max_packet_size.
	MQTTPacketTooLarge uint64 `json:"mqtt_packet_too_large"`
	// MQTTDropped counts messages mochi dropped for a subscriber that fell
	// behind (mqtt.max_queued_messages waiting) or a session whose store
	// was full; each is also logged, sampled per subscriber.
	MQTTDropped uint64 `json:"mqtt_dropped"`
	// Goroutines is the process's goroutine count now: what a soak test
	// watches for leaks, and the cost per charge point (docs/BENCHMARKS.md).
	Goroutines int `json:"goroutines"`
}

// refusal names a connection refused by the broker's listeners.
type refusal int

const (
	refusedFDReserve refusal = iota
	refusedMaxClients
	refusedConnectTimeout
	refusedMQTTUnauthorized
	refusedMQTTBackoff
	refusedAdminUnauthorized
	refusedAdminBackoff
	refusedAdminRemote
	refusedTLSHandshake
	numRefusals
)

var refusalNames = [numRefusals]string{"fd_reserve", "mqtt_max_clients", "mqtt_connect_timeout",
	"mqtt_unauthorized", "mqtt_auth_backoff", "admin_unauthorized", "admin_auth_backoff", "admin_remote", "tls_handshake"}

// listenerCounts are the broker's own listener counters.
type listenerCounts struct {
	refusals       [numRefusals]atomic.Uint64
	packetTooLarge atomic.Uint64
}

// refused counts one refusal and returns the count so far.
func (c *listenerCounts) refused(r refusal) uint64 { return c.refusals[r].Add(1) }

// Stats returns a snapshot of the gateway's counters.
func (b *Broker) Stats() Stats {
	return Stats{
		OCPP:          b.ocpp.Stats(),
		GatewayErrors: b.bridge.gatewayErrors.snapshot(),
		Published:     b.bridge.published.Load(),
		PublishFailed: b.bridge.publishFailed.Load(),
		Denied:        b.bridge.denied.Load(),

		ResponseTopicsIgnored: b.bridge.responseIgnored.Load(),
		Refused:               b.counts.snapshot(),
		MQTTPacketTooLarge:    b.counts.packetTooLarge.Load(),
		MQTTDropped: uint64(atomic.LoadInt64(&b.mqtt.Info.MessagesDropped)) +
			uint64(atomic.LoadInt64(&b.mqtt.Info.InflightDropped)),
		Goroutines: runtime.NumGoroutine(),
	}
}

func (c *listenerCounts) snapshot() map[string]uint64 {
	m := make(map[string]uint64, numRefusals)
	for i, n := range refusalNames {
		m[n] = c.refusals[i].Load()
	}
	return m
}
