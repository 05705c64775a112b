package broker

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/eclipse/paho.golang/paho"

	"github.com/chargemq/chargemq/broker/users"
	"github.com/chargemq/chargemq/ocpp"
)

// The admin API (api.go, events.go, debug.go) through a real broker: real
// charge point and MQTT sockets, real HTTP requests, and the access rule
// on handlers where the remote address must be one a test cannot dial
// from.

// apiDeadline bounds every wait of these tests: generous, since they must
// pass with both cores busy.
const apiDeadline = 20 * time.Second

// apiWait polls cond until it holds or apiDeadline passes.
func apiWait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(apiDeadline)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// apiResult is one answer of the admin API.
type apiResult struct {
	status int
	header http.Header
	body   []byte
}

// apiCall sends one request to the broker's admin listener, with Basic
// credentials when auth is user, password.
func apiCall(t *testing.T, b *Broker, method, path string, auth ...string) apiResult {
	t.Helper()
	return apiCallAt(t, b.Addr(ListenerHTTP), method, path, auth...)
}

func apiCallAt(t *testing.T, addr net.Addr, method, path string, auth ...string) apiResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), apiDeadline)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr.String()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(auth) == 2 {
		req.SetBasicAuth(auth[0], auth[1])
	}
	// A transport of its own, without keep-alive: nothing outlives the call.
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return apiResult{status: resp.StatusCode, header: resp.Header, body: body}
}

// apiServe runs a request with remote address remote through h.
func apiServe(h http.Handler, method, path, remote string, auth ...string) apiResult {
	req := httptest.NewRequest(method, path, nil)
	req.RemoteAddr = remote
	if len(auth) == 2 {
		req.SetBasicAuth(auth[0], auth[1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return apiResult{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
}

// json decodes a JSON answer of status want into v (nil: only checked to
// be JSON).
func (r apiResult) json(t *testing.T, want int, v any) {
	t.Helper()
	if r.status != want {
		t.Fatalf("status %d, want %d: %s", r.status, want, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json: %s", ct, r.body)
	}
	if v == nil {
		var m map[string]any
		v = &m
	}
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("body %s: %v", r.body, err)
	}
}

// apiError checks a JSON error answer and returns its message.
func (r apiResult) apiError(t *testing.T, want int) string {
	t.Helper()
	var e struct {
		Error string `json:"error"`
	}
	r.json(t, want, &e)
	if e.Error == "" {
		t.Fatalf("error answer without a message: %s", r.body)
	}
	return e.Error
}

// apiNext returns the next message on topic, skipping others.
func apiNext(t *testing.T, m *mqttClient, topic string) map[string]any {
	t.Helper()
	deadline := time.After(apiDeadline)
	for {
		select {
		case p := <-m.msgs:
			if p.Topic != topic {
				continue
			}
			var v map[string]any
			if err := json.Unmarshal(p.Payload, &v); err != nil {
				t.Fatalf("payload on %s: %s: %v", topic, p.Payload, err)
			}
			return v
		case <-deadline:
			t.Fatalf("no message on %s within %s", topic, apiDeadline)
		}
	}
}

// apiJSONEq compares JSON text with want, both decoded.
func apiJSONEq(t *testing.T, got []byte, want string) {
	t.Helper()
	var g any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s: %v", got, err)
	}
	jsonEq(t, g, want)
}

// apiPresence waits for cid's next presence message and checks it.
func apiPresence(t *testing.T, m *mqttClient, cid, state, reason string) {
	t.Helper()
	p := apiNext(t, m, "ocpp/presence/"+cid)
	if got, _ := p["reason"].(string); p["state"] != state || got != reason {
		t.Fatalf("presence of %s: %v, want %s %q", cid, p, state, reason)
	}
}

// apiClosed reads from cp until the connection ends and returns the close
// frame the server sent.
func apiClosed(t *testing.T, cp *chargePoint) websocket.CloseError {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), apiDeadline)
	defer cancel()
	for {
		_, _, err := cp.ws.Read(ctx)
		if err == nil {
			continue // commands sent before the close
		}
		var ce websocket.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("connection ended without a close frame: %v", err)
		}
		return ce
	}
}

// apiDial tries a charge point handshake and returns the HTTP answer
// (101 when admitted; the connection is closed by cleanup).
func apiDial(t *testing.T, b *Broker, cid string) (*chargePoint, *http.Response) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), apiDeadline)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, "ws://"+b.Addr(ListenerOCPP).String()+"/ocpp/"+cid,
		&websocket.DialOptions{Subprotocols: []string{"ocpp1.6"}})
	if err != nil {
		if resp == nil {
			t.Fatalf("dial %s: %v", cid, err)
		}
		return nil, resp
	}
	t.Cleanup(func() { ws.CloseNow() })
	return &chargePoint{ws: ws}, resp
}

// apiScene is the scripted scenario: CP1 booted (interval 300) with a
// Reset outstanding and a second one queued behind it, CP2 with an
// answered Heartbeat, and the MQTT client csms on ocpp/#.
type apiScene struct {
	b        *Broker
	sub      *mqttClient
	cp1, cp2 *chargePoint
}

const (
	apiBoot      = `[2,"b1","BootNotification",{"chargePointVendor":"V","chargePointModel":"M"}]`
	apiBootReply = `{"MessageTypeId":3,"UniqueId":"b1","Action":"BootNotification","Payload":{"currentTime":"2026-11-25T18:00:00Z","interval":300,"status":"Accepted"}}`
	apiReset     = `{"MessageTypeId":2,"UniqueId":"r1","Action":"Reset","Payload":{"type":"Soft"}}`
	apiReset2    = `{"MessageTypeId":2,"UniqueId":"r2","Action":"Reset","Payload":{"type":"Hard"}}`
)

func apiScenario(t *testing.T, mutate func(*Options)) *apiScene {
	t.Helper()
	b := startBroker(t, mutate)
	s := &apiScene{b: b, sub: dialMQTT(t, b.Addr(ListenerMQTT), "csms")}
	s.sub.subscribe(t, "ocpp/#")

	s.cp1 = dialCP(t, b, "CP1")
	apiPresence(t, s.sub, "CP1", "online", "")
	s.cp1.send(t, apiBoot)
	apiNext(t, s.sub, "ocpp/cp/CP1")
	s.sub.publish(t, "ocpp/cs/CP1", apiBootReply, 1, false)
	if f := s.cp1.recv(t); f[0] != float64(3) || f[1] != "b1" {
		t.Fatalf("boot answer %v", f)
	}

	s.cp2 = dialCP(t, b, "CP2")
	apiPresence(t, s.sub, "CP2", "online", "")
	s.cp2.send(t, `[2,"h1","Heartbeat",{}]`)
	apiNext(t, s.sub, "ocpp/cp/CP2")
	s.sub.publish(t, "ocpp/cs/CP2", `{"MessageTypeId":3,"UniqueId":"h1","Payload":{"currentTime":"2026-11-25T18:00:01Z"}}`, 1, false)
	if f := s.cp2.recv(t); f[0] != float64(3) || f[1] != "h1" {
		t.Fatalf("heartbeat answer %v", f)
	}

	s.sub.publish(t, "ocpp/cs/CP1", apiReset, 1, false)
	if f := s.cp1.recv(t); f[0] != float64(2) || f[1] != "r1" || f[2] != "Reset" {
		t.Fatalf("command %v, want Reset r1", f)
	}
	s.sub.publish(t, "ocpp/cs/CP1", apiReset2, 1, false) // waits behind r1
	apiWait(t, "the second Reset queued", func() bool {
		d, ok := b.Client("CP1")
		return ok && d.QueueDepth == 1
	})
	return s
}

// TestAPIClients holds GET /api/v1/clients after the scenario: both charge
// points sorted by id with protocol, remote, frame counts, the
// outstanding command and the queue; ?q= filters, ?limit= and ?offset=
// page (total counts every match), and bad numbers get a JSON 400.
func TestAPIClients(t *testing.T) {
	t.Parallel()
	s := apiScenario(t, nil)

	var list ClientList
	apiCall(t, s.b, "GET", "/api/v1/clients").json(t, http.StatusOK, &list)
	if list.Total != 2 || list.Offset != 0 || list.Limit != DefaultClientsLimit || len(list.Clients) != 2 {
		t.Fatalf("list %+v", list)
	}
	cp1, cp2 := list.Clients[0], list.Clients[1]
	if cp1.CID != "CP1" || cp2.CID != "CP2" {
		t.Fatalf("order %s, %s; want CP1, CP2", cp1.CID, cp2.CID)
	}
	for _, c := range list.Clients {
		if host, _, err := net.SplitHostPort(c.Remote); err != nil || host != "127.0.0.1" {
			t.Errorf("%s: remote %q", c.CID, c.Remote)
		}
		if c.Protocol != ocpp.OCPP16 || c.ConnectedAt.IsZero() || c.LastSeen.Before(c.ConnectedAt) || c.SecurityProfile != 1 {
			t.Errorf("%s: %+v", c.CID, c)
		}
	}
	if want := (ocpp.FrameCounts{Call: 1}); cp1.FramesIn != want || cp2.FramesIn != want {
		t.Errorf("frames_in %+v, %+v; want one call each", cp1.FramesIn, cp2.FramesIn)
	}
	if cp1.FramesOut != (ocpp.FrameCounts{Call: 1, CallResult: 1}) || cp2.FramesOut != (ocpp.FrameCounts{CallResult: 1}) {
		t.Errorf("frames_out %+v, %+v", cp1.FramesOut, cp2.FramesOut)
	}
	if o := cp1.Outstanding; o == nil || o.Action != "Reset" || o.UniqueID != "r1" || o.SentAt.IsZero() {
		t.Errorf("CP1 outstanding %+v, want Reset r1", o)
	}
	if cp1.QueueDepth != 1 || cp1.Held != 0 || cp2.Outstanding != nil || cp2.QueueDepth != 0 {
		t.Errorf("CP1 queue %d held %d, CP2 outstanding %+v queue %d", cp1.QueueDepth, cp1.Held, cp2.Outstanding, cp2.QueueDepth)
	}

	// The wire names, as docs/operations.md gives them.
	var raw struct {
		Clients []map[string]json.RawMessage `json:"clients"`
	}
	apiCall(t, s.b, "GET", "/api/v1/clients").json(t, http.StatusOK, &raw)
	for _, k := range []string{"cid", "protocol", "remote", "connected_at", "security_profile", "last_seen",
		"queue_depth", "held", "outstanding", "frames_in", "frames_out"} {
		if _, ok := raw.Clients[0][k]; !ok {
			t.Errorf("client without %q: %v", k, raw.Clients[0])
		}
	}
	apiJSONEq(t, raw.Clients[0]["frames_out"], `{"call":1,"callresult":1,"callerror":0}`)
	apiJSONEq(t, raw.Clients[1]["outstanding"], `null`)

	for _, tc := range []struct {
		name, query   string
		total         int
		offset, limit int
		cids          []string
	}{
		{"filter", "?q=P2", 1, 0, DefaultClientsLimit, []string{"CP2"}},
		{"filter matching none", "?q=nobody", 0, 0, DefaultClientsLimit, []string{}},
		{"second page", "?limit=1&offset=1", 2, 1, 1, []string{"CP2"}},
		{"first page", "?limit=1", 2, 0, 1, []string{"CP1"}},
		{"offset past the end", "?offset=5", 2, 5, DefaultClientsLimit, []string{}},
		{"limit capped", "?limit=20000", 2, 0, MaxClientsLimit, []string{"CP1", "CP2"}},
		{"filter and page", "?q=CP&offset=1&limit=5", 2, 1, 5, []string{"CP2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var l ClientList
			r := apiCall(t, s.b, "GET", "/api/v1/clients"+tc.query)
			r.json(t, http.StatusOK, &l)
			cids := []string{}
			for _, c := range l.Clients {
				cids = append(cids, c.CID)
			}
			if l.Total != tc.total || l.Offset != tc.offset || l.Limit != tc.limit || fmt.Sprint(cids) != fmt.Sprint(tc.cids) {
				t.Fatalf("got total %d offset %d limit %d %v, want %d %d %d %v", l.Total, l.Offset, l.Limit, cids,
					tc.total, tc.offset, tc.limit, tc.cids)
			}
			if !bytes.Contains(r.body, []byte(`"clients":[`)) {
				t.Fatalf("clients is not an array: %s", r.body)
			}
		})
	}
	for _, q := range []string{"?limit=x", "?offset=x", "?offset=-1", "?limit=-5", "?limit=1.5"} {
		t.Run("bad "+q, func(t *testing.T) {
			msg := apiCall(t, s.b, "GET", "/api/v1/clients"+q).apiError(t, http.StatusBadRequest)
			if !strings.Contains(msg, "non-negative integer") {
				t.Fatalf("error %q", msg)
			}
		})
	}

	// Charge points are not MQTT clients.
	var mq MQTTClientList
	apiCall(t, s.b, "GET", "/api/v1/mqtt/clients").json(t, http.StatusOK, &mq)
	if mq.Total != 1 || len(mq.Clients) != 1 || mq.Clients[0].ID != "csms" {
		t.Fatalf("mqtt clients %+v, want csms alone", mq)
	}
}

// TestAPIClientDetail holds GET /api/v1/clients/{cid} (the heartbeat
// interval the BootNotification answer set, and the frames both ways with
// payloads), its 404, and GET /api/v1/clients/{cid}/frames.
func TestAPIClientDetail(t *testing.T) {
	t.Parallel()
	s := apiScenario(t, nil)

	var d ocpp.ClientDetail
	apiCall(t, s.b, "GET", "/api/v1/clients/CP1").json(t, http.StatusOK, &d)
	if d.CID != "CP1" || d.HeartbeatInterval != 300 {
		t.Fatalf("CP1: cid %q heartbeat_interval_seconds %v, want 300", d.CID, d.HeartbeatInterval)
	}
	if o := d.Outstanding; o == nil || o.UniqueID != "r1" || d.QueueDepth != 1 {
		t.Fatalf("CP1: outstanding %+v queue %d", o, d.QueueDepth)
	}
	want := []struct {
		dir, typ, action, id, payload string
	}{
		{ocpp.DirectionIn, "call", "BootNotification", "b1", `{"chargePointVendor":"V","chargePointModel":"M"}`},
		{ocpp.DirectionOut, "callresult", "", "b1", `{"currentTime":"2026-11-25T18:00:00Z","interval":300,"status":"Accepted"}`},
		{ocpp.DirectionOut, "call", "Reset", "r1", `{"type":"Soft"}`},
	}
	checkFrames := func(t *testing.T, frames []ocpp.FrameRecord) {
		t.Helper()
		if len(frames) != len(want) {
			t.Fatalf("%d frames, want %d: %+v", len(frames), len(want), frames)
		}
		for i, w := range want {
			f := frames[i]
			if f.Direction != w.dir || f.Type != w.typ || f.UniqueID != w.id || w.action != "" && f.Action != w.action ||
				f.Size <= len(w.payload) || f.Time.IsZero() || f.Truncated {
				t.Errorf("frame %d: %+v, want %s %s %s %s", i, f, w.dir, w.typ, w.action, w.id)
			}
			var got any
			if err := json.Unmarshal([]byte(f.Payload), &got); err != nil {
				t.Errorf("frame %d payload %q: %v", i, f.Payload, err)
				continue
			}
			jsonEq(t, got, w.payload)
		}
		for i := 1; i < len(frames); i++ {
			if frames[i].Time.Before(frames[i-1].Time) {
				t.Errorf("frames not oldest first: %+v", frames)
			}
		}
	}
	checkFrames(t, d.Frames)

	var fr struct {
		CID    string             `json:"cid"`
		Frames []ocpp.FrameRecord `json:"frames"`
	}
	apiCall(t, s.b, "GET", "/api/v1/clients/CP1/frames").json(t, http.StatusOK, &fr)
	if fr.CID != "CP1" {
		t.Fatalf("frames of %q", fr.CID)
	}
	checkFrames(t, fr.Frames)

	var d2 ocpp.ClientDetail
	apiCall(t, s.b, "GET", "/api/v1/clients/CP2").json(t, http.StatusOK, &d2)
	if d2.HeartbeatInterval != ocpp.DefaultOptions().HeartbeatInterval.Seconds() || len(d2.Frames) != 2 ||
		d2.Frames[0].Action != "Heartbeat" || d2.Frames[0].Payload != "{}" {
		t.Fatalf("CP2: %+v", d2)
	}

	if msg := apiCall(t, s.b, "GET", "/api/v1/clients/NOPE").apiError(t, http.StatusNotFound); !strings.Contains(msg, "NOPE") {
		t.Fatalf("404 message %q", msg)
	}
	r := apiCall(t, s.b, "GET", "/api/v1/clients/NOPE/frames")
	r.json(t, http.StatusOK, nil)
	apiJSONEq(t, r.body, `{"cid":"NOPE","frames":[]}`)
	apiCall(t, s.b, "GET", "/api/v1/nothing-here").apiError(t, http.StatusNotFound)
}

// TestAPIFrameHistoryBounds: the API shows at most ocpp.frame_history
// frames per charge point, the newest; with history off, none (and the
// lists are empty arrays, not null).
func TestAPIFrameHistoryBounds(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		history int
		want    []string
	}{
		{3, []string{"h3", "h4", "h5"}},
		{-1, []string{}}, // the broker's "off" (config 0)
	} {
		t.Run(fmt.Sprint("frame_history=", tc.history), func(t *testing.T) {
			t.Parallel()
			b := startBroker(t, func(o *Options) { o.OCPP.FrameHistory = tc.history })
			sub := dialMQTT(t, b.Addr(ListenerMQTT), "csms")
			sub.subscribe(t, "ocpp/cp/#")
			cp := dialCP(t, b, "CP1")
			for i := 1; i <= 5; i++ {
				cp.send(t, fmt.Sprintf(`[2,"h%d","Heartbeat",{}]`, i))
				apiNext(t, sub, "ocpp/cp/CP1") // recorded before it is published
			}
			var d ocpp.ClientDetail
			r := apiCall(t, b, "GET", "/api/v1/clients/CP1")
			r.json(t, http.StatusOK, &d)
			ids := []string{}
			for _, f := range d.Frames {
				ids = append(ids, f.UniqueID)
			}
			if fmt.Sprint(ids) != fmt.Sprint(tc.want) || !bytes.Contains(r.body, []byte(`"frames":[`)) {
				t.Fatalf("frames %v, want %v: %s", ids, tc.want, r.body)
			}
			if d.FramesIn.Call != 5 {
				t.Fatalf("frames_in %+v: the counts do not depend on the history", d.FramesIn)
			}
		})
	}
}

// TestAPIKick holds DELETE /api/v1/clients/{cid}: close 1000 "kicked",
// the retained presence offline/kicked, 404 once gone, the history kept
// after the disconnect, ?block= refusing reconnects with 403 and
// Retry-After until it runs out, bad ?block= values a 400 that kicks
// nobody; and then the counters of the whole run.
func TestAPIKick(t *testing.T) {
	t.Parallel()
	s := apiScenario(t, nil)
	b := s.b

	r := apiCall(t, b, "DELETE", "/api/v1/clients/CP1")
	r.json(t, http.StatusOK, nil)
	apiJSONEq(t, r.body, `{"kicked":"CP1"}`)
	if ce := apiClosed(t, s.cp1); ce.Code != websocket.StatusNormalClosure || ce.Reason != "kicked" {
		t.Fatalf("close %d %q, want 1000 kicked", ce.Code, ce.Reason)
	}
	apiPresence(t, s.sub, "CP1", "offline", "kicked")
	late := dialMQTT(t, b.Addr(ListenerMQTT), "late")
	late.subscribe(t, "ocpp/presence/CP1")
	apiPresence(t, late, "CP1", "offline", "kicked") // the retained one

	// Gone: 404, but its frames stay readable.
	apiCall(t, b, "DELETE", "/api/v1/clients/CP1").apiError(t, http.StatusNotFound)
	apiCall(t, b, "GET", "/api/v1/clients/CP1").apiError(t, http.StatusNotFound)
	var fr struct {
		Frames []ocpp.FrameRecord `json:"frames"`
	}
	apiCall(t, b, "GET", "/api/v1/clients/CP1/frames").json(t, http.StatusOK, &fr)
	if len(fr.Frames) < 3 || fr.Frames[0].Action != "BootNotification" {
		t.Fatalf("frames after the kick: %+v", fr.Frames)
	}

	// Without a block the charger comes straight back.
	cp1 := dialCP(t, b, "CP1")
	apiPresence(t, s.sub, "CP1", "online", "")

	// Bad blocks are refused before anything is done.
	for _, v := range []string{"bogus", "-1s", "25h", "10"} {
		msg := apiCall(t, b, "DELETE", "/api/v1/clients/CP1?block="+v).apiError(t, http.StatusBadRequest)
		if !strings.Contains(msg, "block must be a duration") {
			t.Fatalf("block=%s: %q", v, msg)
		}
	}
	if _, ok := b.Client("CP1"); !ok {
		t.Fatal("a refused kick closed the charge point")
	}

	// With a block: reconnects get 403 with Retry-After. 30s, so that it
	// cannot run out before the reconnect on a loaded machine.
	before := time.Now()
	var kr KickResult
	apiCall(t, b, "DELETE", "/api/v1/clients/CP1?block=30s").json(t, http.StatusOK, &kr)
	if kr.Kicked != "CP1" || kr.BlockedUntil == nil || kr.BlockedUntil.Before(before.Add(30*time.Second)) ||
		kr.BlockedUntil.After(time.Now().Add(30*time.Second)) {
		t.Fatalf("kick with block: %+v (asked at %s)", kr, before)
	}
	if ce := apiClosed(t, cp1); ce.Code != websocket.StatusNormalClosure || ce.Reason != "kicked" {
		t.Fatalf("close %d %q, want 1000 kicked", ce.Code, ce.Reason)
	}
	apiPresence(t, s.sub, "CP1", "offline", "kicked")
	_, resp := apiDial(t, b, "CP1")
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("reconnect during the block: %d, want 403", resp.StatusCode)
	}
	if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 30 {
		t.Fatalf("Retry-After %q, want 1..30", resp.Header.Get("Retry-After"))
	}
	if n := b.Stats().OCPP.Refused["kicked"]; n != 1 {
		t.Fatalf("refused kicked %d, want 1", n)
	}
	// A kick of a blocked, offline charge point is a 404.
	apiCall(t, b, "DELETE", "/api/v1/clients/CP1?block=1s").apiError(t, http.StatusNotFound)

	// A short block runs out: the charger is admitted again.
	apiCall(t, b, "DELETE", "/api/v1/clients/CP2?block=1s").json(t, http.StatusOK, nil)
	if ce := apiClosed(t, s.cp2); ce.Reason != "kicked" {
		t.Fatalf("CP2 close %q", ce.Reason)
	}
	apiPresence(t, s.sub, "CP2", "offline", "kicked")
	apiWait(t, "CP2 admitted once its block ran out", func() bool {
		cp, resp := apiDial(t, b, "CP2")
		if cp == nil && resp.StatusCode != http.StatusForbidden {
			t.Fatalf("reconnect of CP2: %d, want 403 or 101", resp.StatusCode)
		}
		return cp != nil
	})
	apiPresence(t, s.sub, "CP2", "online", "")

	// The counters of the run: CP1 twice and CP2 twice admitted, three
	// kicks, and traffic both ways.
	st := b.Stats()
	if st.OCPP.Accepted != 4 || st.OCPP.Disconnects["kicked"] != 3 || st.OCPP.BytesIn == 0 || st.OCPP.BytesOut == 0 ||
		st.OCPP.Connected != 1 {
		t.Fatalf("stats: accepted %d disconnects %v bytes in %d out %d connected %d", st.OCPP.Accepted,
			st.OCPP.Disconnects, st.OCPP.BytesIn, st.OCPP.BytesOut, st.OCPP.Connected)
	}
	var over Stats
	apiCall(t, b, "GET", "/api/v1/stats").json(t, http.StatusOK, &over)
	if over.OCPP.Accepted != st.OCPP.Accepted || over.OCPP.Disconnects["kicked"] != 3 || over.OCPP.BytesIn < st.OCPP.BytesIn {
		t.Fatalf("/api/v1/stats: %+v", over.OCPP)
	}
}

// apiUsers writes a users file: admin ops, mqtt user csms, charge point
// CP1. Passwords are apiPassword(name).
func apiUsers(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "users.yaml")
	for _, u := range []users.User{
		{Name: "ops", Role: users.RoleAdmin},
		{Name: "csms", Role: users.RoleMQTT, Pub: []string{"ocpp/cs/#"}, Sub: []string{"ocpp/#"}},
		{Name: "CP1", Role: users.RoleChargePoint},
	} {
		if _, err := users.AddUser(path, u, apiPassword(u.Name), 4); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

func apiPassword(name string) string { return name + "-secret-0123456789" }

// TestAPIMQTTClients holds GET /api/v1/mqtt/clients with a users file (id,
// username, remote, listener, protocol version, subscriptions; charge
// points not listed) and DELETE /api/v1/mqtt/clients/{id}: MQTT 5 sees
// DISCONNECT 0x98, and then 404.
func TestAPIMQTTClients(t *testing.T) {
	t.Parallel()
	b := startBroker(t, func(o *Options) { o.UsersFile = apiUsers(t) })
	admin := []string{"ops", apiPassword("ops")}

	ws, code, err := dialBasic(b, "CP1", "CP1", apiPassword("CP1"))
	if err != nil {
		t.Fatalf("charge point: %d %v", code, err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	gone := make(chan *paho.Disconnect, 1)
	c, ack := connectV5(t, b.Addr(ListenerMQTT), &paho.Connect{ClientID: "csms-1", CleanStart: true, KeepAlive: 30,
		Username: "csms", UsernameFlag: true, Password: []byte(apiPassword("csms")), PasswordFlag: true},
		paho.ClientConfig{OnServerDisconnect: func(d *paho.Disconnect) { gone <- d }})
	if ack.ReasonCode != 0 {
		t.Fatalf("CONNACK %#x", ack.ReasonCode)
	}
	ctx, cancel := context.WithTimeout(context.Background(), apiDeadline)
	defer cancel()
	if sa, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "ocpp/#", QoS: 1}}}); err != nil || sa.Reasons[0] != 1 {
		t.Fatalf("subscribe: %v %v", sa, err)
	}
	apiWait(t, "charge point connected", func() bool { return b.Stats().OCPP.Connected == 1 })

	var list MQTTClientList
	apiCall(t, b, "GET", "/api/v1/mqtt/clients", admin...).json(t, http.StatusOK, &list)
	if list.Total != 1 || len(list.Clients) != 1 {
		t.Fatalf("mqtt clients %+v, want csms-1 alone", list)
	}
	m := list.Clients[0]
	host, _, _ := net.SplitHostPort(m.Remote)
	if m.ID != "csms-1" || m.Username != "csms" || host != "127.0.0.1" || m.Listener != ListenerMQTT ||
		m.ProtocolVersion != 5 || fmt.Sprint(m.Subscriptions) != "[ocpp/#]" || !m.Connected {
		t.Fatalf("mqtt client %+v", m)
	}
	// inflight counts QoS 1 deliveries not yet acknowledged (the retained
	// presence may still be one): only the field is held.
	if r := apiCall(t, b, "GET", "/api/v1/mqtt/clients", admin...); !bytes.Contains(r.body, []byte(`"inflight":`)) {
		t.Fatalf("no inflight: %s", r.body)
	}

	apiCall(t, b, "DELETE", "/api/v1/mqtt/clients/CP1", admin...).apiError(t, http.StatusNotFound)
	apiCall(t, b, "DELETE", "/api/v1/mqtt/clients/nobody", admin...).apiError(t, http.StatusNotFound)
	r := apiCall(t, b, "DELETE", "/api/v1/mqtt/clients/csms-1", admin...)
	r.json(t, http.StatusOK, nil)
	apiJSONEq(t, r.body, `{"kicked":"csms-1"}`)
	select {
	case d := <-gone:
		if d.ReasonCode != 0x98 {
			t.Fatalf("DISCONNECT %#x, want 0x98 (administrative action)", d.ReasonCode)
		}
	case <-time.After(apiDeadline):
		t.Fatal("no DISCONNECT after the kick")
	}
	apiWait(t, "the kicked client gone from the list", func() bool {
		var l MQTTClientList
		apiCall(t, b, "GET", "/api/v1/mqtt/clients", admin...).json(t, http.StatusOK, &l)
		return len(l.Clients) == 0 || !l.Clients[0].Connected
	})
	apiCall(t, b, "DELETE", "/api/v1/mqtt/clients/csms-1", admin...).apiError(t, http.StatusNotFound)
}

// TestAPIMQTTClientVersions: an MQTT 3.1.1 client is listed with
// protocol_version 4 next to a v5 one, sorted by id, and a kick closes
// its connection (3.1.1 has no server DISCONNECT).
func TestAPIMQTTClientVersions(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	dialMQTT(t, b.Addr(ListenerMQTT), "b-v5")
	conn, rc := rawConnect(t, b.Addr(ListenerMQTT), "a-v311")
	if rc != 0 {
		t.Fatalf("CONNACK %d", rc)
	}
	var list MQTTClientList
	apiCall(t, b, "GET", "/api/v1/mqtt/clients").json(t, http.StatusOK, &list)
	if list.Total != 2 || list.Clients[0].ID != "a-v311" || list.Clients[0].ProtocolVersion != 4 ||
		list.Clients[1].ID != "b-v5" || list.Clients[1].ProtocolVersion != 5 || list.Clients[0].Username != "" {
		t.Fatalf("mqtt clients %+v", list)
	}
	if !bytes.Contains(apiCall(t, b, "GET", "/api/v1/mqtt/clients").body, []byte(`"subscriptions":[]`)) {
		t.Fatal("a client without subscriptions should list an empty array")
	}
	apiCall(t, b, "DELETE", "/api/v1/mqtt/clients/a-v311").json(t, http.StatusOK, nil)
	waitClosed(t, conn, "kicked 3.1.1 client")
}

// apiEvent is one Server-Sent Event as read off the stream.
type apiEvent struct {
	name string
	data string
	ev   Event
}

// apiStream reads an event stream in a goroutine of its own.
type apiStream struct {
	events chan apiEvent
	end    chan error // the reader's last error: io.EOF when the server ended the stream
	cancel context.CancelFunc
}

// apiOpenStream opens GET /api/v1/events+query and returns once the
// stream's opening comment is read, so that the subscription exists.
func apiOpenStream(t *testing.T, b *Broker, query string) *apiStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+b.Addr(ListenerHTTP).String()+"/api/v1/events"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" ||
		resp.Header.Get("Cache-Control") != "no-store" {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("GET /api/v1/events%s: %d %s %s", query, resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	rd := bufio.NewReader(resp.Body)
	first, err := rd.ReadString('\n')
	if err != nil || first != ": chargemq events\n" {
		t.Fatalf("stream opens with %q, %v", first, err)
	}
	s := &apiStream{events: make(chan apiEvent, 1000), end: make(chan error, 1), cancel: cancel}
	go func() {
		defer resp.Body.Close()
		var e apiEvent
		for {
			line, err := rd.ReadString('\n')
			if err != nil {
				s.end <- err
				close(s.events)
				return
			}
			line = strings.TrimSuffix(line, "\n")
			switch {
			case strings.HasPrefix(line, ":"): // a comment: keep-alive
			case strings.HasPrefix(line, "event: "):
				e.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				e.data = strings.TrimPrefix(line, "data: ")
				_ = json.Unmarshal([]byte(e.data), &e.ev)
			case line == "" && e.name != "":
				s.events <- e
				e = apiEvent{}
			}
		}
	}()
	return s
}

// next returns the stream's next event.
func (s *apiStream) next(t *testing.T) apiEvent {
	t.Helper()
	select {
	case e, ok := <-s.events:
		if !ok {
			t.Fatalf("stream ended: %v", <-s.end)
		}
		if e.ev.Type != e.name {
			t.Fatalf("event %q carries type %q: %s", e.name, e.ev.Type, e.data)
		}
		return e
	case <-time.After(apiDeadline):
		t.Fatalf("no event within %s", apiDeadline)
	}
	return apiEvent{}
}

// expect returns the next event and checks its name and cid.
func (s *apiStream) expect(t *testing.T, name, cid string) apiEvent {
	t.Helper()
	e := s.next(t)
	if e.name != name || e.ev.CID != cid {
		t.Fatalf("event %s %s, want %s of %s: %s", e.name, e.ev.CID, name, cid, e.data)
	}
	return e
}

// TestAPIEvents holds the stream of all charge points: connected (with
// the client), a frame as a summary without payload, disconnected with
// the reason.
func TestAPIEvents(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	all := apiOpenStream(t, b, "")

	cp := dialCP(t, b, "CP1")
	e := all.expect(t, "connected", "CP1")
	if c := e.ev.Client; c == nil || c.CID != "CP1" || c.Protocol != ocpp.OCPP16 || c.Remote == "" || e.ev.Time.IsZero() {
		t.Fatalf("connected event %s", e.data)
	}
	cp.send(t, `[2,"h1","Heartbeat",{}]`)
	e = all.expect(t, "frame", "CP1")
	if f := e.ev.Frame; f == nil || f.Direction != ocpp.DirectionIn || f.Type != "call" || f.Action != "Heartbeat" ||
		f.UniqueID != "h1" || f.Size != len(`[2,"h1","Heartbeat",{}]`) || strings.Contains(e.data, `"payload"`) {
		t.Fatalf("frame event %s, want a summary of the Heartbeat", e.data)
	}
	cp.ws.Close(websocket.StatusNormalClosure, "")
	if e = all.expect(t, "disconnected", "CP1"); e.ev.Reason != string(ocpp.ReasonClosed) {
		t.Fatalf("disconnected event %s", e.data)
	}
}

// TestAPIEventsFilters: ?cid= gives that charge point's frames alone, with
// payloads (connections of all); ?frames=false gives no frames. The
// stream of all is the barrier: the hub offers every subscriber an event
// in one pass, in order, so once it shows an event the filtered streams
// have been offered it too.
func TestAPIEventsFilters(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	all := apiOpenStream(t, b, "")
	one := apiOpenStream(t, b, "?cid=CP2")
	none := apiOpenStream(t, b, "?frames=false")

	cp1 := dialCP(t, b, "CP1")
	all.expect(t, "connected", "CP1")
	cp2 := dialCP(t, b, "CP2")
	all.expect(t, "connected", "CP2")
	cp1.send(t, `[2,"a","Heartbeat",{}]`)
	all.expect(t, "frame", "CP1")
	cp2.send(t, `[2,"b","StatusNotification",{"connectorId":1,"errorCode":"NoError","status":"Available"}]`)
	all.expect(t, "frame", "CP2")
	cp1.ws.Close(websocket.StatusNormalClosure, "")
	all.expect(t, "disconnected", "CP1")

	one.expect(t, "connected", "CP1")
	one.expect(t, "connected", "CP2")
	e := one.expect(t, "frame", "CP2") // not CP1's Heartbeat
	if f := e.ev.Frame; f == nil || f.Action != "StatusNotification" || f.Direction != ocpp.DirectionIn {
		t.Fatalf("frame event %s", e.data)
	} else {
		var p any
		if err := json.Unmarshal([]byte(f.Payload), &p); err != nil {
			t.Fatalf("payload %q: %v", f.Payload, err)
		}
		jsonEq(t, p, `{"connectorId":1,"errorCode":"NoError","status":"Available"}`)
	}
	one.expect(t, "disconnected", "CP1")

	none.expect(t, "connected", "CP1")
	none.expect(t, "connected", "CP2")
	none.expect(t, "disconnected", "CP1") // no frame in between
}

// TestAPIEventsLimit: at most maxEventSubscribers streams at once; the next
// gets a JSON 503, and a stream closed frees its place.
func TestAPIEventsLimit(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	streams := make([]*apiStream, maxEventSubscribers)
	for i := range streams {
		streams[i] = apiOpenStream(t, b, "")
	}
	msg := apiCall(t, b, "GET", "/api/v1/events").apiError(t, http.StatusServiceUnavailable)
	if !strings.Contains(msg, "too many event streams") {
		t.Fatalf("503 message %q", msg)
	}
	streams[0].cancel()
	apiWait(t, "the closed stream's place freed", func() bool { return int(b.events.count.Load()) < maxEventSubscribers })
	apiOpenStream(t, b, "?frames=false")
}

// TestAPIEventsEndAtShutdown: an open stream ends (cleanly, with the end
// of the chunked body) when the broker shuts down, after the charge
// points' disconnected events, and does not keep Shutdown waiting: with
// a one-minute timeout Shutdown returns without error within the wait,
// where a stream holding the admin server would cost it the graceful
// part, most of the minute.
func TestAPIEventsEndAtShutdown(t *testing.T) {
	t.Parallel()
	// Not startBroker: its cleanup would call Shutdown a second time, and
	// a second Shutdown panics (see the report); once is all this test
	// may call it.
	o := DefaultOptions()
	o.MQTTAddr, o.OCPPAddr, o.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	o.MQTTWSAddr = ""
	o.ShutdownTimeout = time.Minute
	o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	b, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	shutdown := func() error {
		err := errors.New("Shutdown already called")
		once.Do(func() { err = b.Shutdown(context.Background()) })
		return err
	}
	t.Cleanup(func() { shutdown() })
	s := apiOpenStream(t, b, "")
	cp := dialCP(t, b, "CP1")
	s.expect(t, "connected", "CP1")
	go func() { // answers the server's close
		for {
			if _, _, err := cp.ws.Read(context.Background()); err != nil {
				return
			}
		}
	}()

	done := make(chan error, 1)
	go func() { done <- shutdown() }()
	// The charge point's disconnected event, if the stream wrote it
	// before it ended (see the report: a queued event may be dropped),
	// then the end of the body.
	deadline := time.After(apiDeadline)
	for ended := false; !ended; {
		select {
		case e, ok := <-s.events:
			if !ok {
				if err := <-s.end; err != io.EOF {
					t.Fatalf("stream ended with %v, want the end of the body", err)
				}
				ended = true
			} else if e.name != "disconnected" || e.ev.CID != "CP1" || e.ev.Reason != string(ocpp.ReasonShutdown) {
				t.Fatalf("event at shutdown: %s %s", e.name, e.data)
			}
		case <-deadline:
			t.Fatal("the stream did not end at shutdown")
		}
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(apiDeadline):
		t.Fatal("Shutdown kept waiting with a stream open")
	}
}

// apiSlowWriter is a ResponseWriter whose writes after the first wait for
// gate: a subscriber that stopped reading.
type apiSlowWriter struct {
	header http.Header
	gate   chan struct{}
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
}

func (w *apiSlowWriter) Header() http.Header { return w.header }
func (w *apiSlowWriter) WriteHeader(int)     {}

func (w *apiSlowWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.writes++
	first := w.writes == 1
	w.mu.Unlock()
	if !first {
		<-w.gate
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *apiSlowWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestAPIEventsOverflow: a subscriber that falls eventQueue events behind
// loses the rest and is told so, once, by an "overflow" event after what
// it was queued; the publisher never waits for it.
func TestAPIEventsOverflow(t *testing.T) {
	t.Parallel()
	o := DefaultOptions()
	o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	b, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	w := &apiSlowWriter{header: http.Header{}, gate: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan struct{})
	go func() {
		defer close(served)
		b.handleEvents(w, httptest.NewRequest("GET", "/api/v1/events", nil).WithContext(ctx))
	}()
	apiWait(t, "the subscription", func() bool { return b.events.active() && w.String() != "" })
	const sent = eventQueue + 100
	for i := range sent {
		b.events.publish(Event{Type: "connected", CID: fmt.Sprintf("CP%d", i)}, nil) // must not block
	}
	close(w.gate)
	apiWait(t, "the overflow event", func() bool { return strings.Contains(w.String(), "event: overflow") })
	cancel()
	<-served
	out := w.String()
	n := strings.Count(out, "event: connected\n")
	if n < eventQueue || n >= sent || !strings.HasSuffix(out, string(overflowMessage)) || strings.Count(out, "event: overflow") != 1 {
		t.Fatalf("%d of %d events written, then overflow last: %v", n, sent, strings.HasSuffix(out, string(overflowMessage)))
	}
	if b.events.active() {
		t.Fatal("the subscriber stayed after the request ended")
	}
}

// TestAPIAccessWithoutUsersFile: without a users file, loopback clients
// only (others 403 saying why, counted admin_remote), unless
// HTTPAllowRemote; the health endpoints answer everyone.
func TestAPIAccessWithoutUsersFile(t *testing.T) {
	t.Parallel()
	local := startBroker(t, nil)
	open := startBroker(t, func(o *Options) { o.HTTPAllowRemote = true })

	apiCall(t, local, "GET", "/api/v1/stats").json(t, http.StatusOK, nil) // a real loopback socket
	forbidden := 0
	for _, tc := range []struct {
		name, remote string
		b            *Broker
		want         int
	}{
		{"loopback", "127.0.0.1:1234", local, http.StatusOK},
		{"loopback v6", "[::1]:1234", local, http.StatusOK},
		{"loopback range", "127.8.9.10:1234", local, http.StatusOK},
		{"remote", "192.0.2.1:1234", local, http.StatusForbidden},
		{"remote v6", "[2001:db8::1]:1234", local, http.StatusForbidden},
		{"remote allowed", "192.0.2.1:1234", open, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := apiServe(tc.b.apiHandler(), "GET", "/api/v1/clients", tc.remote)
			if tc.want == http.StatusOK {
				r.json(t, http.StatusOK, nil)
				return
			}
			forbidden++
			msg := r.apiError(t, tc.want)
			for _, s := range []string{"loopback", "auth.users_file", "admin user", "http.allow_remote: true"} {
				if !strings.Contains(msg, s) {
					t.Fatalf("403 message %q does not mention %q", msg, s)
				}
			}
		})
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if r := apiServe(local.adminHandler(), "GET", path, "192.0.2.1:1234"); r.status != http.StatusOK {
			t.Errorf("%s from a remote client: %d %s", path, r.status, r.body)
		}
	}
	if r := apiServe(local.adminHandler(), "GET", "/api/v1/stats", "192.0.2.1:1234"); r.status != http.StatusForbidden {
		t.Errorf("/api/v1/stats through the admin mux: %d", r.status)
	}
	forbidden++
	if n := local.Stats().Refused["admin_remote"]; n != uint64(forbidden) {
		t.Fatalf("refused admin_remote %d, want %d", n, forbidden)
	}
	if n := open.Stats().Refused["admin_remote"]; n != 0 {
		t.Fatalf("allow_remote: refused admin_remote %d", n)
	}
}

// TestAPIAccessWithUsersFile: with a users file an admin user's Basic
// credentials, from everyone; others 401 with WWW-Authenticate; repeated
// failures 429 with Retry-After (the logins' back-off, per address and
// user); the health endpoints need nothing. Every refusal is counted.
func TestAPIAccessWithUsersFile(t *testing.T) {
	t.Parallel()
	b := startBroker(t, func(o *Options) { o.UsersFile = apiUsers(t) })
	unauthorized := 0
	for _, tc := range []struct {
		name string
		auth []string
		want int
	}{
		{"no credentials", nil, http.StatusUnauthorized},
		{"mqtt user", []string{"csms", apiPassword("csms")}, http.StatusUnauthorized},
		{"charge point", []string{"CP1", apiPassword("CP1")}, http.StatusUnauthorized},
		{"unknown user", []string{"eve", "guess"}, http.StatusUnauthorized},
		{"admin", []string{"ops", apiPassword("ops")}, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := apiCall(t, b, "GET", "/api/v1/stats", tc.auth...)
			if tc.want == http.StatusOK {
				r.json(t, http.StatusOK, nil)
				return
			}
			unauthorized++
			r.apiError(t, tc.want)
			if h := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(h, `Basic realm="chargemq"`) {
				t.Fatalf("WWW-Authenticate %q", h)
			}
		})
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if r := apiCall(t, b, "GET", path); r.status != http.StatusOK {
			t.Errorf("%s without credentials: %d %s", path, r.status, r.body)
		}
	}
	// A users file overrides the loopback rule: an admin from anywhere.
	apiServe(b.apiHandler(), "GET", "/api/v1/clients", "192.0.2.1:1234", "ops", apiPassword("ops")).json(t, http.StatusOK, nil)

	// Wrong passwords: the first is free, then each doubles the wait.
	var limited apiResult
	for i := 0; i < 10 && limited.status == 0; i++ {
		r := apiCall(t, b, "GET", "/api/v1/stats", "ops", "wrong")
		switch r.status {
		case http.StatusUnauthorized:
			unauthorized++
		case http.StatusTooManyRequests:
			limited = r
		default:
			t.Fatalf("wrong password: %d %s", r.status, r.body)
		}
	}
	if limited.status == 0 {
		t.Fatal("ten wrong passwords and no 429")
	}
	if msg := limited.apiError(t, http.StatusTooManyRequests); !strings.Contains(msg, "too many failed logins") {
		t.Fatalf("429 message %q", msg)
	}
	if ra, err := strconv.Atoi(limited.header.Get("Retry-After")); err != nil || ra < 1 {
		t.Fatalf("Retry-After %q", limited.header.Get("Retry-After"))
	}
	// The back-off is per address and user: ops from elsewhere still gets in.
	apiServe(b.apiHandler(), "GET", "/api/v1/stats", "192.0.2.7:1234", "ops", apiPassword("ops")).json(t, http.StatusOK, nil)

	ref := b.Stats().Refused
	if ref["admin_unauthorized"] != uint64(unauthorized) || ref["admin_auth_backoff"] != 1 || ref["admin_remote"] != 0 {
		t.Fatalf("refused %v, want admin_unauthorized %d, admin_auth_backoff 1", ref, unauthorized)
	}
}

// TestAPIPprof: the profiling endpoints on a listener of their own (and
// not on the admin one).
func TestAPIPprof(t *testing.T) {
	t.Parallel()
	b := startBroker(t, func(o *Options) { o.PprofAddr = "127.0.0.1:0" })
	addr := b.Addr(ListenerPprof)
	if addr == nil {
		t.Fatal("no pprof listener")
	}
	r := apiCallAt(t, addr, "GET", "/debug/pprof/")
	if r.status != http.StatusOK || !bytes.Contains(r.body, []byte("goroutine")) {
		t.Fatalf("GET /debug/pprof/: %d %.200s", r.status, r.body)
	}
	if r := apiCallAt(t, addr, "GET", "/debug/pprof/cmdline"); r.status != http.StatusOK {
		t.Fatalf("GET /debug/pprof/cmdline: %d", r.status)
	}
	if r := apiCallAt(t, addr, "GET", "/api/v1/stats"); r.status != http.StatusNotFound {
		t.Fatalf("the API on the pprof listener: %d", r.status)
	}
	if r := apiCall(t, b, "GET", "/debug/pprof/"); r.status != http.StatusNotFound {
		t.Fatalf("pprof on the admin listener: %d", r.status)
	}
	if startBroker(t, nil).Addr(ListenerPprof) != nil {
		t.Fatal("a pprof listener without PprofAddr")
	}
}

// TestAPIPprofAddrMustBeLoopback: New refuses a profiling address off the
// loopback network, naming listeners.pprof.
func TestAPIPprofAddrMustBeLoopback(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{"0.0.0.0:6060", false},
		{":6060", false},
		{"192.0.2.1:6060", false},
		{"[::]:6060", false},
		{"example.com:6060", false},
		{"127.0.0.1", false}, // no port
		{"127.0.0.1:6060", true},
		{"[::1]:6060", true},
		{"localhost:6060", true},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			o := DefaultOptions()
			o.PprofAddr = tc.addr
			o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
			_, err := New(o)
			if tc.ok != (err == nil) || err != nil && !strings.Contains(err.Error(), "listeners.pprof") {
				t.Fatalf("New with pprof %q: %v", tc.addr, err)
			}
		})
	}
}

// TestAPILogFrames: with LogFrames every frame is a debug line "frame"
// with cid, direction, type, action and the payload cut at
// maxLoggedPayload; without it there is none.
func TestAPILogFrames(t *testing.T) {
	t.Parallel()
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprint("log_frames=", on), func(t *testing.T) {
			t.Parallel()
			var logs syncBuffer
			b := startBroker(t, func(o *Options) {
				o.LogFrames = on
				o.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			})
			sub := dialMQTT(t, b.Addr(ListenerMQTT), "csms")
			sub.subscribe(t, "ocpp/cp/#")
			cp := dialCP(t, b, "CP1")
			const heartbeat = `[2,"h1","Heartbeat",{}]`
			cp.send(t, heartbeat)
			tail := "TAIL-BEYOND-THE-CUT"
			cp.send(t, `[2,"d1","DataTransfer",{"vendorId":"V","data":"`+strings.Repeat("x", maxLoggedPayload)+tail+`"}]`)
			// The frame is logged before it is published: once on MQTT, logged.
			apiNext(t, sub, "ocpp/cp/CP1")
			apiNext(t, sub, "ocpp/cp/CP1")
			if !on {
				if n := logs.lines("msg=frame"); n != 0 {
					t.Fatalf("%d frame lines without LogFrames", n)
				}
				return
			}
			for _, want := range []string{
				fmt.Sprintf("msg=frame cid=CP1 direction=in type=call action=Heartbeat unique_id=h1 size=%d payload={}", len(heartbeat)),
				"msg=frame cid=CP1 direction=in type=call action=DataTransfer unique_id=d1",
			} {
				if logs.lines(want) != 1 {
					t.Errorf("no line %q in\n%s", want, apiLog(&logs))
				}
			}
			if logs.lines(tail) != 0 {
				t.Errorf("payload not cut at %d bytes:\n%s", maxLoggedPayload, apiLog(&logs))
			}
			sub.publish(t, "ocpp/cs/CP1", `{"MessageTypeId":3,"UniqueId":"h1","Payload":{"currentTime":"2026-11-25T18:00:00Z"}}`, 1, false)
			cp.recv(t)
			apiWait(t, "the answer logged", func() bool {
				return logs.lines("msg=frame cid=CP1 direction=out type=callresult") == 1
			})
		})
	}
}

// apiLog is what was logged into s.
func apiLog(s *syncBuffer) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
