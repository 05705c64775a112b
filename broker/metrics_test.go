package broker

import (
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/chargemq/chargemq/ocpp"
)

// metricsTestActions is the fake protocol of these tests.
var metricsTestActions = []string{"BootNotification", "Heartbeat", "Reset", "RemoteStartTransaction"}

func metricsTestKnown(a string) bool { return slices.Contains(metricsTestActions, a) }

// metricsTestStats is a Stats in which every counter has a value of its
// own, so a family reading the wrong field shows.
func metricsTestStats() Stats {
	return Stats{
		OCPP: ocpp.Stats{
			Connected: 7,
			Accepted:  11,
			FramesIn: map[string]uint64{"call": 1000, "callresult": 1001, "callerror": 1002, "malformed": 13,
				"binary": 14, "too_large": 15, "late": 16, "unsolicited": 17, "pending_evicted": 18,
				"concurrent_call": 19, "schema_invalid": 20, "before_boot": 21},
			FramesOut: map[string]uint64{"call": 2000, "callresult": 2001, "callerror": 2002},
			Refused: map[string]uint64{"bad_id": 31, "bad_subprotocol": 32, "upgrade_failed": 33, "shutting_down": 34,
				"max_connections": 35, "max_handshakes": 36, "max_connections_per_ip": 37, "unauthorized": 38,
				"auth_backoff": 39, "forbidden": 40, "serial_mismatch": 41, "kicked": 42},
			SchemaFailures: []ocpp.SchemaFailure{
				{Direction: "downstream", Action: "Reset", Code: "PropertyConstraintViolation", Count: 51},
				{Direction: "downstream", Action: "unknown", Code: "NotImplemented", Count: 52},
				{Direction: "upstream", Action: "BootNotification", Code: "OccurenceConstraintViolation", Count: 53},
				{Direction: "upstream", Action: "unknown", Code: "NotImplemented", Count: 54},
				// An action the fake protocol lacks, folded into other.
				{Direction: "upstream", Action: "Invented", Code: "NotImplemented", Count: 55},
			},
			HeldCIDs:  61,
			HeldBytes: 62,
			Disconnects: map[string]uint64{"closed": 71, "replaced": 72, "shutdown": 73, "network_error": 74,
				"slow_consumer": 75, "binary_frame": 76, "frame_too_large": 77, "idle_timeout": 78,
				"heartbeat_timeout": 79, "kicked": 80, "auth_revoked": 81, "auth_failed": 82},
			BytesIn:       91,
			BytesOut:      92,
			Queued:        93,
			Outstanding:   94,
			HistoryBytes:  95,
			HistoryFrames: 96,
		},
		GatewayErrors:         map[string]uint64{"offline": 101, "timeout": 102, "queue_full": 103},
		Published:             111,
		PublishFailed:         112,
		Denied:                113,
		ResponseTopicsIgnored: 114,
		Refused: map[string]uint64{"fd_reserve": 121, "mqtt_max_clients": 122, "mqtt_connect_timeout": 123,
			"mqtt_unauthorized": 124, "mqtt_auth_backoff": 125, "admin_unauthorized": 126, "admin_auth_backoff": 127,
			"admin_remote": 128},
		MQTTPacketTooLarge: 131,
		MQTTDropped:        132,
		Goroutines:         133,
	}
}

// metricsScrape is one scrape of /metrics, parsed.
type metricsScrape map[string]*dto.MetricFamily

// scrapeMetrics GETs m.handler() as Prometheus would and parses the text
// exposition.
func scrapeMetrics(t testing.TB, m *metrics) metricsScrape {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.Header.Set("Accept", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
	rec := httptest.NewRecorder()
	m.handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", rec.Code, rec.Body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// sample returns the metric of family name whose labels are exactly the
// name/value pairs given, or nil.
func (s metricsScrape) sample(name string, labels ...string) *dto.Metric {
	f := s[name]
	if f == nil {
		return nil
	}
next:
	for _, m := range f.GetMetric() {
		if len(m.GetLabel())*2 != len(labels) {
			continue
		}
		for _, l := range m.GetLabel() {
			i := slices.Index(labels, l.GetName())
			if i < 0 || i%2 == 1 || labels[i+1] != l.GetValue() {
				continue next
			}
		}
		return m
	}
	return nil
}

// value returns a counter's or gauge's value; the sample must exist.
func (s metricsScrape) value(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	m := s.sample(name, labels...)
	if m == nil {
		t.Fatalf("no sample %s%v", name, labels)
	}
	switch s[name].GetType() {
	case dto.MetricType_COUNTER:
		return m.GetCounter().GetValue()
	case dto.MetricType_GAUGE:
		return m.GetGauge().GetValue()
	}
	t.Fatalf("%s is a %v", name, s[name].GetType())
	return 0
}

func newTestMetrics(stats Stats) *metrics {
	return newMetrics(func() Stats { return stats }, func() int { return 5 }, metricsTestKnown, metricsTestActions)
}

// TestMetricsFamilies: every family reads its own field of Stats.
func TestMetricsFamilies(t *testing.T) {
	t.Parallel()
	s := scrapeMetrics(t, newTestMetrics(metricsTestStats()))
	type want struct {
		name   string
		labels []string
		value  float64
	}
	l := func(kv ...string) []string { return kv }
	wants := []want{
		{"chargemq_charge_points_connected", nil, 7},
		{"chargemq_mqtt_clients_connected", nil, 5},
		{"chargemq_ocpp_connections_accepted_total", nil, 11},
		{"chargemq_ocpp_connections_refused_total", l("reason", "bad_id"), 31},
		{"chargemq_ocpp_connections_refused_total", l("reason", "serial_mismatch"), 41},
		{"chargemq_ocpp_connections_refused_total", l("reason", "kicked"), 42},
		{"chargemq_mqtt_connections_refused_total", l("reason", "mqtt_max_clients"), 122},
		{"chargemq_mqtt_connections_refused_total", l("reason", "mqtt_connect_timeout"), 123},
		{"chargemq_mqtt_connections_refused_total", l("reason", "mqtt_unauthorized"), 124},
		{"chargemq_mqtt_connections_refused_total", l("reason", "mqtt_auth_backoff"), 125},
		{"chargemq_admin_requests_refused_total", l("reason", "admin_unauthorized"), 126},
		{"chargemq_admin_requests_refused_total", l("reason", "admin_auth_backoff"), 127},
		{"chargemq_admin_requests_refused_total", l("reason", "admin_remote"), 128},
		{"chargemq_connections_refused_fd_reserve_total", nil, 121},
		{"chargemq_ocpp_disconnects_total", l("reason", "closed"), 71},
		{"chargemq_ocpp_disconnects_total", l("reason", "auth_failed"), 82},
		{"chargemq_ocpp_frames_refused_total", l("kind", "malformed"), 13},
		{"chargemq_ocpp_frames_refused_total", l("kind", "before_boot"), 21},
		{"chargemq_ocpp_frames_refused_total", l("kind", "schema_invalid"), 20},
		{"chargemq_ocpp_validation_failures_total", l("direction", "out", "action", "Reset", "code", "PropertyConstraintViolation"), 51},
		{"chargemq_ocpp_validation_failures_total", l("direction", "out", "action", "other", "code", "NotImplemented"), 52},
		{"chargemq_ocpp_validation_failures_total", l("direction", "in", "action", "BootNotification", "code", "OccurenceConstraintViolation"), 53},
		{"chargemq_ocpp_validation_failures_total", l("direction", "in", "action", "other", "code", "NotImplemented"), 54 + 55},
		{"chargemq_gateway_errors_total", l("reason", "offline"), 101},
		{"chargemq_gateway_errors_total", l("reason", "timeout"), 102},
		{"chargemq_gateway_errors_total", l("reason", "queue_full"), 103},
		{"chargemq_gateway_errors_total", l("reason", "duplicate_id"), 0},
		{"chargemq_command_timeouts_total", nil, 102},
		{"chargemq_commands_queued", nil, 93},
		{"chargemq_commands_outstanding", nil, 94},
		{"chargemq_offline_charge_points_holding", nil, 61},
		{"chargemq_commands_held_bytes", nil, 62},
		{"chargemq_ocpp_bytes_total", l("direction", "in"), 91},
		{"chargemq_ocpp_bytes_total", l("direction", "out"), 92},
		{"chargemq_auth_failures_total", l("protocol", "ocpp"), 38 + 40 + 41},
		{"chargemq_auth_failures_total", l("protocol", "mqtt"), 124},
		{"chargemq_auth_failures_total", l("protocol", "admin"), 126},
		{"chargemq_mqtt_messages_dropped_total", nil, 132},
		{"chargemq_mqtt_packet_too_large_total", nil, 131},
		{"chargemq_mqtt_publishes_denied_total", nil, 113},
		{"chargemq_mqtt_response_topics_ignored_total", nil, 114},
		{"chargemq_published_total", nil, 111},
		{"chargemq_publish_failed_total", nil, 112},
		{"chargemq_frame_history_bytes", nil, 95},
		{"chargemq_frame_history_frames", nil, 96},
	}
	for _, w := range wants {
		if got := s.value(t, w.name, w.labels...); got != w.value {
			t.Errorf("%s%v = %v, want %v", w.name, w.labels, got, w.value)
		}
	}
	// Sizes of the label sets: all of each fixed set, nothing else.
	sizes := map[string]int{
		"chargemq_ocpp_connections_refused_total": 12,
		"chargemq_mqtt_connections_refused_total": 4,
		"chargemq_admin_requests_refused_total":   3,
		"chargemq_ocpp_disconnects_total":         12,
		"chargemq_ocpp_frames_refused_total":      9,
		"chargemq_ocpp_validation_failures_total": 4,
		"chargemq_gateway_errors_total":           8,
		"chargemq_ocpp_bytes_total":               2,
		"chargemq_auth_failures_total":            3,
	}
	for name, n := range sizes {
		if got := len(s[name].GetMetric()); got != n {
			t.Errorf("%s: %d samples, want %d", name, got, n)
		}
	}
	for _, kind := range []string{"call", "callresult", "callerror"} {
		if s.sample("chargemq_ocpp_frames_refused_total", "kind", kind) != nil {
			t.Errorf("frames_refused has kind %s, which frames_total counts", kind)
		}
	}
	if s.sample("chargemq_mqtt_connections_refused_total", "reason", "fd_reserve") != nil {
		t.Error("fd_reserve, which counts OCPP connections too, under mqtt_connections_refused")
	}
}

// TestMetricsEveryBrokerRefusalExported: each of the broker's refusal
// reasons is a sample of exactly one family, so a reason added to
// refusalNames cannot go unexported.
func TestMetricsEveryBrokerRefusalExported(t *testing.T) {
	t.Parallel()
	st := metricsTestStats()
	st.Refused = make(map[string]uint64)
	for i, n := range refusalNames {
		st.Refused[n] = uint64(1000 + i)
	}
	s := scrapeMetrics(t, newTestMetrics(st))
	for i, n := range refusalNames {
		var found []string
		for name, f := range s {
			for _, mt := range f.GetMetric() {
				reason := ""
				for _, l := range mt.GetLabel() {
					if l.GetName() == "reason" {
						reason = l.GetValue()
					}
				}
				unlabelled := map[string]string{"fd_reserve": "chargemq_connections_refused_fd_reserve_total",
					"tls_handshake": "chargemq_tls_handshake_failures_total"}
				if reason == n || reason == "" && unlabelled[n] == name {
					found = append(found, name)
					if v := mt.GetCounter().GetValue(); v != float64(1000+i) {
						t.Errorf("%s{reason=%s} = %v, want %d", name, n, v, 1000+i)
					}
				}
			}
		}
		if len(found) != 1 {
			t.Errorf("refusal %s exported in %v, want one family", n, found)
		}
	}
}

// TestMetricsFrames: frame() counts by direction, type and action; an
// action outside the protocol is "other", none is "none".
func TestMetricsFrames(t *testing.T) {
	t.Parallel()
	m := newTestMetrics(metricsTestStats())
	for range 3 {
		m.frame("in", "call", "BootNotification")
	}
	m.frame("out", "callresult", "BootNotification")
	m.frame("out", "call", "Reset")
	m.frame("in", "callerror", "Reset")
	m.frame("in", "call", "Invented")
	m.frame("in", "call", "MadeUp")
	m.frame("in", "callerror", "")
	m.frame("in", "callresult", "")
	m.frame("in", "malformed", "")
	m.frame("in", "malformed", "Heartbeat") // malformed: no action, whatever it says
	m.frame("sideways", "call", "Reset")    // not counted
	m.frame("in", "bogus", "Reset")         // not counted

	s := scrapeMetrics(t, m)
	const fam = "chargemq_ocpp_frames_total"
	for _, w := range []struct {
		dir, typ, action string
		n                float64
	}{
		{"in", "call", "BootNotification", 3},
		{"out", "callresult", "BootNotification", 1},
		{"out", "call", "Reset", 1},
		{"in", "callerror", "Reset", 1},
		{"in", "call", "other", 2},
		{"in", "callerror", "none", 1},
		{"in", "callresult", "none", 1},
		{"in", "malformed", "none", 2},
		{"in", "call", "Heartbeat", 0},
		{"out", "malformed", "none", 0},
		{"out", "callerror", "other", 0},
	} {
		if got := s.value(t, fam, "direction", w.dir, "type", w.typ, "action", w.action); got != w.n {
			t.Errorf("%s{direction=%s,type=%s,action=%s} = %v, want %v", fam, w.dir, w.typ, w.action, got, w.n)
		}
	}
	var total float64
	for _, mt := range s[fam].GetMetric() {
		total += mt.GetCounter().GetValue()
		for _, l := range mt.GetLabel() {
			if l.GetValue() == "Invented" || l.GetValue() == "MadeUp" || l.GetValue() == "sideways" || l.GetValue() == "bogus" {
				t.Errorf("client input as a label value: %v", mt.GetLabel())
			}
		}
	}
	if total != 12 {
		t.Errorf("%d frames counted in all, want 12", int(total))
	}
	// Every known action, other and none, both directions, three types;
	// malformed with none only.
	if got, want := len(s[fam].GetMetric()), (len(metricsTestActions)+2)*2*3+2; got != want {
		t.Errorf("%s: %d label sets, want %d", fam, got, want)
	}
}

// TestMetricsUnknownActionIsOther: no family takes an action name from
// outside the protocol.
func TestMetricsUnknownActionIsOther(t *testing.T) {
	t.Parallel()
	st := metricsTestStats()
	st.OCPP.SchemaFailures = append(st.OCPP.SchemaFailures,
		ocpp.SchemaFailure{Direction: "downstream", Action: "Sneaky\"}", Code: "NotImplemented", Count: 1},
		ocpp.SchemaFailure{Direction: "sideways", Action: "Reset", Code: "Weird", Count: 2})
	m := newTestMetrics(st)
	m.frame("in", "call", "Sneaky\"}")
	m.roundTrip("Sneaky\"}", time.Millisecond)
	m.roundTrip("", time.Millisecond)
	s := scrapeMetrics(t, m)
	if got := s.value(t, "chargemq_ocpp_frames_total", "direction", "in", "type", "call", "action", "other"); got != 1 {
		t.Errorf("frame of an unknown action under other: %v, want 1", got)
	}
	if got := s.sample("chargemq_command_round_trip_seconds", "action", "other").GetHistogram().GetSampleCount(); got != 2 {
		t.Errorf("round trips under other: %d, want 2", got)
	}
	if got := s.value(t, "chargemq_ocpp_validation_failures_total", "direction", "out", "action", "other", "code", "NotImplemented"); got != 52+1 {
		t.Errorf("validation failures of unknown actions: %v, want 53", got)
	}
	if got := s.value(t, "chargemq_ocpp_validation_failures_total", "direction", "other", "action", "Reset", "code", "other"); got != 2 {
		t.Errorf("unknown direction and code: %v, want 2", got)
	}
	for name, f := range s {
		for _, mt := range f.GetMetric() {
			for _, l := range mt.GetLabel() {
				if strings.Contains(l.GetValue(), "Sneaky") || l.GetValue() == "unknown" || l.GetValue() == "Weird" {
					t.Errorf("%s: label %s=%q", name, l.GetName(), l.GetValue())
				}
			}
		}
	}
}

// TestMetricsRoundTrip: an observation lands in the first bucket that
// holds it, under its action.
func TestMetricsRoundTrip(t *testing.T) {
	t.Parallel()
	m := newTestMetrics(metricsTestStats())
	m.roundTrip("Reset", 3*time.Millisecond)
	m.roundTrip("Reset", 700*time.Millisecond)
	m.roundTrip("Reset", time.Minute)
	s := scrapeMetrics(t, m)
	const fam = "chargemq_command_round_trip_seconds"
	if got := s[fam].GetType(); got != dto.MetricType_HISTOGRAM {
		t.Fatalf("%s is a %v", fam, got)
	}
	h := s.sample(fam, "action", "Reset").GetHistogram()
	if h.GetSampleCount() != 3 || math.Abs(h.GetSampleSum()-60.703) > 1e-9 {
		t.Fatalf("count %d sum %v, want 3 and 60.703", h.GetSampleCount(), h.GetSampleSum())
	}
	want := map[float64]uint64{.0005: 0, .001: 0, .0025: 0, .005: 1, .01: 1, .25: 1, .5: 1, 1: 2, 2.5: 2, 10: 2, 30: 2}
	var bounds []float64
	for _, b := range h.GetBucket() {
		bounds = append(bounds, b.GetUpperBound())
		if n, ok := want[b.GetUpperBound()]; ok && b.GetCumulativeCount() != n {
			t.Errorf("le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), n)
		}
	}
	if !slices.Equal(bounds, append(slices.Clone(roundTripBuckets), math.Inf(1))) {
		t.Errorf("buckets %v, want %v", bounds, roundTripBuckets)
	}
	if got := s.sample(fam, "action", "Heartbeat").GetHistogram().GetSampleCount(); got != 0 {
		t.Errorf("Heartbeat: %d observations, want 0", got)
	}
	if n := len(s[fam].GetMetric()); n != len(metricsTestActions)+1 {
		t.Errorf("%s: %d label sets, want every action and other", fam, n)
	}
}

// TestMetricsHotPathDoesNotAllocate: frame and roundTrip cost no
// allocation, whatever the action.
func TestMetricsHotPathDoesNotAllocate(t *testing.T) {
	m := newTestMetrics(metricsTestStats())
	for name, f := range map[string]func(){
		"frame known":     func() { m.frame("in", "call", "Heartbeat") },
		"frame other":     func() { m.frame("out", "callresult", "NoSuchAction") },
		"frame none":      func() { m.frame("in", "callerror", "") },
		"frame malformed": func() { m.frame("in", "malformed", "") },
		"roundTrip known": func() { m.roundTrip("Reset", 42*time.Millisecond) },
		"roundTrip other": func() { m.roundTrip("NoSuchAction", time.Second) },
		"roundTrip +Inf":  func() { m.roundTrip("Reset", time.Hour) },
		"frame bad dir":   func() { m.frame("up", "call", "Reset") },
	} {
		if n := testing.AllocsPerRun(1000, f); n != 0 {
			t.Errorf("%s: %v allocations per call", name, n)
		}
	}
}

// TestMetricsEveryFamilyHasHelpAndSamples: from a broker that has counted
// nothing yet, every family (ours, Go's, the process's) has HELP and at
// least one sample, and ours follow the naming rules.
func TestMetricsEveryFamilyHasHelpAndSamples(t *testing.T) {
	t.Parallel()
	opts := DefaultOptions()
	opts.MQTTAddr, opts.MQTTWSAddr, opts.OCPPAddr, opts.HTTPAddr = "", "", "", ""
	opts.Logger = slog.New(slog.DiscardHandler)
	b, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	v := b.validators[ocpp.OCPP16]
	known := func(a string) bool { _, _, ok := v.Sender(a); return ok }
	m := newMetrics(b.Stats, func() int { return 0 }, known, metricsTestActions)
	s := scrapeMetrics(t, m)
	for _, name := range []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "process_resident_memory_bytes",
		"process_open_fds", "promhttp_metric_handler_errors_total"} {
		if s[name] == nil {
			t.Errorf("%s missing", name)
		}
	}
	var ours int
	for name, f := range s {
		if strings.TrimSpace(f.GetHelp()) == "" {
			t.Errorf("%s has no HELP", name)
		}
		if len(f.GetMetric()) == 0 {
			t.Errorf("%s has no sample", name)
		}
		if !strings.HasPrefix(name, "chargemq_") {
			continue
		}
		ours++
		switch counter := f.GetType() == dto.MetricType_COUNTER; {
		case counter && !strings.HasSuffix(name, "_total"):
			t.Errorf("counter %s does not end in _total", name)
		case !counter && strings.HasSuffix(name, "_total"):
			t.Errorf("%s ends in _total but is a %v", name, f.GetType())
		}
	}
	if ours != 29 {
		t.Errorf("%d chargemq_ families, want 29", ours)
	}
	// The fixed sets come from the ocpp package's snapshot: all there.
	for name, n := range map[string]int{
		"chargemq_ocpp_connections_refused_total": 12,
		"chargemq_ocpp_disconnects_total":         12,
		"chargemq_ocpp_frames_refused_total":      9,
		"chargemq_gateway_errors_total":           8,
		"chargemq_mqtt_connections_refused_total": 4,
		"chargemq_admin_requests_refused_total":   3,
	} {
		if got := len(s[name].GetMetric()); got != n {
			t.Errorf("%s: %d samples from the start, want %d", name, got, n)
		}
	}
}

// TestMetricsStatsOncePerScrape: each scrape calls stats once, and only a
// scrape does.
func TestMetricsStatsOncePerScrape(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	calls, clients := 0, 0
	m := newMetrics(func() Stats { mu.Lock(); calls++; mu.Unlock(); return metricsTestStats() },
		func() int { mu.Lock(); clients++; mu.Unlock(); return 1 }, metricsTestKnown, metricsTestActions)
	m.frame("in", "call", "Heartbeat")
	m.roundTrip("Reset", time.Millisecond)
	for range 3 {
		scrapeMetrics(t, m)
	}
	mu.Lock()
	defer mu.Unlock()
	if calls != 3 || clients != 3 {
		t.Fatalf("3 scrapes called stats %d and mqttClients %d times", calls, clients)
	}
}

// TestMetricsConcurrent: frames counted from many goroutines while
// scrapes run are all counted (run with -race).
func TestMetricsConcurrent(t *testing.T) {
	t.Parallel()
	m := newTestMetrics(metricsTestStats())
	const workers, each = 8, 500
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				m.frame("in", "call", metricsTestActions[(w+i)%len(metricsTestActions)])
				m.roundTrip("Heartbeat", time.Duration(i)*time.Microsecond)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for scraping := true; scraping; {
		select {
		case <-done:
			scraping = false
		default:
			scrapeMetrics(t, m)
		}
	}
	s := scrapeMetrics(t, m)
	var total float64
	for _, a := range metricsTestActions {
		total += s.value(t, "chargemq_ocpp_frames_total", "direction", "in", "type", "call", "action", a)
	}
	if total != workers*each {
		t.Errorf("%v frames counted, want %d", total, workers*each)
	}
	if got := s.sample("chargemq_command_round_trip_seconds", "action", "Heartbeat").GetHistogram().GetSampleCount(); got != workers*each {
		t.Errorf("%d round trips observed, want %d", got, workers*each)
	}
}

// BenchmarkMetricsFrame is the per-frame cost of frame(): one goroutine,
// and all of them on the same few counters.
func BenchmarkMetricsFrame(b *testing.B) {
	m := newTestMetrics(metricsTestStats())
	kinds := []struct{ dir, typ, action string }{
		{"in", "call", "Heartbeat"}, {"out", "callresult", "Heartbeat"}, {"out", "call", "Reset"},
		{"in", "callresult", "Reset"}, {"in", "call", "Invented"}, {"in", "callerror", ""},
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			k := kinds[i%len(kinds)]
			m.frame(k.dir, k.typ, k.action)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for i := 0; pb.Next(); i++ {
				k := kinds[i%len(kinds)]
				m.frame(k.dir, k.typ, k.action)
			}
		})
	})
	// What frame's table saves: resolving the counter per call.
	b.Run("baseline-WithLabelValues", func(b *testing.B) {
		vec := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "x_total", Help: "x"}, []string{"direction", "type", "action"})
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			k := kinds[i%len(kinds)]
			vec.WithLabelValues(k.dir, k.typ, k.action).Inc()
		}
	})
}

// BenchmarkMetricsRoundTrip is the cost of one roundTrip observation.
func BenchmarkMetricsRoundTrip(b *testing.B) {
	m := newTestMetrics(metricsTestStats())
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		m.roundTrip("Reset", time.Duration(i%1000)*time.Millisecond)
	}
}

// BenchmarkMetricsScrape is the cost of one scrape (fake Stats: the
// exposition only).
func BenchmarkMetricsScrape(b *testing.B) {
	m := newTestMetrics(metricsTestStats())
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		m.handler().ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatal(fmt.Sprint(rec.Code))
		}
	}
}
