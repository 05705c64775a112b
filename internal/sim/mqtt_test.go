package sim

import (
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// TestCommanderPresence: live presence makes a charge point a command target; a retained
// presence (older than the run, such as a previous run's "offline") changes nothing, and ids
// of other charge points are ignored.
func TestCommanderPresence(t *testing.T) {
	t.Parallel()
	o := DefaultOptions()
	o.Count = 2
	c := newCommander(newRunner(o)) // ids sim-1, sim-2
	presence := func(cid, state string, retained bool) {
		c.received(&paho.Publish{Topic: topicPresence + cid, Retain: retained, Payload: []byte(`{"cid":"` + cid + `","state":"` + state + `"}`)})
	}
	steps := []struct {
		cid, state string
		retained   bool
		want       [2]bool
	}{
		{"sim-1", "online", false, [2]bool{true, false}},
		{"sim-1", "offline", true, [2]bool{true, false}}, // stale: ignored
		{"sim-2", "online", true, [2]bool{true, false}},  // stale: ignored
		{"sim-2", "online", false, [2]bool{true, true}},
		{"other", "offline", false, [2]bool{true, true}},
		{"sim-1", "offline", false, [2]bool{false, true}},
	}
	for i, s := range steps {
		presence(s.cid, s.state, s.retained)
		if got := [2]bool{c.online[0].Load(), c.online[1].Load()}; got != s.want {
			t.Fatalf("step %d (%s %s retained %v): online %v, want %v", i, s.cid, s.state, s.retained, got, s.want)
		}
	}
}

// TestCommanderReplies matches answers and gateway errors to pending commands by UniqueId and
// charge point.
func TestCommanderReplies(t *testing.T) {
	t.Parallel()
	o := DefaultOptions()
	o.Count = 2
	r := newRunner(o)
	c := newCommander(r)
	sent := time.Now()
	for _, uid := range []string{"c1", "c2", "c3", "c4", "c5"} {
		c.pending[uid] = cmdPending{cid: "sim-1", sent: sent}
	}
	reply := func(cid, payload string) {
		c.received(&paho.Publish{Topic: topicUpstream + cid + topicReply, Payload: []byte(payload)})
	}
	reply("sim-1", `{"MessageTypeId":3,"UniqueId":"c1","Action":"Reset","Payload":{"status":"Accepted"}}`)
	reply("sim-1", `{"MessageTypeId":4,"UniqueId":"c2","Action":"Reset","ErrorCode":"GenericError","ErrorDescription":"full","ErrorDetails":{"origin":"gateway","reason":"queue_full"}}`)
	reply("sim-1", `{"MessageTypeId":4,"UniqueId":"c3","Action":"Reset","ErrorCode":"GenericError","ErrorDescription":"late","ErrorDetails":{"origin":"gateway","reason":"timeout"}}`)
	reply("sim-1", `{"MessageTypeId":4,"UniqueId":"c4","Action":"Reset","ErrorCode":"NotImplemented","ErrorDescription":"no","ErrorDetails":{}}`)
	reply("sim-2", `{"MessageTypeId":3,"UniqueId":"c5","Action":"Reset","Payload":{}}`) // wrong charge point
	reply("sim-1", `{"MessageTypeId":3,"UniqueId":"c1","Action":"Reset","Payload":{},"Late":true}`)
	reply("not-ours", `{"MessageTypeId":3,"UniqueId":"c5","Action":"Reset","Payload":{}}`)
	d := &r.m.down
	if d.answered.Load() != 1 || d.errors.Load() != 2 || d.timedOut.Load() != 1 || d.late.Load() != 2 {
		t.Errorf("answered %d errors %d timed out %d late %d; want 1 2 1 2",
			d.answered.Load(), d.errors.Load(), d.timedOut.Load(), d.late.Load())
	}
	if codes := d.codes.snapshot(); codes["gateway:queue_full"] != 1 || codes["NotImplemented"] != 1 || len(codes) != 2 {
		t.Errorf("codes %v", codes)
	}
	if _, ok := c.pending["c5"]; !ok || len(c.pending) != 1 {
		t.Errorf("pending %v, want only c5 left", c.pending)
	}
	if n := c.sweep(sent.Add(r.opts.Timeout)); n != 0 || d.timedOut.Load() != 2 {
		t.Errorf("sweep left %d and timed out %d, want 0 and 2", n, d.timedOut.Load())
	}
}
