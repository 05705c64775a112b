package broker

import (
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/chargemq/chargemq/ocpp"
)

// metrics holds the broker's Prometheus registry (private, with the Go and
// process collectors), served on /metrics. Two kinds of metrics live in it:
//
//   - Most families are read from Stats at scrape time by statsCollector,
//     which calls Stats once per scrape and emits const metrics: the
//     counters Stats already keeps cost the message path nothing more.
//   - chargemq_ocpp_frames_total and chargemq_command_round_trip_seconds,
//     which Stats does not keep, are live counters and histograms fed by
//     frame and roundTrip, resolved through tables built once.
//
// Every label value comes from a fixed set (protocol actions, our reasons,
// OCPP error codes), never from client input: an action the protocol does
// not define is "other", a frame with no action (a malformed frame, an
// answer whose call is unknown) is "none". Every known label set exists
// from the start, with zeros, so rate() and absent() work before the first
// event. The families (all prefixed chargemq_; counters end in _total):
//
//	family                                  type       labels
//	charge_points_connected                 gauge
//	mqtt_clients_connected                  gauge
//	ocpp_connections_accepted_total         counter
//	ocpp_connections_refused_total          counter    reason (ocpp.Stats.Refused)
//	mqtt_connections_refused_total          counter    reason (mqtt_max_clients, mqtt_connect_timeout,
//	                                                   mqtt_unauthorized, mqtt_auth_backoff)
//	admin_requests_refused_total            counter    reason (admin_unauthorized, admin_auth_backoff,
//	                                                   admin_remote)
//	connections_refused_fd_reserve_total    counter
//	tls_handshake_failures_total            counter
//	ocpp_disconnects_total                  counter    reason (ocpp.Stats.Disconnects)
//	ocpp_frames_total                       counter    direction (in, out), type (call, callresult,
//	                                                   callerror, malformed), action
//	ocpp_frames_refused_total               counter    kind (ocpp.Stats.FramesIn but call, callresult,
//	                                                   callerror)
//	ocpp_validation_failures_total          counter    direction (in, out), action, code
//	gateway_errors_total                    counter    reason (offline, queue_full, timeout,
//	                                                   invalid_payload, malformed, unknown_call,
//	                                                   duplicate_id, too_large)
//	command_timeouts_total                  counter
//	command_round_trip_seconds              histogram  action
//	commands_queued                         gauge
//	commands_outstanding                    gauge
//	offline_charge_points_holding           gauge
//	commands_held_bytes                     gauge
//	ocpp_bytes_total                        counter    direction (in, out)
//	auth_failures_total                     counter    protocol (ocpp, mqtt, admin)
//	mqtt_messages_dropped_total             counter
//	mqtt_packet_too_large_total             counter
//	mqtt_publishes_denied_total             counter
//	mqtt_response_topics_ignored_total      counter
//	published_total                         counter
//	publish_failed_total                    counter
//	frame_history_bytes                     gauge
//	frame_history_frames                    gauge
//
// Besides them: go_* (collectors.NewGoCollector), process_*
// (collectors.NewProcessCollector) and promhttp_metric_handler_errors_total
// (a scrape that failed to gather or encode).
type metrics struct {
	reg *prometheus.Registry
	h   http.Handler

	// frames resolves an action label to its counters; it holds every
	// known action and "" (counted as "none"). other is "other".
	frames map[string]*frameCounters
	other  *frameCounters
	// malformed counts malformed frames by direction: a frame that did not
	// parse has no action.
	malformed [numDirections]prometheus.Counter

	// rtt resolves an action to its round-trip histogram; rttOther is
	// "other".
	rtt      map[string]prometheus.Observer
	rttOther prometheus.Observer
}

// Label values that are not an action name.
const (
	actionOther = "other" // an action the protocol does not define
	actionNone  = "none"  // no action: a malformed frame, an answer to an unknown call
)

// Indexes of a frameCounters.
const (
	dirIn = iota
	dirOut
	numDirections
)

var directionNames = [numDirections]string{ocpp.DirectionIn, ocpp.DirectionOut}

const (
	typCall = iota
	typCallResult
	typCallError
	numFrameTypes
)

// frameTypeNames are the frame types that carry an action, as
// ocpp.FrameRecord.Type spells them; the fourth type is typeMalformed.
var frameTypeNames = [numFrameTypes]string{"call", "callresult", "callerror"}

const typeMalformed = "malformed"

// frameCounters are one action's frame counters by direction and type.
type frameCounters [numDirections][numFrameTypes]prometheus.Counter

// roundTripBuckets span a charge point on the LAN (half a millisecond) to
// the default call timeout (30 s).
var roundTripBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// newMetrics builds the registry. stats is read at scrape time (a
// prometheus.Collector whose Collect calls it once per scrape and emits
// const metrics), so nothing on the message path pays for the counters
// that Stats already keeps; mqttClients likewise. knownAction reports
// whether an OCPP action name is one of the protocol's (label values for
// actions outside it become "other"; nil: those in actions); actions lists
// the known ones, to pre-create label sets.
func newMetrics(stats func() Stats, mqttClients func() int, knownAction func(string) bool, actions []string) *metrics {
	known := make(map[string]bool, len(actions))
	for _, a := range actions {
		if a != "" && (knownAction == nil || knownAction(a)) {
			known[a] = true
		}
	}
	if knownAction == nil {
		knownAction = func(a string) bool { return known[a] }
	}
	labels := make([]string, 0, len(known)+2)
	for a := range known {
		labels = append(labels, a)
	}
	slices.Sort(labels)

	m := &metrics{
		reg:    prometheus.NewRegistry(),
		frames: make(map[string]*frameCounters, len(labels)+1),
		rtt:    make(map[string]prometheus.Observer, len(labels)),
	}
	frames := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "chargemq_ocpp_frames_total",
		Help: "OCPP frames received from (direction in) and sent to (out) charge points, by type (call, callresult, " +
			"callerror; malformed: did not parse) and action (other: not an action of the protocol; none: no action " +
			"known, as for a malformed frame or an answer to an unknown call).",
	}, []string{"direction", "type", "action"})
	rtt := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "chargemq_command_round_trip_seconds",
		Help: "Time from a command accepted from MQTT to the charge point's answer (CALLRESULT or CALLERROR), " +
			"by action (other: not an action of the protocol); commands that got a gateway error instead are not observed.",
		Buckets: roundTripBuckets,
	}, []string{"action"})
	table := func(action string) *frameCounters {
		fc := new(frameCounters)
		for d, dir := range directionNames {
			for t, typ := range frameTypeNames {
				fc[d][t] = frames.WithLabelValues(dir, typ, action)
			}
		}
		return fc
	}
	for _, a := range labels {
		m.frames[a] = table(a)
		m.rtt[a] = rtt.WithLabelValues(a)
	}
	m.frames[""] = table(actionNone)
	m.other = table(actionOther)
	m.rttOther = rtt.WithLabelValues(actionOther)
	for d, dir := range directionNames {
		m.malformed[d] = frames.WithLabelValues(dir, typeMalformed, actionNone)
	}

	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		frames, rtt,
		newStatsCollector(stats, mqttClients, knownAction),
	)
	m.h = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		// A collector's error leaves the other metrics served, and counts
		// in promhttp_metric_handler_errors_total.
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      m.reg,
		// Each scrape takes Stats, which visits every charge point.
		MaxRequestsInFlight: 4,
	})
	return m
}

// frame counts one OCPP frame: dir is "in" or "out", typ
// "call"/"callresult"/"callerror"/"malformed", action possibly ""
// (malformed, callerror answers whose call is unknown). It runs on the hot
// path of every frame: a switch, one map lookup and an atomic add, no
// allocation. A malformed frame counts under action "none" whatever
// action is given; an unknown dir or typ (a bug, never client input) is
// not counted.
func (m *metrics) frame(dir, typ, action string) {
	var d int
	switch dir {
	case ocpp.DirectionIn:
		d = dirIn
	case ocpp.DirectionOut:
		d = dirOut
	default:
		return
	}
	var t int
	switch typ {
	case "call":
		t = typCall
	case "callresult":
		t = typCallResult
	case "callerror":
		t = typCallError
	case typeMalformed:
		m.malformed[d].Inc()
		return
	default:
		return
	}
	fc, ok := m.frames[action]
	if !ok {
		fc = m.other
	}
	fc[d][t].Inc()
}

// roundTrip observes a command's round trip (MQTT command accepted → the
// charge point's answer), by action. Like frame, it does not allocate.
func (m *metrics) roundTrip(action string, d time.Duration) {
	o, ok := m.rtt[action]
	if !ok {
		o = m.rttOther
	}
	o.Observe(d.Seconds())
}

// handler serves /metrics in the format the scraper negotiates (text by
// default), compressed when asked, at most four scrapes at once (503
// beyond).
func (m *metrics) handler() http.Handler { return m.h }

// gatewayReasons are the reasons of gateway errors (ocpp/reason.go), each
// exported from the start.
var gatewayReasons = [...]ocpp.Reason{ocpp.ReasonOffline, ocpp.ReasonQueueFull, ocpp.ReasonTimeout,
	ocpp.ReasonInvalidPayload, ocpp.ReasonMalformed, ocpp.ReasonUnknownCall, ocpp.ReasonDuplicateID, ocpp.ReasonTooLarge}

// validationCodes are the codes a schema failure may carry: the OCPP-J
// codes (ocpp/errors.go) and the 2.x spelling of FormationViolation.
// Another becomes "other".
var validationCodes = map[string]bool{
	string(ocpp.NotImplemented): true, string(ocpp.NotSupported): true, string(ocpp.InternalError): true,
	string(ocpp.ProtocolError): true, string(ocpp.SecurityError): true, string(ocpp.FormationViolation): true,
	string(ocpp.PropertyConstraintViolation): true, string(ocpp.OccurenceConstraintViolation): true,
	string(ocpp.TypeConstraintViolation): true, string(ocpp.GenericError): true,
	string(ocpp.MessageTypeNotSupported): true, "FormatViolation": true,
}

// ocppAuthFailures are the OCPP refusals that count as failed logins
// (chargemq_auth_failures_total{protocol="ocpp"}): credentials or a
// certificate refused. The broker's are its refusals named
// <protocol>_unauthorized (mqtt_unauthorized, admin_unauthorized).
// Refusals during a back-off (auth_backoff, mqtt_auth_backoff,
// admin_auth_backoff) are not: no credential was checked.
var ocppAuthFailures = []string{"unauthorized", "forbidden", "serial_mismatch"}

// Prefixes of the broker's refusal names (refusalNames), which say their
// family; fd_reserve, on the OCPP and MQTT listeners alike, has its own.
const (
	mqttRefusalPrefix  = "mqtt_"
	adminRefusalPrefix = "admin_"
	unauthorizedSuffix = "_unauthorized"
)

// frameKinds are the FramesIn keys that chargemq_ocpp_frames_total counts
// by type; the others are chargemq_ocpp_frames_refused_total's kinds.
var frameKinds = map[string]bool{"call": true, "callresult": true, "callerror": true}

// statsCollector reads Stats once per scrape and emits it as const
// metrics.
type statsCollector struct {
	stats       func() Stats
	mqttClients func() int
	knownAction func(string) bool

	chargePoints, mqttClientsDesc, accepted, ocppRefused, mqttRefused, adminRefused, fdReserve, tlsFailures, disconnects,
	framesRefused, validation, gatewayErrors, timeouts, queued, outstanding, holding, heldBytes,
	bytes, authFailures, dropped, tooLarge, denied, responseIgnored, published, publishFailed,
	historyBytes, historyFrames *prometheus.Desc
}

func newStatsCollector(stats func() Stats, mqttClients func() int, knownAction func(string) bool) *statsCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("chargemq_"+name, help, labels, nil)
	}
	return &statsCollector{
		stats: stats, mqttClients: mqttClients, knownAction: knownAction,

		chargePoints:    d("charge_points_connected", "Charge points connected now."),
		mqttClientsDesc: d("mqtt_clients_connected", "MQTT clients connected now over the network (charge points, which are the gateway's virtual clients, not included)."),
		accepted:        d("ocpp_connections_accepted_total", "OCPP WebSocket upgrades that became a charge point connection."),
		ocppRefused: d("ocpp_connections_refused_total", "Charge point connections refused, by reason: a WebSocket handshake refused "+
			"(bad_id, bad_subprotocol, upgrade_failed, shutting_down, max_connections, max_handshakes, max_connections_per_ip, "+
			"unauthorized, auth_backoff, forbidden, kicked) or, for serial_mismatch, a connection closed after the upgrade "+
			"because its BootNotification did not prove its certificate's serial number.", "reason"),
		mqttRefused: d("mqtt_connections_refused_total", "MQTT connections refused before they became a client, by reason: "+
			"mqtt_max_clients, mqtt_connect_timeout (no CONNECT in time), mqtt_unauthorized (bad credentials), "+
			"mqtt_auth_backoff (during a failed-login back-off).", "reason"),
		adminRefused: d("admin_requests_refused_total", "Admin API requests refused, by reason: admin_unauthorized (401: "+
			"missing or wrong admin credentials), admin_auth_backoff (429: during a failed-login back-off), admin_remote "+
			"(403: a remote client without a users file).", "reason"),
		tlsFailures: d("tls_handshake_failures_total", "TLS handshakes that failed on any TLS listener: an expired, "+
			"unknown or missing client certificate, or a client offering no version or suite accepted. Each is also logged, sampled."),
		fdReserve: d("connections_refused_fd_reserve_total", "TCP connections on the OCPP and MQTT listeners closed at accept "+
			"because the file descriptors left are reserved (fd_reserve) for the admin API and the process."),
		disconnects: d("ocpp_disconnects_total", "Charge point connections ended, by reason (closed, replaced, shutdown, network_error, "+
			"slow_consumer, binary_frame, frame_too_large, idle_timeout, heartbeat_timeout, kicked, auth_revoked, auth_failed).", "reason"),
		framesRefused: d("ocpp_frames_refused_total", "Frames from charge points outside the normal flow, by kind: refused "+
			"(malformed, binary, too_large, before_boot: before the BootNotification that proves a certificate's serial), "+
			"failing their schema (schema_invalid: calls answered with a CALLERROR, answers published with their violations), "+
			"answers published but late or unsolicited, calls sent while another was unanswered (concurrent_call), and "+
			"unanswered calls forgotten to make room (pending_evicted).", "kind"),
		validation: d("ocpp_validation_failures_total", "Payloads that failed their OCPP JSON schema, by direction (in: from charge "+
			"points; out: commands and answers from MQTT, refused with gateway error invalid_payload), action (other: not an "+
			"action of the protocol) and OCPP error code.", "direction", "action", "code"),
		gatewayErrors: d("gateway_errors_total", "Gateway errors published instead of a charge point's answer, by reason (offline, "+
			"queue_full, timeout, invalid_payload, malformed, unknown_call, duplicate_id, too_large).", "reason"),
		timeouts: d("command_timeouts_total", "Commands the charge point did not answer within the call timeout "+
			"(gateway errors with reason timeout)."),
		queued: d("commands_queued", "Commands waiting behind an outstanding one, over all charge points, "+
			"including those held for offline charge points."),
		outstanding: d("commands_outstanding", "Commands sent to a charge point and awaiting its answer (at most one per charge point)."),
		holding:     d("offline_charge_points_holding", "Offline charge points with commands held for their return (bounded by ocpp.dnstream.max_offline_cids)."),
		heldBytes:   d("commands_held_bytes", "Bytes of the commands held for offline charge points (bounded by ocpp.dnstream.max_offline_bytes)."),
		bytes: d("ocpp_bytes_total", "Bytes of OCPP frames received from (in) and sent to (out) charge points, "+
			"WebSocket framing not included.", "direction"),
		authFailures: d("auth_failures_total", "Failed logins, by protocol: ocpp counts the handshakes refused unauthorized "+
			"(missing or wrong credentials) or forbidden (a client certificate or security profile the rules refuse) and the "+
			"connections closed for serial_mismatch; mqtt counts mqtt_unauthorized (a CONNECT with bad credentials); admin "+
			"counts admin_unauthorized (an admin API request without valid admin credentials, a browser's first request "+
			"included). Refusals during a back-off are not counted.", "protocol"),
		dropped: d("mqtt_messages_dropped_total", "Messages dropped for an MQTT subscriber that fell mqtt.max_queued_messages behind "+
			"or a disconnected session whose store was full."),
		tooLarge:        d("mqtt_packet_too_large_total", "MQTT connections closed for a packet over mqtt.max_packet_size."),
		denied:          d("mqtt_publishes_denied_total", "MQTT publishes refused by the ACL (spoofing attempts included)."),
		responseIgnored: d("mqtt_response_topics_ignored_total", "MQTT 5 Response Topics of commands not honoured (not readable by the requester, a filter, under the mountpoint or $SYS)."),
		published: d("published_total", "Messages the gateway published into the MQTT broker (charge point frames, presence, "+
			"gateway errors, MQTT 5 responses)."),
		publishFailed: d("publish_failed_total", "Messages the gateway tried to publish that the MQTT broker refused."),
		historyBytes: d("frame_history_bytes", "Bytes the charge points' frame histories hold, payloads (cut at 1 KiB) and "+
			"per-frame overhead (bounded by ocpp.frame_history_bytes)."),
		historyFrames: d("frame_history_frames", "Frames the charge points' frame histories hold (ocpp.frame_history per charge point, "+
			"kept after a disconnect until they age out)."),
	}
}

func (c *statsCollector) descs() []*prometheus.Desc {
	return []*prometheus.Desc{c.chargePoints, c.mqttClientsDesc, c.accepted, c.ocppRefused, c.mqttRefused, c.adminRefused, c.fdReserve, c.tlsFailures,
		c.disconnects, c.framesRefused, c.validation, c.gatewayErrors, c.timeouts, c.queued, c.outstanding, c.holding,
		c.heldBytes, c.bytes, c.authFailures, c.dropped, c.tooLarge, c.denied, c.responseIgnored, c.published,
		c.publishFailed, c.historyBytes, c.historyFrames}
}

// Describe implements prometheus.Collector.
func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs() {
		ch <- d
	}
}

// Collect implements prometheus.Collector: one call of stats per scrape.
func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	o := &s.OCPP
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	// byKey emits one sample per key of m but those in skip: the ocpp
	// package fills these maps from its fixed sets, zeros included. (The
	// registry sorts what is emitted.)
	byKey := func(d *prometheus.Desc, m map[string]uint64, skip map[string]bool) {
		for k, v := range m {
			if !skip[k] {
				counter(d, v, k)
			}
		}
	}

	gauge(c.chargePoints, float64(o.Connected))
	gauge(c.mqttClientsDesc, float64(c.mqttClients()))
	counter(c.accepted, o.Accepted)
	byKey(c.ocppRefused, o.Refused, nil)
	authFailures := map[string]uint64{"ocpp": 0, "mqtt": 0, "admin": 0}
	for _, n := range ocppAuthFailures {
		authFailures["ocpp"] += o.Refused[n]
	}
	for i, n := range refusalNames {
		v := s.Refused[n]
		switch {
		case refusal(i) == refusedFDReserve:
			counter(c.fdReserve, v)
		case refusal(i) == refusedTLSHandshake:
			counter(c.tlsFailures, v)
		case strings.HasPrefix(n, mqttRefusalPrefix):
			counter(c.mqttRefused, v, n)
		case strings.HasPrefix(n, adminRefusalPrefix):
			counter(c.adminRefused, v, n)
		}
		if p, ok := strings.CutSuffix(n, unauthorizedSuffix); ok {
			authFailures[p] += v
		}
	}
	byKey(c.disconnects, o.Disconnects, nil)
	byKey(c.framesRefused, o.FramesIn, frameKinds)
	c.collectValidation(ch, o.SchemaFailures)

	for _, r := range gatewayReasons {
		counter(c.gatewayErrors, s.GatewayErrors[string(r)], string(r))
	}
	for k, v := range s.GatewayErrors {
		if !slices.Contains(gatewayReasons[:], ocpp.Reason(k)) {
			counter(c.gatewayErrors, v, k) // a reason added to ocpp since: still one of its constants
		}
	}
	counter(c.timeouts, s.GatewayErrors[string(ocpp.ReasonTimeout)])

	gauge(c.queued, float64(o.Queued))
	gauge(c.outstanding, float64(o.Outstanding))
	gauge(c.holding, float64(o.HeldCIDs))
	gauge(c.heldBytes, float64(o.HeldBytes))
	counter(c.bytes, o.BytesIn, ocpp.DirectionIn)
	counter(c.bytes, o.BytesOut, ocpp.DirectionOut)
	for p, v := range authFailures {
		counter(c.authFailures, v, p)
	}
	counter(c.dropped, s.MQTTDropped)
	counter(c.tooLarge, s.MQTTPacketTooLarge)
	counter(c.denied, s.Denied)
	counter(c.responseIgnored, s.ResponseTopicsIgnored)
	counter(c.published, s.Published)
	counter(c.publishFailed, s.PublishFailed)
	gauge(c.historyBytes, float64(o.HistoryBytes))
	gauge(c.historyFrames, float64(o.HistoryFrames))
}

// collectValidation emits the schema failures, their labels bounded:
// upstream is direction in, downstream out; an action the protocol does
// not define (ocpp counts them as "unknown") is other, and so is a code
// outside validationCodes. Failures that fall on the same labels are
// summed. {direction, action="other", code="NotImplemented"}, what an
// invented action gives, always exists, so the family has samples from
// the start.
func (c *statsCollector) collectValidation(ch chan<- prometheus.Metric, failures []ocpp.SchemaFailure) {
	type key struct{ dir, action, code string }
	sums := map[key]uint64{
		{ocpp.DirectionIn, actionOther, string(ocpp.NotImplemented)}:  0,
		{ocpp.DirectionOut, actionOther, string(ocpp.NotImplemented)}: 0,
	}
	for _, f := range failures {
		k := key{dir: actionOther, action: actionOther, code: actionOther}
		switch f.Direction {
		case "upstream":
			k.dir = ocpp.DirectionIn
		case "downstream":
			k.dir = ocpp.DirectionOut
		}
		if f.Action != "" && c.knownAction(f.Action) {
			k.action = f.Action
		}
		if validationCodes[f.Code] {
			k.code = f.Code
		}
		sums[k] += f.Count
	}
	for k, n := range sums {
		ch <- prometheus.MustNewConstMetric(c.validation, prometheus.CounterValue, float64(n), k.dir, k.action, k.code)
	}
}
