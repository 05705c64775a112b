package sim

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
)

// maxPendingCommands bounds the commands waiting for an answer; beyond it the publisher skips
// (a gateway that answers nothing must not grow the simulator without bound).
const maxPendingCommands = 100_000

// mqttClient is one MQTT 5 connection of the simulator (responder or command publisher).
// Publishes are QoS 0: the broker is local to the gateway, a lost message shows as a time-out,
// and QoS 0 never blocks the receive path waiting for an acknowledgement.
type mqttClient struct {
	c       *paho.Client
	closing atomic.Bool
	once    sync.Once
}

// close disconnects; paho waits for its goroutines.
func (m *mqttClient) close() {
	m.once.Do(func() {
		m.closing.Store(true)
		_ = m.c.Disconnect(&paho.Disconnect{ReasonCode: 0})
	})
}

// publish sends a QoS 0 message.
func (m *mqttClient) publish(topic string, payload []byte) error {
	_, err := m.c.Publish(context.Background(), &paho.Publish{Topic: topic, QoS: 0, Payload: payload})
	return err
}

// dialMQTT connects an MQTT client for role, hands every message it receives to handle (on
// paho's one delivery goroutine, in order) and subscribes to filters at QoS 0, without
// retained messages, before it returns, so nothing published after that is missed.
func (r *runner) dialMQTT(ctx context.Context, role string, handle func(m *mqttClient, p *paho.Publish), filters ...string) (*mqttClient, error) {
	addr := r.opts.mqttAddr()
	ctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	var conn net.Conn
	var err error
	if r.mqttTLS != nil { // the handshake too is bounded by ctx
		conn, err = (&tls.Dialer{Config: r.mqttTLS}).DialContext(ctx, "tcp", addr)
	} else {
		conn, err = (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("%w MQTT broker %s (%s): %v", ErrUnreachable, addr, role, err)
	}
	// paho writes a packet in several Writes, from more than one goroutine (its first PINGREQ
	// races the SUBSCRIBE); a TCPConn happens to take them in one writev, a tls.Conn would
	// interleave them and corrupt the stream. paho holds a conn's lock for a whole packet.
	conn = packets.NewThreadSafeConn(conn)
	m := &mqttClient{}
	m.c = paho.NewClient(paho.ClientConfig{
		Conn: conn,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			handle(m, pr.Packet)
			return true, nil
		}},
		OnClientError: func(err error) {
			if !m.closing.Load() {
				r.m.warn("MQTT %s: connection lost: %v", role, err)
			}
		},
		OnServerDisconnect: func(d *paho.Disconnect) {
			if !m.closing.Load() {
				r.m.warn("MQTT %s: disconnected by the broker, reason 0x%02x", role, d.ReasonCode)
			}
		},
	})
	cp := &paho.Connect{ClientID: clientID(role), CleanStart: true, KeepAlive: 30}
	if u := r.opts.MQTTUsername; u != "" {
		cp.UsernameFlag, cp.Username = true, u
	}
	if p := r.opts.MQTTPassword; p != "" {
		cp.PasswordFlag, cp.Password = true, []byte(p)
	}
	ack, err := m.c.Connect(ctx, cp)
	if err != nil || ack.ReasonCode != 0 {
		conn.Close()
		if err == nil {
			err = fmt.Errorf("CONNACK reason 0x%02x", ack.ReasonCode)
		}
		return nil, fmt.Errorf("%w MQTT broker %s (%s): %v", ErrUnreachable, addr, role, err)
	}
	sub := &paho.Subscribe{}
	for _, f := range filters {
		// Retain handling 2: no retained messages. They are older than this run (a previous
		// run's "offline" presence), and mochi sends them after the SUBACK, where they could
		// land after this run's live "online" and undo it.
		sub.Subscriptions = append(sub.Subscriptions, paho.SubscribeOptions{Topic: f, QoS: 0, RetainHandling: 2})
	}
	suback, err := m.c.Subscribe(ctx, sub)
	if err == nil {
		for i, code := range suback.Reasons {
			if code >= 0x80 {
				err = fmt.Errorf("subscribe %s refused: reason 0x%02x", filters[i], code)
				break
			}
		}
	}
	if err != nil {
		m.close()
		return nil, fmt.Errorf("sim: MQTT %s: %w", role, err)
	}
	return m, nil
}

// clientID is an MQTT client id for role that no other run uses, so two simulators (or a test
// and the next) never take over each other's session.
func clientID(role string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return "chargemq-sim-" + role + "-" + hex.EncodeToString(b)
}

// startResponder connects the responder: it answers every CALL of this run's charge points on
// ocpp/cp/+ with upstreamAnswer on ocpp/cs/<cid>, and ignores other charge points, so a
// simulator pointed at a live gateway never answers for a real one.
func (r *runner) startResponder(ctx context.Context) (*mqttClient, error) {
	interval := int(r.opts.HeartbeatInterval / time.Second)
	var txID atomic.Int64
	return r.dialMQTT(ctx, "responder", func(m *mqttClient, p *paho.Publish) {
		cid, ok := strings.CutPrefix(p.Topic, topicUpstream)
		var call struct {
			MessageTypeID int    `json:"MessageTypeId"`
			UniqueID      string `json:"UniqueId"`
			Action        string
		}
		if _, ours := r.index[cid]; !ok || !ours || json.Unmarshal(p.Payload, &call) != nil || call.MessageTypeID != 2 || call.UniqueID == "" {
			r.m.respIgnore.Add(1)
			return
		}
		msg := []byte(`{"MessageTypeId":`)
		if payload, ok := upstreamAnswer(call.Action, time.Now(), interval, txID.Add(1)); ok {
			msg = append(msg, `3,"UniqueId":`...)
			msg = appendString(msg, call.UniqueID)
			msg = append(msg, `,"Payload":`...)
			msg = append(msg, payload...)
			msg = append(msg, '}')
			r.m.respAnswered.Add(1)
		} else {
			msg = append(msg, `4,"UniqueId":`...)
			msg = appendString(msg, call.UniqueID)
			msg = append(msg, `,"ErrorCode":"NotImplemented","ErrorDescription":`...)
			msg = appendString(msg, "the simulator's responder does not answer "+call.Action)
			msg = append(msg, `,"ErrorDetails":{}}`...)
			r.m.respNotImpl.Add(1)
		}
		if err := m.publish(topicCommand+cid, msg); err != nil {
			r.m.warn("MQTT responder: publish: %v", err)
		}
	}, topicUpstream+"+")
}

// commander publishes commands on MQTT at CommandRate, round-robin over this run's charge
// points that the gateway reports online (presence), and matches their answers on the Reply
// topic by UniqueId.
type commander struct {
	r      *runner
	client *mqttClient
	online []atomic.Bool // by charge point index, from ocpp/presence/<cid>

	mu      sync.Mutex
	pending map[string]cmdPending // UniqueId → command
	seq     uint64
	rr      int // next charge point to try (run goroutine only)
	drained chan struct{}
}

// cmdPending is a command published and not yet answered.
type cmdPending struct {
	cid  string
	sent time.Time
}

// startCommander connects the command publisher, subscribed to presence and Reply topics.
func (r *runner) startCommander(ctx context.Context) (*commander, error) {
	c := newCommander(r)
	m, err := r.dialMQTT(ctx, "commands", func(_ *mqttClient, p *paho.Publish) { c.received(p) },
		topicPresence+"+", topicUpstream+"+"+topicReply)
	if err != nil {
		return nil, err
	}
	c.client = m
	return c, nil
}

func newCommander(r *runner) *commander {
	return &commander{r: r, online: make([]atomic.Bool, len(r.cps)), pending: map[string]cmdPending{}, drained: make(chan struct{})}
}

// received handles a presence change or an answer to a command.
func (c *commander) received(p *paho.Publish) {
	r := c.r
	if cid, ok := strings.CutPrefix(p.Topic, topicPresence); ok {
		if i, ours := r.index[cid]; ours && !p.Retain { // a retained presence predates the run
			var pr struct{ State string }
			if json.Unmarshal(p.Payload, &pr) == nil {
				c.online[i].Store(pr.State == "online")
			}
		}
		return
	}
	cid, ok := strings.CutSuffix(strings.TrimPrefix(p.Topic, topicUpstream), topicReply)
	if _, ours := r.index[cid]; !ok || !ours {
		return
	}
	var a struct {
		MessageTypeID int    `json:"MessageTypeId"`
		UniqueID      string `json:"UniqueId"`
		ErrorCode     string
		ErrorDetails  struct {
			Origin string `json:"origin"`
			Reason string `json:"reason"`
		}
	}
	if json.Unmarshal(p.Payload, &a) != nil {
		return
	}
	now := time.Now()
	c.mu.Lock()
	cmd, found := c.pending[a.UniqueID]
	if found && cmd.cid == cid {
		delete(c.pending, a.UniqueID)
	}
	c.mu.Unlock()
	if !found || cmd.cid != cid {
		r.m.down.late.Add(1)
		return
	}
	switch {
	case a.MessageTypeID == 3:
		r.m.down.answered.Add(1)
		r.m.down.lat.Record(now.Sub(cmd.sent))
	case a.ErrorDetails.Origin == "gateway" && a.ErrorDetails.Reason == "timeout":
		r.m.down.timedOut.Add(1)
	case a.ErrorDetails.Origin == "gateway":
		r.m.down.errors.Add(1)
		r.m.down.codes.add("gateway:" + a.ErrorDetails.Reason)
	default:
		r.m.down.errors.Add(1)
		r.m.down.codes.add(a.ErrorCode)
	}
}

// run publishes commands until sending stops, then waits for the last answers (at most
// Timeout) and closes drained.
func (c *commander) run(ctx context.Context) {
	r := c.r
	defer r.wg.Done()
	defer close(c.drained)
	p := newPacer(time.Now(), rateInterval(r.opts.CommandRate))
	timer := time.NewTimer(farAway)
	defer timer.Stop()
	sweepAt := time.Now().Add(time.Second)
	for {
		timer.Reset(time.Until(p.due()))
		select {
		case <-ctx.Done():
			return
		case <-r.stopSend:
			c.drain(ctx)
			return
		case <-timer.C:
		}
		now := time.Now()
		r.m.down.skipped.Add(p.take(now, catchUp))
		if !now.Before(sweepAt) {
			c.sweep(now)
			sweepAt = now.Add(time.Second)
		}
		c.sendOne(now)
	}
}

// sendOne publishes one command to the next charge point online.
func (c *commander) sendOne(now time.Time) {
	r := c.r
	i := c.pick()
	c.mu.Lock()
	if i < 0 || len(c.pending) >= maxPendingCommands {
		c.mu.Unlock()
		r.m.down.skipped.Add(1)
		return
	}
	c.seq++
	uid := "c" + strconv.FormatUint(c.seq, 10)
	cid := r.cps[i].cid
	c.pending[uid] = cmdPending{cid: cid, sent: now}
	c.mu.Unlock()

	msg := []byte(`{"MessageTypeId":2,"UniqueId":"` + uid + `","Action":"` + commandAction + `","Payload":` + commandPayload + `}`)
	if err := c.client.publish(topicCommand+cid, msg); err != nil {
		c.mu.Lock()
		delete(c.pending, uid)
		c.mu.Unlock()
		r.m.down.sendFailed.Add(1)
		return
	}
	r.m.down.sent.Add(1)
}

// pick returns the index of the next charge point, round-robin, that is online and not
// closing, or -1 when there is none.
func (c *commander) pick() int {
	n := len(c.r.cps)
	for range n {
		i := c.rr
		c.rr = (c.rr + 1) % n
		if c.online[i].Load() && c.r.cps[i].alive.Load() {
			return i
		}
	}
	return -1
}

// sweep times out the commands waited for longer than Timeout.
func (c *commander) sweep(now time.Time) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for uid, cmd := range c.pending {
		if !now.Before(cmd.sent.Add(c.r.opts.Timeout)) {
			delete(c.pending, uid)
			c.r.m.down.timedOut.Add(1)
		}
	}
	return len(c.pending)
}

// drain waits until every command is answered or timed out.
func (c *commander) drain(ctx context.Context) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for c.sweep(time.Now()) > 0 {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
